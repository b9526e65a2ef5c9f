//! Partitions that go whole. A policy on a table range-partitioned by its
//! time column removes each partition whose whole range is older than the
//! cutoff as a unit (detached from its partitioned table, then dropped)
//! instead of deleting its rows one by one. The partition holding the
//! cutoff, the default partition, partitions unbounded below and newer
//! partitions are left to the policy's row batches, as before.
//!
//! A partition goes whole only where that removes exactly the rows a
//! policy's batches would delete and does nothing they would not: its
//! upper bound is at most the cutoff (every row it can hold is expired);
//! it and every partition below it are ordinary or partitioned tables owned
//! by the policy table's owner; no DELETE trigger or rule would have run for
//! its rows (on it, below it, or on the partitioned table); no row security
//! the owner is subject to hides some of its rows (forced on the
//! partitioned table, or on a partition, whose rows are counted by reading
//! it directly); every foreign key to the
//! partitioned table is one the run walks (its children are deleted first,
//! [`crate::deleter`]), and no foreign key points at the partition itself.
//! Anything else keeps its rows deleted by batches. Never on Citus tables.
//!
//! Which partitions go is decided from the catalog and the partition bounds
//! read as values of the partition key's type (the stored bound expression,
//! never its text), compared with the cutoff by PostgreSQL's own operator:
//! the same comparison the batches make for each row.

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::{SpiClient, SpiError, SpiHeapTupleData};

use crate::catalog::{get, internal, rows, PartitionAction, Policy, PolicyKind, Setup};
use crate::errors::Result;
use crate::planner::RelId;

/// A partition a policy removes whole.
#[derive(Clone, Debug)]
pub struct WholePartition {
    pub relid: RelId,
    /// The partitioned table it is detached from (its direct parent).
    pub parent: RelId,
    /// `schema.table` quoted, of the partition and of its parent.
    pub qualified: String,
    pub parent_qualified: String,
    /// The partition and, when it is itself partitioned, every partition
    /// below it: the tables whose rows go with it.
    pub members: Vec<RelId>,
    /// The tables the parent's foreign keys reference: detaching locks
    /// them (SHARE ROW EXCLUSIVE), after the parent; a run locks them
    /// first, in the order a writer adding a row and then its children
    /// does, so that the two never wait for each other.
    pub referenced: Vec<RelId>,
}

/// The partitions of `policy`'s table that its run removes whole, found as
/// the table's owner would see them. Empty for anything but an expire
/// policy on a partitioned table partitioned by range on its time column,
/// and when `pg_retention.drop_partitions` is off.
pub fn whole_partitions(
    client: &SpiClient<'_>,
    setup: &Setup,
    policy: &Policy,
) -> Result<Vec<WholePartition>> {
    let mut found = Vec::new();
    if let Some(table) = table_of(client, setup, policy)? {
        collect(client, policy, policy.relid, &table, &mut found)?;
    }
    Ok(found)
}

/// `partition` as it is now, if it still goes whole: read again once the
/// run holds its lock, which keeps its bound, triggers, owner and place
/// from changing. Between the steps of a `retention_run` anything may have
/// changed (detached, attached elsewhere with another range, renamed, a
/// trigger added); the partition is then `None`, and left to the batches.
pub fn still_whole(
    client: &SpiClient<'_>,
    setup: &Setup,
    policy: &Policy,
    listed: &WholePartition,
) -> Result<Option<WholePartition>> {
    // Read in a snapshot taken now, after the lock: the statement running
    // this step took its own before (before a `batch_pause`, say), and the
    // catalog queries would otherwise see it as it was then.
    // SAFETY: a READ COMMITTED transaction's new snapshot, pushed and popped
    // around the reads; an error in between aborts the subtransaction,
    // which pops it.
    unsafe {
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let found = recheck(client, setup, policy, listed);
        pg_sys::PopActiveSnapshot();
        found
    }
}

fn recheck(
    client: &SpiClient<'_>,
    setup: &Setup,
    policy: &Policy,
    listed: &WholePartition,
) -> Result<Option<WholePartition>> {
    let Some(table) = table_of(client, setup, policy)? else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {}, i.inhparent, pg_catalog.format('%I.%I', pn.nspname, p.relname), {}, {} \
         FROM pg_catalog.pg_inherits i \
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         JOIN pg_catalog.pg_class p ON p.oid OPERATOR(pg_catalog.=) i.inhparent \
         JOIN pg_catalog.pg_namespace pn ON pn.oid OPERATOR(pg_catalog.=) p.relnamespace \
         WHERE c.oid OPERATOR(pg_catalog.=) $1 AND c.relispartition \
           AND $4 OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT a.relid::pg_catalog.oid FROM pg_catalog.pg_partition_ancestors(c.oid) a))",
        partition_columns(),
        by_time("p"),
        referenced_sql("i.inhparent")
    );
    let found = rows(
        client,
        &sql,
        &[
            pg_sys::Oid::from(listed.relid).into(),
            table.time.into(),
            table.owner.into(),
            pg_sys::Oid::from(policy.relid).into(),
        ],
        |r| {
            Ok((
                partition_of_row(r)?,
                get::<pg_sys::Oid>(r, 7)?.map(u32::from),
                get::<String>(r, 8)?.unwrap_or_default(),
                get::<bool>(r, 9)?.unwrap_or(false),
                get::<Vec<pg_sys::Oid>>(r, 10)?.unwrap_or_default(),
            ))
        },
    )
    .map_err(internal)?;
    let Some((p, Some(parent), parent_qualified, parent_by_time, referenced)) =
        found.into_iter().next()
    else {
        return Ok(None);
    };
    if parent != listed.parent || !parent_by_time || !goes_whole(client, policy, &table, &p)? {
        return Ok(None);
    }
    Ok(Some(WholePartition {
        relid: p.relid,
        parent,
        qualified: p.qualified,
        parent_qualified,
        members: p.members,
        referenced: referenced.into_iter().map(u32::from).collect(),
    }))
}

/// The conditions on the policy, the session and the partitioned table;
/// `None` when no partition of it goes whole.
fn table_of<'s>(
    client: &SpiClient<'_>,
    setup: &'s Setup,
    policy: &Policy,
) -> Result<Option<Table<'s>>> {
    if !crate::gucs::DROP_PARTITIONS.get()
        || policy.kind != PolicyKind::Expire
        || policy.partition_action.is_none()
        || setup.shape(policy.relid).plain_table
        || setup.routed(policy.relid)
        || transaction_snapshot_is_fixed()
    {
        return Ok(None);
    }
    let time = &setup.policy_column(policy.id).name;
    if !table_allows_whole_partitions(client, policy.relid, time)? {
        return Ok(None);
    }
    Ok(Some(Table {
        owner: setup.owner_of(policy.relid)?,
        time,
        own_policies: &setup.shape(policy.relid).excluded_inheritors,
    }))
}

/// Under REPEATABLE READ or SERIALIZABLE every statement sees the
/// transaction's first snapshot: a partition could not be checked again
/// as it is once locked (a trigger added meanwhile would stay unseen).
/// Such a transaction deletes the rows in batches, and sweeps no
/// partition ([`crate::strategy`]).
pub fn transaction_snapshot_is_fixed() -> bool {
    // SAFETY: reads the backend's isolation level, set for the transaction.
    unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as std::ffi::c_int }
}

/// What every partition of a policy's table is checked against.
struct Table<'a> {
    owner: pg_sys::Oid,
    time: &'a str,
    /// Partitions with an expire policy of their own, and those below them:
    /// their rows go by their own policy, never by this one's.
    own_policies: &'a [RelId],
}

/// The partitioned table's own conditions: partitioned by range on the
/// time column alone ([`by_time`]), no DELETE trigger or rule (a
/// statement trigger on it fires for the batches' deletes, a row trigger is
/// cloned onto every partition), no row security its owner is subject to,
/// no foreign key to it that the run leaves to PostgreSQL (SET NULL,
/// SET DEFAULT: the run deletes no child for those, a dropped partition
/// would leave them referencing nothing), and no publication of its
/// deletes (a subscriber would keep rows a drop removed without a DELETE).
fn table_allows_whole_partitions(client: &SpiClient<'_>, relid: RelId, time: &str) -> Result<bool> {
    let sql = format!(
        "SELECT {} \
           AND NOT ({}) \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.confrelid OPERATOR(pg_catalog.=) c.oid \
                 AND k.contype OPERATOR(pg_catalog.=) 'f' AND k.confdeltype OPERATOR(pg_catalog.=) ANY ('{{n,d}}'::pg_catalog.\"char\"[])) \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_publication p WHERE p.pubdelete AND (p.puballtables \
                 OR EXISTS (SELECT FROM pg_catalog.pg_publication_rel pr WHERE pr.prpubid OPERATOR(pg_catalog.=) p.oid \
                       AND pr.prrelid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT m.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree(c.oid) m))) \
                 OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace pn \
                       JOIN pg_catalog.pg_class mc ON mc.relnamespace OPERATOR(pg_catalog.=) pn.pnnspid \
                       WHERE pn.pnpubid OPERATOR(pg_catalog.=) p.oid \
                         AND mc.oid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT m.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree(c.oid) m))))) \
         FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
        by_time("c"),
        deletes_differ("c")
    );
    let found = rows(
        client,
        &sql,
        &[pg_sys::Oid::from(relid).into(), time.into()],
        |r| get::<bool>(r, 1),
    )
    .map_err(internal)?;
    Ok(found.into_iter().next().flatten().unwrap_or(false))
}

/// Whether deleting the rows of relation `alias` does more than dropping
/// them would: a DELETE trigger or rule (enabled or not) fires, or row
/// security its owner is subject to hides some of them.
fn deletes_differ(alias: &str) -> String {
    format!(
        "(({alias}.relrowsecurity AND {alias}.relforcerowsecurity) \
          OR EXISTS (SELECT FROM pg_catalog.pg_trigger tg WHERE tg.tgrelid OPERATOR(pg_catalog.=) {alias}.oid \
               AND NOT tg.tgisinternal AND (tg.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 8) OPERATOR(pg_catalog.<>) 0) \
          OR EXISTS (SELECT FROM pg_catalog.pg_rewrite r WHERE r.ev_class OPERATOR(pg_catalog.=) {alias}.oid \
               AND r.ev_type OPERATOR(pg_catalog.=) '4'))"
    )
}

/// Whether relation `alias` is partitioned by range on column `$2` alone.
fn by_time(alias: &str) -> String {
    format!(
        "EXISTS (SELECT FROM pg_catalog.pg_partitioned_table pt \
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) pt.partrelid \
            AND a.attnum OPERATOR(pg_catalog.=) pt.partattrs[0] \
           WHERE pt.partrelid OPERATOR(pg_catalog.=) {alias}.oid AND pt.partstrat OPERATOR(pg_catalog.=) 'r' \
             AND pt.partnatts OPERATOR(pg_catalog.=) 1 AND a.attname OPERATOR(pg_catalog.=) $2)"
    )
}

/// The columns of a [`Partition`] (`c`, in schema `n`), with `$2` the time
/// column and `$3` the owner.
fn partition_columns() -> String {
    format!(
        "c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relpartbound::pg_catalog.text, {}, \
           ARRAY(SELECT m.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree(c.oid) m), \
           NOT EXISTS (SELECT FROM pg_catalog.pg_partition_tree(c.oid) m \
                   JOIN pg_catalog.pg_class mc ON mc.oid OPERATOR(pg_catalog.=) m.relid \
                   WHERE mc.relkind OPERATOR(pg_catalog.<>) ALL ('{{r,p}}'::pg_catalog.\"char\"[]) \
                      OR mc.relowner OPERATOR(pg_catalog.<>) $3 \
                      OR {} \
                      OR EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.confrelid OPERATOR(pg_catalog.=) mc.oid \
                           AND k.contype OPERATOR(pg_catalog.=) 'f' AND k.conparentid OPERATOR(pg_catalog.=) 0))",
        by_time("c"),
        deletes_differ("mc")
    )
}

/// A direct partition of a partitioned table, as read from the catalog.
struct Partition {
    relid: RelId,
    qualified: String,
    /// `pg_class.relpartbound`, the bound's stored expression.
    bound: String,
    /// Partitioned by range on the policy's time column, alone.
    by_time: bool,
    members: Vec<RelId>,
    /// Nothing in it or below it keeps it from going whole.
    whole: bool,
}

/// Adds the partitions of `parent` (partitioned by range on `time`) that go
/// whole, and those below its partitions that are themselves partitioned by
/// range on `time` but do not go whole.
fn collect(
    client: &SpiClient<'_>,
    policy: &Policy,
    parent: RelId,
    table: &Table<'_>,
    found: &mut Vec<WholePartition>,
) -> Result<()> {
    let parent_qualified = crate::catalog::relation_name(client, parent)?;
    let referenced = referenced_by(client, parent)?;
    for p in partitions_of(client, parent, table.time, table.owner)? {
        if goes_whole(client, policy, table, &p)? {
            found.push(WholePartition {
                relid: p.relid,
                parent,
                qualified: p.qualified,
                parent_qualified: parent_qualified.clone(),
                members: p.members,
                referenced: referenced.clone(),
            });
        } else if p.by_time {
            collect(client, policy, p.relid, table, found)?;
        }
    }
    Ok(())
}

/// The tables `parent`'s foreign keys reference (itself aside), by oid.
fn referenced_by(client: &SpiClient<'_>, parent: RelId) -> Result<Vec<RelId>> {
    let found = rows(
        client,
        &format!("SELECT {}", referenced_sql("$1")),
        &[pg_sys::Oid::from(parent).into()],
        |r| get::<Vec<pg_sys::Oid>>(r, 1),
    )
    .map_err(internal)?;
    Ok(found
        .into_iter()
        .flatten()
        .flatten()
        .map(u32::from)
        .collect())
}

/// The array of the tables the foreign keys of relation `parent` (an SQL
/// expression) reference, itself aside, by oid.
fn referenced_sql(parent: &str) -> String {
    format!(
        "ARRAY(SELECT DISTINCT k.confrelid FROM pg_catalog.pg_constraint k \
           WHERE k.conrelid OPERATOR(pg_catalog.=) {parent} AND k.contype OPERATOR(pg_catalog.=) 'f' \
             AND k.confrelid OPERATOR(pg_catalog.<>) {parent} ORDER BY 1)"
    )
}

/// Whether a partition (of a table partitioned by range on the time
/// column) goes whole: nothing in or below it keeps it from going, no
/// partition in it has a policy of its own, and its range ends at or before
/// the cutoff.
fn goes_whole(
    client: &SpiClient<'_>,
    policy: &Policy,
    table: &Table<'_>,
    p: &Partition,
) -> Result<bool> {
    if !p.whole || p.members.iter().any(|m| table.own_policies.contains(m)) {
        return Ok(false);
    }
    match upper_bound_if_bounded(&p.bound) {
        Some((value, type_oid)) => at_or_before_cutoff(client, value, type_oid, policy),
        None => Ok(false),
    }
}

fn partitions_of(
    client: &SpiClient<'_>,
    parent: RelId,
    time: &str,
    owner: pg_sys::Oid,
) -> Result<Vec<Partition>> {
    // Oldest first where the names say so (most schemes name partitions by
    // their range); the order only decides which go first in a capped run.
    let sql = format!(
        "SELECT {} \
         FROM pg_catalog.pg_inherits i \
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE i.inhparent OPERATOR(pg_catalog.=) $1 AND c.relispartition \
         ORDER BY c.relname, c.oid",
        partition_columns()
    );
    rows(
        client,
        &sql,
        &[pg_sys::Oid::from(parent).into(), time.into(), owner.into()],
        partition_of_row,
    )
    .map_err(internal)
}

/// A [`Partition`] from the first columns of a row ([`partition_columns`]).
fn partition_of_row(r: &SpiHeapTupleData<'_>) -> std::result::Result<Partition, SpiError> {
    Ok(Partition {
        relid: get::<pg_sys::Oid>(r, 1)?.map(u32::from).unwrap_or_default(),
        qualified: get::<String>(r, 2)?.unwrap_or_default(),
        bound: get::<String>(r, 3)?.unwrap_or_default(),
        by_time: get::<bool>(r, 4)?.unwrap_or(false),
        members: get::<Vec<pg_sys::Oid>>(r, 5)?
            .unwrap_or_default()
            .into_iter()
            .map(u32::from)
            .collect(),
        whole: get::<bool>(r, 6)?.unwrap_or(false),
    })
}

/// The upper bound of a range partition bounded on both sides, as its
/// value and type; `None` for a default partition, a bound of another
/// strategy, or a range open below (MINVALUE) or above (MAXVALUE).
fn upper_bound_if_bounded(bound: &str) -> Option<(pg_sys::Datum, pg_sys::Oid)> {
    let text = std::ffi::CString::new(bound).ok()?;
    // SAFETY: `relpartbound` is a node tree PostgreSQL wrote with
    // nodeToString; stringToNode reads it back into the current memory
    // context (freed with it). Every pointer is checked for its node type
    // before it is read; a range bound's lists hold PartitionRangeDatum
    // nodes, whose VALUE kind holds a Const of the partition key's type.
    unsafe {
        let node = pg_sys::stringToNode(text.as_ptr()) as *mut pg_sys::Node;
        if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_PartitionBoundSpec {
            return None;
        }
        let spec = node as *mut pg_sys::PartitionBoundSpec;
        if (*spec).is_default || (*spec).strategy != b'r' as std::ffi::c_char {
            return None;
        }
        let lower = single_range_datum((*spec).lowerdatums)?;
        let upper = single_range_datum((*spec).upperdatums)?;
        if (*lower).kind != pg_sys::PartitionRangeDatumKind::PARTITION_RANGE_DATUM_VALUE
            || (*upper).kind != pg_sys::PartitionRangeDatumKind::PARTITION_RANGE_DATUM_VALUE
        {
            return None;
        }
        let value = (*upper).value;
        if value.is_null() || (*value).type_ != pg_sys::NodeTag::T_Const {
            return None;
        }
        let constant = value as *mut pg_sys::Const;
        if (*constant).constisnull {
            return None;
        }
        Some(((*constant).constvalue, (*constant).consttype))
    }
}

/// The one PartitionRangeDatum of a single-column range bound's list.
///
/// # Safety
/// `list` is a bound's `lowerdatums` or `upperdatums`.
unsafe fn single_range_datum(list: *mut pg_sys::List) -> Option<*mut pg_sys::PartitionRangeDatum> {
    if list.is_null() || (*list).length != 1 {
        return None;
    }
    let first = (*(*list).elements).ptr_value as *mut pg_sys::Node;
    if first.is_null() || (*first).type_ != pg_sys::NodeTag::T_PartitionRangeDatum {
        return None;
    }
    Some(first as *mut pg_sys::PartitionRangeDatum)
}

/// Whether a partition's upper bound is at most the policy's cutoff: then
/// every row it can hold (below the bound) is older than the cutoff.
fn at_or_before_cutoff(
    client: &SpiClient<'_>,
    upper: pg_sys::Datum,
    type_oid: pg_sys::Oid,
    policy: &Policy,
) -> Result<bool> {
    // SAFETY: `upper` is a value of `type_oid` (a Const of the partition
    // key's type: timestamptz, timestamp or date, all passed by value).
    let bound = unsafe { DatumWithOid::new(upper, type_oid) };
    let found = rows(
        client,
        "SELECT $1 OPERATOR(pg_catalog.<=) $2",
        &[bound, policy.cutoff.into()],
        |r| get::<bool>(r, 1),
    )
    .map_err(internal)?;
    Ok(found.into_iter().next().flatten().unwrap_or(false))
}

/// `retention_partitions()`: per expire policy on a table partitioned by
/// range on its time column, every partition below it with its bounds,
/// estimated rows, size, and what the next run does with it.
#[allow(clippy::type_complexity)]
#[pgrx::pg_extern(stable, parallel_unsafe)]
fn _retention_partitions(
    label: Option<&str>,
) -> pgrx::iter::TableIterator<
    'static,
    (
        pgrx::name!(policy_id, i64),
        pgrx::name!(relid, pg_sys::Oid),
        pgrx::name!(partition, pg_sys::Oid),
        pgrx::name!(level, i32),
        pgrx::name!(bounds, Option<String>),
        pgrx::name!(rows_estimate, Option<i64>),
        pgrx::name!(bytes, Option<i64>),
        pgrx::name!(next_run, String),
    ),
> {
    use crate::errors::OrRaise;
    let found = crate::security::with_pinned_search_path(|| {
        pgrx::spi::Spi::connect(|client| -> Result<Vec<PartitionRow>> {
            let setup = Setup::load(client, label, true)?;
            let mut out = Vec::new();
            for policy in setup
                .policies
                .iter()
                .filter(|p| p.kind == PolicyKind::Expire)
            {
                let whole = crate::security::as_table_owner(policy.owner, || {
                    whole_partitions(client, &setup, policy)
                })?;
                for (partition, level, bounds, rows, bytes) in tree_of(client, policy.relid)? {
                    let next_run = next_run(policy, &whole, partition);
                    out.push((
                        policy.id,
                        pg_sys::Oid::from(policy.relid),
                        pg_sys::Oid::from(partition),
                        level,
                        bounds,
                        rows,
                        bytes,
                        next_run,
                    ));
                }
            }
            Ok(out)
        })
    })
    .or_raise();
    pgrx::iter::TableIterator::new(found)
}

type PartitionRow = (
    i64,
    pg_sys::Oid,
    pg_sys::Oid,
    i32,
    Option<String>,
    Option<i64>,
    Option<i64>,
    String,
);

/// A partition, its level, bounds, estimated rows and size.
type TreeEntry = (RelId, i32, Option<String>, Option<i64>, Option<i64>);

/// Every partition below `relid`, by level then name: bounds as
/// PostgreSQL prints them, estimated rows (a leaf's statistics, or the sum
/// of its leaves'), size with everything below it.
fn tree_of(client: &SpiClient<'_>, relid: RelId) -> Result<Vec<TreeEntry>> {
    let sql = "SELECT t.relid, t.level, pg_catalog.pg_get_expr(c.relpartbound, c.oid), \
           (SELECT pg_catalog.sum(GREATEST(lc.reltuples, 0::pg_catalog.float4))::pg_catalog.int8 \
              FROM pg_catalog.pg_partition_tree(t.relid) l JOIN pg_catalog.pg_class lc ON lc.oid OPERATOR(pg_catalog.=) l.relid \
             WHERE l.isleaf), \
           (SELECT pg_catalog.sum(pg_catalog.pg_total_relation_size(l.relid))::pg_catalog.int8 \
              FROM pg_catalog.pg_partition_tree(t.relid) l) \
         FROM pg_catalog.pg_partition_tree($1) t \
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid \
         WHERE t.level OPERATOR(pg_catalog.>) 0 \
         ORDER BY t.level, c.relname";
    rows(client, sql, &[pg_sys::Oid::from(relid).into()], |r| {
        Ok((
            get::<pg_sys::Oid>(r, 1)?.map(u32::from).unwrap_or_default(),
            get::<i32>(r, 2)?.unwrap_or_default(),
            get::<String>(r, 3)?,
            get::<i64>(r, 4)?,
            get::<i64>(r, 5)?,
        ))
    })
    .map_err(internal)
}

/// What the next run does with `partition`, as far as the catalog says
/// (the run checks again under the partition's lock, and its rows).
fn next_run(policy: &Policy, whole: &[WholePartition], partition: RelId) -> String {
    if whole.iter().any(|w| w.relid == partition) {
        return match &policy.partition_action {
            Some(PartitionAction::Drop) | None => "dropped whole".to_string(),
            Some(PartitionAction::Detach(None)) => "detached whole".to_string(),
            Some(PartitionAction::Detach(Some(schema))) => {
                format!("detached whole, moved to schema {schema}")
            }
        };
    }
    if whole.iter().any(|w| w.members.contains(&partition)) {
        return "goes with the partition above it".to_string();
    }
    "its expired rows, if any, deleted in batches".to_string()
}
