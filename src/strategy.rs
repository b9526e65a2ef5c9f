//! How a policy's root batches find their rows, chosen per policy at its
//! first batch of a run from what PostgreSQL knows of the data.
//!
//! - keyset: oldest first, by keyset on (time, key) over
//!   the time column's index. Right when the expired rows are few or lie
//!   together: each batch reads only its own rows.
//! - heap sweep: the table's pages in physical order, a
//!   range of pages per batch ([`HeapSweep`]), each batch the expired rows of
//!   its range (a TID range scan). Right when the expired rows are spread
//!   over the heap or are a large share of it: the run reads the heap once,
//!   as a plain `DELETE` does, instead of fetching each row through the
//!   index and sorting groups of equal times.
//!
//! The choice follows PostgreSQL's plan for finding every expired row
//! (`EXPLAIN SELECT ... WHERE time < cutoff`), heap by heap: a heap is
//! swept when the plan reads it in physical order (a sequential or bitmap
//! heap scan), or expects at least [`SWEEP_SHARE`] of its rows to be
//! expired (a sweep then reads at most four rows per row it deletes, in
//! order, where the keyset fetches each expired row through the index,
//! sorts groups of equal times, and skips dead index entries); else the
//! keyset.
//!
//! Sweeps run on ordinary tables that no table inherits from, and on
//! partitioned tables whose policy deletes from no other table: there the
//! heaps are the leaf partitions the plan reads (those pruned hold no
//! expired row), each chosen by the rule above, and swept one after the
//! other through `DELETE FROM ONLY partition` ([`Sweep`]); when some are
//! left to the index, the keyset follows the sweep. A partition is swept
//! only while deleting from it directly does what deleting through its
//! table would ([`sqlgen::leaf_sweep_guard`], checked by every statement):
//! same owner, no row-level security, no statement-level or
//! transition-table DELETE trigger, no rule, still attached. Never on
//! Citus (a `ctid` names a row of one table on one node), never for orphan
//! policies (their tests take the keyset).

use std::collections::{HashMap, VecDeque};

use pgrx::spi::SpiClient;

use crate::catalog::{internal, Policy, PolicyKind, Setup};
use crate::errors::Result;
use crate::planner::RelId;
use crate::sqlgen;

/// The share of a table's rows expected to be expired from which its
/// policy sweeps the heap even when an index would find them.
pub const SWEEP_SHARE: f64 = 0.25;

/// Pages a sweep's range never exceeds: a batch reads at most 8 MB of heap
/// (with 8 kB pages), whatever the density of expired rows.
pub const MAX_PAGES: u32 = 1024;

/// A row's place in the heap: block and line pointer offset (1-based; 0
/// stands before the first row of the block).
pub type Tid = (u32, u16);

/// Where a heap sweep is: rows after `after` are still to be seen, up to
/// block `end` (the table's size when the sweep started: rows added later
/// are new, not expired). Each batch covers the rows after `after`: the
/// rest of its block, then `pages` blocks; `pages` follows the density of
/// expired rows so that a range holds about one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapSweep {
    pub after: Tid,
    pub end: u32,
    pub pages: u32,
}

impl HeapSweep {
    /// A sweep of the first `end` blocks, starting with ranges of `pages`.
    pub fn new(end: u32, pages: u32) -> Self {
        HeapSweep {
            after: (0, 0),
            end,
            pages: pages.clamp(1, MAX_PAGES),
        }
    }

    /// The next batch's range: rows strictly between the two tids; `None`
    /// once the sweep has passed its last block.
    pub fn range(&self) -> Option<(Tid, Tid)> {
        if self.after.0 >= self.end {
            return None;
        }
        // After a batch that stopped inside a block: the rest of that block,
        // then `pages` more (a batch may hold less than a page).
        let first_whole = self.after.0 + u32::from(self.after.1 > 0);
        let upper = first_whole.saturating_add(self.pages).min(self.end);
        Some((self.after, (upper, 0)))
    }

    /// Moves past a committed batch that selected `selected` rows of at most
    /// `limit`. A batch that got fewer rows than its limit has seen its
    /// whole range; a full one ends at its last row, `last`, and the next
    /// range starts after it. The next range is sized from the density
    /// found: `limit` rows' worth of pages, at most four times the pages of
    /// this one (and [`MAX_PAGES`]).
    pub fn advance(&mut self, selected: i64, limit: i64, last: Option<Tid>) {
        let Some((from, upper)) = self.range() else {
            return;
        };
        let full = selected >= limit;
        // A row updated while its batch locked it is returned at its new
        // place: one outside the range ends the range, so that the sweep
        // never goes back.
        let to = match last {
            Some(last) if full && from < last && last < upper => last,
            _ => upper,
        };
        // Pages looked at: the blocks from the range's start to where it
        // stopped (a partly read block counts as one).
        let seen = (to.0 + u32::from(to.1 > 0)).saturating_sub(from.0).max(1);
        let wanted = if selected <= 0 {
            u64::from(seen) * 4
        } else {
            (u64::from(seen) * limit.max(1) as u64).div_ceil(selected as u64)
        };
        self.pages = wanted
            .clamp(1, u64::from(seen) * 4)
            .min(u64::from(MAX_PAGES)) as u32;
        self.after = to;
    }
}

/// A heap a sweep reads: the policy's table, or one of its leaf
/// partitions.
#[derive(Clone, Debug, PartialEq)]
pub struct Heap {
    pub relid: RelId,
    /// `"schema"."table"`, quoted.
    pub qualified: String,
    /// Its size in blocks when the run chose to sweep it: rows added later
    /// are new, not expired.
    pub blocks: u32,
    /// For a leaf partition, the condition under which it may still be
    /// swept ([`sqlgen::leaf_sweep_guard`]); `None` for the policy's table.
    pub guard: Option<String>,
    /// For a leaf partition, the (partition, parent) links from it up to the
    /// policy's table; empty for the policy's table.
    pub links: Vec<(RelId, RelId)>,
}

/// A policy's sweep: its heaps one after the other, each in physical
/// order. An ordinary table is one heap; a partitioned table, the leaf
/// partitions whose rows PostgreSQL's plan would read, by the same rule
/// as a table. When some of those are better read by the time index
/// (`then_keyset`), the policy's keyset runs after the sweep, over the
/// whole table: in the heaps swept it finds what the sweep left.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    heaps: VecDeque<Heap>,
    at: HeapSweep,
    pub then_keyset: bool,
}

impl Sweep {
    /// A sweep of `heaps` in order, starting with ranges of `pages`; `None`
    /// when there is none.
    pub fn new(heaps: Vec<Heap>, pages: u32, then_keyset: bool) -> Option<Self> {
        let first = heaps.first()?.blocks;
        Some(Sweep {
            heaps: heaps.into(),
            at: HeapSweep::new(first, pages),
            then_keyset,
        })
    }

    /// The heap being swept and its next range (rows strictly between the
    /// two tids), moving on to the next heap when one is done; `None` once
    /// every heap is. A new heap starts with ranges sized as the last one
    /// ended: partitions of one table tend to hold their rows alike.
    pub fn next_range(&mut self) -> Option<(&Heap, Tid, Tid)> {
        loop {
            if let Some((from, to)) = self.at.range() {
                return Some((self.heaps.front()?, from, to));
            }
            self.heaps.pop_front();
            self.at = HeapSweep::new(self.heaps.front()?.blocks, self.at.pages);
        }
    }

    /// Moves past a committed batch ([`HeapSweep::advance`]).
    pub fn advance(&mut self, selected: i64, limit: i64, last: Option<Tid>) {
        self.at.advance(selected, limit, last);
    }

    /// Drops the heaps among `relids` (partitions removed or kept whole
    /// before the batches).
    pub fn forget(&mut self, relids: &[RelId]) {
        let current = self.heaps.front().map(|h| h.relid);
        self.heaps.retain(|h| !relids.contains(&h.relid));
        if self.heaps.front().map(|h| h.relid) != current {
            let blocks = self.heaps.front().map_or(0, |h| h.blocks);
            self.at = HeapSweep::new(blocks, self.at.pages);
        }
    }

    /// How the policy's batches go, for the log.
    pub fn describe(&self) -> String {
        let blocks: u64 = self.heaps.iter().map(|h| u64::from(h.blocks)).sum();
        let then = if self.then_keyset {
            ", then take what is left oldest first, by keyset"
        } else {
            ""
        };
        match self.heaps.len() {
            1 if self.heaps[0].guard.is_none() => {
                format!("batches sweep its {blocks} pages in physical order{then}")
            }
            n => format!(
                "batches sweep {n} of its partitions, {blocks} pages, in physical order{then}"
            ),
        }
    }
}

/// A scan in PostgreSQL's plan for finding a policy's expired rows: the
/// table it reads, whether it reads it in physical order (a sequential or
/// bitmap heap scan), and the rows it expects.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedScan {
    pub schema: String,
    pub relation: String,
    pub in_order: bool,
    pub rows: f64,
}

/// The table scans of a plan from `EXPLAIN (VERBOSE, FORMAT JSON)`.
/// Partitions pruned away are not in it: they hold no expired row.
pub fn planned_scans(plan: &serde_json::Value) -> Vec<PlannedScan> {
    fn walk(node: &serde_json::Value, out: &mut Vec<PlannedScan>) {
        if let (Some(schema), Some(relation)) = (
            node.get("Schema").and_then(|v| v.as_str()),
            node.get("Relation Name").and_then(|v| v.as_str()),
        ) {
            let kind = node.get("Node Type").and_then(|v| v.as_str());
            out.push(PlannedScan {
                schema: schema.to_string(),
                relation: relation.to_string(),
                in_order: matches!(kind, Some("Seq Scan" | "Bitmap Heap Scan")),
                rows: node
                    .get("Plan Rows")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0),
            });
        }
        for child in node
            .get("Plans")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    for entry in plan.as_array().into_iter().flatten() {
        if let Some(top) = entry.get("Plan") {
            walk(top, &mut out);
        }
    }
    out
}

/// Whether a heap with `heap_rows` rows by the statistics is swept rather
/// than read through the time index, from its scan in the plan.
pub fn sweeps(scan: &PlannedScan, heap_rows: f64) -> bool {
    scan.in_order || (heap_rows > 0.0 && scan.rows >= heap_rows * SWEEP_SHARE)
}

/// A heap that may hold a policy's rows, as the catalog describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub heap: Heap,
    pub schema: String,
    pub name: String,
    /// Rows and pages by the statistics.
    pub rows: f64,
    pub pages: f64,
    /// An ordinary table that may be deleted from directly, with the effect
    /// of deleting through the policy's table.
    pub sweepable: bool,
}

/// Which heaps a policy sweeps, from the plan's scans: those the plan
/// reads and [`sweeps`] chooses, in the candidates' order. `None` (the
/// keyset) when there is none, or when a heap the plan reads cannot be
/// swept. The flag: some heap the plan reads is left to the keyset.
pub fn heaps_to_sweep(
    candidates: Vec<Candidate>,
    scans: &[PlannedScan],
) -> Option<(Vec<Candidate>, bool)> {
    let mut swept = Vec::new();
    let mut then_keyset = false;
    for c in candidates {
        let Some(scan) = scans
            .iter()
            .find(|s| s.schema == c.schema && s.relation == c.name)
        else {
            continue;
        };
        if !c.sweepable {
            return None;
        }
        if sweeps(scan, c.rows) {
            swept.push(c);
        } else {
            then_keyset = true;
        }
    }
    (!swept.is_empty()).then_some((swept, then_keyset))
}

/// Chooses how `policy`'s root batches select their rows: a heap sweep
/// (over the blocks its heaps have now), or `None` for the keyset. Run as
/// the table's owner.
pub fn choose(
    client: &mut SpiClient<'_>,
    setup: &Setup,
    policy: &Policy,
    default_batch_size: i64,
) -> Result<Option<Sweep>> {
    let shape = setup.shape(policy.relid);
    // A partition is checked by each statement in its own snapshot: not
    // under REPEATABLE READ or SERIALIZABLE, where all see the first one.
    if !crate::gucs::HEAP_SWEEP.get()
        || policy.kind != PolicyKind::Expire
        || !setup.may_sweep(policy.relid)
        || setup.lock_free(policy.relid)
        || (shape.partitioned && crate::partitions::transaction_snapshot_is_fixed())
    {
        return Ok(None);
    }
    let time = setup.policy_column(policy.id);
    if !budget_callable(client, time.type_oid)? {
        return Ok(None);
    }
    let Some(candidates) = candidates(client, policy.relid, &shape.excluded_inheritors)? else {
        return Ok(None);
    };
    // EXPLAIN counts as a volatile statement: not in a read-only SPI call.
    let plan = client
        .update(
            &sqlgen::expired_rows_plan_sql(shape, time),
            None,
            &[policy.cutoff.into()],
        )
        .map_err(internal)?
        .next()
        .and_then(|row| row.get::<pgrx::Json>(1).ok().flatten())
        .map_or(serde_json::Value::Null, |json| json.0);
    let Some((swept, then_keyset)) = heaps_to_sweep(candidates, &planned_scans(&plan)) else {
        return Ok(None);
    };
    let batch = policy
        .batch_size
        .map(i64::from)
        .unwrap_or(default_batch_size) as f64;
    // Before anything is seen, a range as if every row were expired; the
    // first batches then size it from what they find.
    let rows: f64 = swept.iter().map(|c| c.rows.max(0.0)).sum();
    let pages: f64 = swept.iter().map(|c| c.pages.max(0.0)).sum();
    let rows_per_page = if pages > 0.0 { rows / pages } else { 0.0 };
    let first_pages = (batch / rows_per_page.max(1.0)).ceil() as u32;
    Ok(Sweep::new(
        swept.into_iter().map(|c| c.heap).collect(),
        first_pages,
        then_keyset,
    ))
}

/// Whether the table's owner (the current user) may call the function a
/// sweep's batches call ([`crate::sweep_budget`]): without it, the keyset.
fn budget_callable(client: &mut SpiClient<'_>, time_type: u32) -> Result<bool> {
    let callable = crate::catalog::rows(
        client,
        &sqlgen::sweep_budget_callable_sql(),
        &[pgrx::pg_sys::Oid::from(time_type).into()],
        |r| r.get::<bool>(1),
    )
    .map_err(internal)?;
    Ok(callable.into_iter().flatten().next().unwrap_or(false))
}

/// The heaps that hold `root`'s rows: itself, or its leaf partitions but
/// those in `excluded` (following policies of their own); `None` while a
/// partition of it is being detached.
fn candidates(
    client: &mut SpiClient<'_>,
    root: RelId,
    excluded: &[RelId],
) -> Result<Option<Vec<Candidate>>> {
    type Row = (
        RelId,
        Option<RelId>,
        bool,
        bool,
        String,
        String,
        i64,
        f64,
        f64,
        bool,
        bool,
    );
    let tree: Vec<Row> = crate::catalog::rows(
        client,
        &sqlgen::heap_candidates_sql(),
        &[pgrx::pg_sys::Oid::from(root).into()],
        |r| {
            let oid = |i| r.get::<pgrx::pg_sys::Oid>(i).map(|o| o.map(|o| o.to_u32()));
            Ok((
                oid(1)?.unwrap_or_default(),
                oid(2)?,
                r.get::<bool>(3)?.unwrap_or_default(),
                r.get::<bool>(4)?.unwrap_or_default(),
                r.get::<String>(5)?.unwrap_or_default(),
                r.get::<String>(6)?.unwrap_or_default(),
                r.get::<i64>(7)?.unwrap_or_default(),
                r.get::<f64>(8)?.unwrap_or_default(),
                r.get::<f64>(9)?.unwrap_or_default(),
                r.get::<bool>(10)?.unwrap_or_default(),
                r.get::<bool>(11)?.unwrap_or_default(),
            ))
        },
    )
    .map_err(internal)?;
    if tree.iter().any(|row| row.10) {
        return Ok(None);
    }
    let parents: HashMap<RelId, RelId> = tree
        .iter()
        .filter_map(|row| row.1.map(|parent| (row.0, parent)))
        .collect();
    let leaves = tree
        .into_iter()
        .filter(|row| row.2 && !excluded.contains(&row.0))
        .map(
            |(relid, _, _, ordinary, schema, name, blocks, rows, pages, same, _)| {
                let links = links_up(relid, root, &parents);
                Candidate {
                    heap: Heap {
                        relid,
                        qualified: sqlgen::quote_qualified(&schema, &name),
                        blocks: u32::try_from(blocks).unwrap_or(u32::MAX),
                        guard: (relid != root)
                            .then(|| sqlgen::leaf_sweep_guard(relid, root, &links)),
                        links,
                    },
                    schema,
                    name,
                    rows,
                    pages,
                    sweepable: ordinary && (relid == root || same),
                }
            },
        )
        .collect();
    Ok(Some(leaves))
}

/// The (partition, parent) links from `leaf` up to `root`.
fn links_up(leaf: RelId, root: RelId, parents: &HashMap<RelId, RelId>) -> Vec<(RelId, RelId)> {
    let mut links = Vec::new();
    let mut at = leaf;
    while at != root {
        let Some(&parent) = parents.get(&at) else {
            break;
        };
        links.push((at, parent));
        at = parent;
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_covers_every_block_once_and_ends() {
        let mut s = HeapSweep::new(10, 4);
        assert_eq!(s.range(), Some(((0, 0), (4, 0))));
        // 4 pages, 100 rows, limit 100: full, stopped at its last row.
        s.advance(100, 100, Some((3, 7)));
        assert_eq!(s.after, (3, 7));
        assert_eq!(s.range(), Some(((3, 7), (8, 0))));
        // Not full: the whole range was seen.
        s.advance(10, 100, Some((5, 1)));
        assert_eq!(s.after, (8, 0));
        // The last range is cut at the end.
        assert_eq!(s.range().map(|r| r.1), Some((10, 0)));
        s.advance(0, 100, None);
        assert_eq!(s.range(), None);
    }

    #[test]
    fn ranges_follow_the_density_of_expired_rows() {
        let mut s = HeapSweep::new(100_000, 8);
        // 8 pages held 200 rows where 1000 were wanted: 40 pages next.
        s.advance(200, 1000, Some((7, 3)));
        assert_eq!(s.pages, 32, "at most four times the last range");
        s.advance(0, 1000, None);
        assert_eq!(s.pages, 128, "an empty range quadruples");
        let mut dense = HeapSweep::new(100_000, 64);
        // Full after 4 pages (3 whole blocks and one partly): 4 pages next.
        dense.advance(1000, 1000, Some((3, 20)));
        assert_eq!((dense.after, dense.pages), ((3, 20), 4));
        let mut empty = HeapSweep::new(1_000_000, MAX_PAGES);
        empty.advance(0, 1000, None);
        assert_eq!(empty.pages, MAX_PAGES);
    }

    #[test]
    fn a_row_reported_outside_its_range_ends_the_range() {
        // A row updated while it was locked is returned at its new place.
        let mut s = HeapSweep::new(100, 4);
        s.advance(1000, 1000, Some((50, 1)));
        assert_eq!(s.after, (4, 0));
    }

    #[test]
    fn a_sweep_never_goes_back() {
        let mut s = HeapSweep::new(100, 4);
        s.advance(1000, 1000, Some((2, 5)));
        assert_eq!(s.after, (2, 5));
        // The last row returned moved before the range's start.
        s.advance(1000, 1000, Some((1, 1)));
        assert_eq!(s.after, (6, 0));
    }

    #[test]
    fn an_empty_table_has_nothing_to_sweep() {
        assert_eq!(HeapSweep::new(0, 4).range(), None);
    }

    fn heap(relid: RelId, blocks: u32) -> Heap {
        Heap {
            relid,
            qualified: format!("\"public\".\"p{relid}\""),
            blocks,
            guard: Some(format!("guard {relid}")),
            links: vec![(relid, 0)],
        }
    }

    #[test]
    fn a_sweep_goes_through_its_heaps_in_order() {
        let mut s = Sweep::new(vec![heap(1, 3), heap(2, 0), heap(3, 5)], 4, false).unwrap();
        let range = |s: &mut Sweep| s.next_range().map(|(h, from, to)| (h.relid, from, to));
        assert_eq!(range(&mut s), Some((1, (0, 0), (3, 0))));
        s.advance(10, 100, Some((2, 1)));
        // The empty heap is passed over; the next starts with the pages the
        // last range ended with.
        assert_eq!(range(&mut s), Some((3, (0, 0), (5, 0))));
        // Full after two pages: two pages next.
        s.advance(1000, 1000, Some((1, 9)));
        assert_eq!(range(&mut s), Some((3, (1, 9), (4, 0))));
        s.advance(10, 1000, None);
        assert_eq!(range(&mut s), Some((3, (4, 0), (5, 0))));
        s.advance(0, 1000, None);
        assert_eq!(range(&mut s), None);
        assert_eq!(range(&mut s), None);
    }

    #[test]
    fn partitions_removed_whole_leave_the_sweep() {
        let mut s = Sweep::new(vec![heap(1, 3), heap(2, 7), heap(3, 5)], 4, true).unwrap();
        s.forget(&[1, 3]);
        assert_eq!(
            s.next_range().map(|(h, from, to)| (h.relid, from, to)),
            Some((2, (0, 0), (4, 0)))
        );
        s.forget(&[2]);
        assert_eq!(s.next_range().map(|(h, ..)| h.relid), None);
        assert!(Sweep::new(Vec::new(), 4, false).is_none());
    }

    fn scan(relation: &str, node: &str, rows: f64) -> serde_json::Value {
        serde_json::json!({
            "Node Type": node, "Relation Name": relation, "Schema": "public",
            "Alias": "t", "Plan Rows": rows,
        })
    }

    #[test]
    fn a_plan_names_the_heaps_it_reads_and_how() {
        let plan = serde_json::json!([{ "Plan": {
            "Node Type": "Append", "Plan Rows": 300,
            "Plans": [
                scan("p0", "Index Scan", 100.0),
                { "Node Type": "Bitmap Heap Scan", "Relation Name": "p1", "Schema": "public", "Plan Rows": 150,
                  "Plans": [{ "Node Type": "Bitmap Index Scan", "Index Name": "p1_ts", "Plan Rows": 150 }] },
                { "Node Type": "Gather", "Plan Rows": 50,
                  "Plans": [scan("p2", "Seq Scan", 20.0)] },
            ]
        }}]);
        let scans = planned_scans(&plan);
        let seen: Vec<(&str, bool, f64)> = scans
            .iter()
            .map(|s| (s.relation.as_str(), s.in_order, s.rows))
            .collect();
        assert_eq!(
            seen,
            [
                ("p0", false, 100.0),
                ("p1", true, 150.0),
                ("p2", true, 20.0)
            ]
        );
        assert!(planned_scans(&serde_json::Value::Null).is_empty());
    }

    fn candidate(relid: RelId, rows: f64, sweepable: bool) -> Candidate {
        Candidate {
            heap: heap(relid, 10),
            schema: "public".into(),
            name: format!("p{relid}"),
            rows,
            pages: 10.0,
            sweepable,
        }
    }

    #[test]
    fn each_heap_the_plan_reads_is_chosen_by_the_rule_for_a_table() {
        let scans = |specs: &[(&str, &str, f64)]| {
            planned_scans(&serde_json::json!([{ "Plan": {
                "Node Type": "Append",
                "Plans": specs.iter().map(|(r, n, rows)| scan(r, n, *rows)).collect::<Vec<_>>()
            }}]))
        };
        let relids = |chosen: Option<(Vec<Candidate>, bool)>| {
            chosen.map(|(c, then)| (c.iter().map(|c| c.heap.relid).collect::<Vec<_>>(), then))
        };
        // Hash partitions, a third of each expired: all swept.
        let hashed = scans(&[("p1", "Index Scan", 300.0), ("p2", "Index Scan", 310.0)]);
        let two = || vec![candidate(1, 1000.0, true), candidate(2, 1000.0, true)];
        assert_eq!(
            relids(heaps_to_sweep(two(), &hashed)),
            Some((vec![1, 2], false))
        );
        // Ranges by time: the young partition is pruned (not in the plan),
        // the one at the cutoff holds a few: the keyset, no sweep.
        let ranged = scans(&[("p1", "Index Scan", 10.0)]);
        assert_eq!(relids(heaps_to_sweep(two(), &ranged)), None);
        // An old partition all expired, one at the cutoff: the old one is
        // swept, the keyset takes the rest.
        let old = scans(&[("p1", "Seq Scan", 1000.0), ("p2", "Index Scan", 10.0)]);
        assert_eq!(relids(heaps_to_sweep(two(), &old)), Some((vec![1], true)));
        // A partition the plan reads that cannot be swept: all by keyset.
        let mixed = vec![candidate(1, 1000.0, true), candidate(2, 1000.0, false)];
        assert_eq!(relids(heaps_to_sweep(mixed, &hashed)), None);
        // One that cannot, pruned: no matter.
        let mixed = vec![candidate(1, 1000.0, true), candidate(2, 1000.0, false)];
        let first_only = scans(&[("p1", "Seq Scan", 400.0)]);
        assert_eq!(
            relids(heaps_to_sweep(mixed, &first_only)),
            Some((vec![1], false))
        );
        // No statistics: only a plan reading the heap in order sweeps.
        let unknown = vec![candidate(1, 0.0, true)];
        assert_eq!(
            relids(heaps_to_sweep(
                unknown,
                &scans(&[("p1", "Index Scan", 400.0)])
            )),
            None
        );
    }

    #[test]
    fn an_index_plan_sweeps_only_a_large_share() {
        let index = |rows: f64| PlannedScan {
            schema: "public".into(),
            relation: "log".into(),
            in_order: false,
            rows,
        };
        assert!(sweeps(&index(150_000.0), 300_000.0));
        assert!(sweeps(&index(75_000.0), 300_000.0));
        assert!(!sweeps(&index(74_999.0), 300_000.0));
        assert!(!sweeps(&index(150_000.0), 0.0), "no statistics: the index");
        let seq = PlannedScan {
            in_order: true,
            ..index(1.0)
        };
        assert!(sweeps(&seq, 300_000.0));
    }

    #[test]
    fn links_lead_from_a_leaf_up_to_the_root() {
        let parents: HashMap<RelId, RelId> = [(3, 2), (2, 1), (4, 1)].into();
        assert_eq!(links_up(3, 1, &parents), [(3, 2), (2, 1)]);
        assert_eq!(links_up(4, 1, &parents), [(4, 1)]);
        assert!(links_up(1, 1, &parents).is_empty());
    }
}
