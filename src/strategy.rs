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
//! (`EXPLAIN SELECT ... WHERE time < cutoff`): a sweep when that plan reads
//! the heap in physical order (a sequential or bitmap heap scan), or when
//! it expects at least [`SWEEP_SHARE`] of the table's rows to be expired
//! (a sweep then reads at most four rows per row it deletes, in order,
//! where the keyset fetches each expired row through the index, sorts
//! groups of equal times, and skips dead index entries); else the keyset.
//! Sweeps only run on
//! ordinary tables that no table inherits from, outside Citus (a `ctid`
//! names a row of one table on one node), for expire policies (orphan tests
//! take the keyset).

use pgrx::spi::SpiClient;

use crate::catalog::{internal, Policy, PolicyKind, Setup};
use crate::errors::Result;
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

/// Whether a plan (EXPLAIN's text lines) reads the heap in physical order.
pub fn plan_reads_heap_in_order<S: AsRef<str>>(plan: &[S]) -> bool {
    plan.iter().any(|line| {
        let node = line
            .as_ref()
            .trim_start()
            .trim_start_matches("->")
            .trim_start();
        [
            "Seq Scan",
            "Parallel Seq Scan",
            "Bitmap Heap Scan",
            "Parallel Bitmap Heap Scan",
        ]
        .iter()
        .any(|n| node.starts_with(n))
    })
}

/// The rows a plan (EXPLAIN's text lines, with costs) expects its top node
/// to return.
pub fn plan_rows<S: AsRef<str>>(plan: &[S]) -> Option<f64> {
    let top = plan.first()?.as_ref();
    let (_, rest) = top.split_once(" rows=")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Whether a policy sweeps the heap, from the plan for finding its expired
/// rows and the table's row count by the statistics.
pub fn sweeps<S: AsRef<str>>(plan: &[S], table_rows: f64) -> bool {
    plan_reads_heap_in_order(plan)
        || plan_rows(plan).is_some_and(|rows| table_rows > 0.0 && rows >= table_rows * SWEEP_SHARE)
}

/// Chooses how `policy`'s root batches select their rows: a heap sweep
/// (over the blocks the table has now), or `None` for the keyset. Run as
/// the table's owner.
pub fn choose(
    client: &mut SpiClient<'_>,
    setup: &Setup,
    policy: &Policy,
    default_batch_size: i64,
) -> Result<Option<HeapSweep>> {
    if !crate::gucs::HEAP_SWEEP.get()
        || policy.kind != PolicyKind::Expire
        || !setup.deletes_by_ctid(policy.relid)
        || setup.lock_free(policy.relid)
    {
        return Ok(None);
    }
    let shape = setup.shape(policy.relid);
    let time = setup.policy_column(policy.id);
    // EXPLAIN counts as a volatile statement: not in a read-only SPI call.
    let plan: Vec<String> = client
        .update(
            &sqlgen::expired_rows_plan_sql(shape, time),
            None,
            &[policy.cutoff.into()],
        )
        .map_err(internal)?
        .map(|row| row.get::<String>(1).ok().flatten().unwrap_or_default())
        .collect();
    let (blocks, rows_per_page, table_rows) = client
        .select(
            &sqlgen::heap_size_sql(),
            None,
            &[pgrx::pg_sys::Oid::from(policy.relid).into()],
        )
        .map_err(internal)?
        .next()
        .map(|row| {
            Ok::<_, pgrx::spi::SpiError>((
                row.get::<i64>(1)?.unwrap_or_default(),
                row.get::<f64>(2)?.unwrap_or_default(),
                row.get::<f64>(3)?.unwrap_or_default(),
            ))
        })
        .transpose()
        .map_err(internal)?
        .unwrap_or_default();
    if !sweeps(&plan, table_rows) {
        return Ok(None);
    }
    let batch = policy
        .batch_size
        .map(i64::from)
        .unwrap_or(default_batch_size) as f64;
    // Before anything is seen, a range as if every row were expired; the
    // first batches then size it from what they find.
    let pages = (batch / rows_per_page.max(1.0)).ceil() as u32;
    Ok(Some(HeapSweep::new(
        u32::try_from(blocks).unwrap_or(u32::MAX),
        pages,
    )))
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

    #[test]
    fn plans_that_read_the_heap_in_order() {
        assert!(plan_reads_heap_in_order(&[
            "Seq Scan on log t",
            "  Filter: (ts < $1)"
        ]));
        assert!(plan_reads_heap_in_order(&[
            "Gather",
            "  Workers Planned: 2",
            "  ->  Parallel Seq Scan on log t"
        ]));
        assert!(plan_reads_heap_in_order(&[
            "Bitmap Heap Scan on log t",
            "  ->  Bitmap Index Scan on log_ts_idx"
        ]));
        assert!(!plan_reads_heap_in_order(&[
            "Index Only Scan using log_ts_idx on log t"
        ]));
        assert!(!plan_reads_heap_in_order(&[
            "Index Scan using log_ts_idx on log t"
        ]));
    }

    #[test]
    fn an_index_plan_sweeps_only_a_large_share() {
        let index = |rows: u32| {
            vec![format!(
                "Index Scan using log_ts_idx on log t  (cost=0.42..5414.01 rows={rows} width=6)"
            )]
        };
        assert_eq!(plan_rows(&index(150891)), Some(150891.0));
        assert!(sweeps(&index(150_000), 300_000.0));
        assert!(sweeps(&index(75_000), 300_000.0));
        assert!(!sweeps(&index(74_999), 300_000.0));
        assert!(!sweeps(&index(150_000), 0.0), "no statistics: the index");
        assert!(sweeps(
            &["Seq Scan on log t  (cost=0.00..1.00 rows=1 width=6)"],
            300_000.0
        ));
    }
}
