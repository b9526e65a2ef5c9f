//! Reporting: `retention_stats()` (what is there) and `retention_preview()`
//! (what the next run deletes, table by table, in the run's order).
//!
//! The preview counts with set predicates that mirror the run: a row goes if
//! it is expired, or references (through a walked foreign key) a row that
//! goes; an orphan goes if it is past the grace period and every row
//! referencing it goes first.

use std::cell::Cell;

use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::catalog::{
    get, internal, rows, rows_mut, Broken, PartitionAction, Policy, PolicyKind, Setup,
};
use crate::errors::{OrRaise, Result, RetentionError};
use crate::partitions;
use crate::planner::{ForeignKey, RelId};
use crate::security::{as_extension_owner, as_table_owner, with_pinned_search_path};
use crate::sqlgen;
use crate::subxact::in_subtransaction;

/// Predicates over the rows a run deletes, with the policies' cutoffs bound
/// as `$1..$n` in the order of `setup.policies`.
struct Predicates<'a> {
    setup: &'a Setup,
    client: &'a SpiClient<'a>,
    next_alias: Cell<usize>,
}

/// Beyond this nesting the foreign keys must be cyclic.
const MAX_DEPTH: usize = 64;

impl Predicates<'_> {
    fn alias(&self) -> String {
        let n = self.next_alias.get() + 1;
        self.next_alias.set(n);
        format!("a{n}")
    }

    fn param(&self, policy: &Policy) -> usize {
        self.setup
            .policies
            .iter()
            .position(|p| p.id == policy.id)
            .expect("policy of the setup")
            + 1
    }

    fn args(&self) -> Vec<DatumWithOid<'static>> {
        self.setup
            .policies
            .iter()
            .map(|p| p.cutoff.into())
            .collect()
    }

    fn too_deep(depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(RetentionError::Unsupported(
                "foreign keys between policy tables nest too deep (a cycle through orphan policies?)".into(),
            ));
        }
        Ok(())
    }

    /// Rows of `rel` (alias) deleted by time-based policies, wherever: its
    /// own step's ([`Predicates::counted`]) and, for a partitioned table,
    /// those its partitions' steps delete through the foreign keys declared
    /// on them.
    fn expiring(&self, rel: RelId, alias: &str, depth: usize) -> Result<String> {
        let mut parts = vec![self.counted(rel, alias, depth)?];
        for (&partition, ancestors) in &self.setup.partition_ancestors {
            if !ancestors.contains(&rel) {
                continue;
            }
            let there = self.expiring_here(partition, alias, depth + 1)?;
            if there != "false" {
                parts.push(format!(
                    "({alias}.tableoid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pt.relid::pg_catalog.oid \
                       FROM pg_catalog.pg_partition_tree('{partition}'::pg_catalog.oid::pg_catalog.regclass) pt)) AND ({there}))"
                ));
            }
        }
        Ok(or_all(parts))
    }

    /// Rows of `rel` its own step deletes: expired, or referencing such a
    /// row through a walked key; for a partition, also through its
    /// partitioned tables' policies and keys.
    fn counted(&self, rel: RelId, alias: &str, depth: usize) -> Result<String> {
        let mut parts = vec![self.expiring_here(rel, alias, depth)?];
        let ancestors = self.setup.partition_ancestors.get(&rel);
        for &ancestor in ancestors.map(Vec::as_slice).unwrap_or_default() {
            parts.push(self.expiring_here(ancestor, alias, depth + 1)?);
        }
        Ok(or_all(parts))
    }

    /// Rows of `rel` deleted by its own policies and through the foreign
    /// keys declared on it.
    fn expiring_here(&self, rel: RelId, alias: &str, depth: usize) -> Result<String> {
        Self::too_deep(depth)?;
        let mut parts = Vec::new();
        for p in self
            .setup
            .policies
            .iter()
            .filter(|p| p.kind == PolicyKind::Expire && p.relid == rel)
        {
            // A policy covers its table's inheritance tree but the children
            // that follow a policy of their own.
            parts.push(format!(
                "({}{})",
                sqlgen::older_than(alias, self.setup.policy_column(p.id), self.param(p)),
                self.setup.shape(rel).own_rows(alias)
            ));
        }
        let edges: Vec<&ForeignKey> = self.setup.plan.parent_edges(rel).collect();
        for edge in edges {
            let inner = self.alias();
            // The foreign key binds the parent table's own rows, not those of
            // the tables inheriting from it.
            let parent = sqlgen::fk_table(self.setup.shape(edge.parent));
            let condition = self.expiring(edge.parent, &inner, depth + 1)?;
            // A foreign key binds its table's own rows, not its inheritors'.
            parts.push(format!(
                "({}{})",
                sqlgen::references_where(alias, &parent, edge, &inner, &condition),
                sqlgen::fk_rows(alias, self.setup.shape(rel))
            ));
        }
        Ok(or_all(parts))
    }

    /// Rows of `rel` deleted by the whole run: a partition's include those
    /// its partitioned tables' orphan policies delete.
    fn deleted(&self, rel: RelId, alias: &str, depth: usize) -> Result<String> {
        let mut parts = vec![format!("({})", self.expiring(rel, alias, depth)?)];
        let ancestors = self.setup.partition_ancestors.get(&rel);
        for table in std::iter::once(&rel).chain(ancestors.into_iter().flatten()) {
            if let Some(orphan) = self.orphaned(*table, alias, depth)? {
                parts.push(format!("({orphan})"));
            }
        }
        Ok(parts.join(" OR "))
    }

    /// Rows of `rel` its orphan policy deletes, if it has one: past the
    /// grace period, and every row referencing it is deleted before.
    fn orphaned(&self, rel: RelId, alias: &str, depth: usize) -> Result<Option<String>> {
        Self::too_deep(depth)?;
        let Some(policy) = self
            .setup
            .policies
            .iter()
            .find(|p| p.kind == PolicyKind::Orphan && p.relid == rel)
        else {
            return Ok(None);
        };
        let mut parts = vec![sqlgen::older_than(
            alias,
            self.setup.policy_column(policy.id),
            self.param(policy),
        )];
        let referencing: Vec<&ForeignKey> = self.setup.referencing(rel).collect();
        for fk in referencing {
            let inner = self.alias();
            let child = self.setup.qualified(self.client, fk.child)?;
            let doomed = self.deleted(fk.child, &inner, depth + 1)?;
            let uncorrelated = self.setup.routed(rel) || self.setup.routed(fk.child);
            parts.push(sqlgen::not_referenced(
                alias,
                &child,
                fk,
                &inner,
                Some(&doomed),
                uncorrelated,
            ));
        }
        Ok(Some(parts.join(" AND ")))
    }
}

/// `a OR b ...` of conditions, leaving out those that are `false`.
fn or_all(parts: Vec<String>) -> String {
    let parts: Vec<String> = parts.into_iter().filter(|p| p != "false").collect();
    if parts.is_empty() {
        "false".into()
    } else {
        parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" OR ")
    }
}

type PreviewRow = (
    i32,
    pg_sys::Oid,
    String,
    Option<i64>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
);

#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_unsafe)]
fn _retention_preview(
    label: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(step, i32),
        name!(relid, pg_sys::Oid),
        name!(reason, String),
        name!(rows_to_delete, Option<i64>),
        name!(oldest, Option<TimestampWithTimeZone>),
        name!(newest, Option<TimestampWithTimeZone>),
    ),
> {
    let found = with_pinned_search_path(|| {
        Spi::connect(|client| -> Result<Vec<PreviewRow>> {
            let setup = Setup::load(client, label, false)?;
            let preds = Predicates {
                setup: &setup,
                client,
                next_alias: Cell::new(0),
            };
            let mut out = Vec::new();
            let count = |relid: RelId,
                         owner_rel: RelId,
                         time: Option<&sqlgen::Column>,
                         condition: &str|
             -> Result<(
                (
                    Option<i64>,
                    Option<TimestampWithTimeZone>,
                    Option<TimestampWithTimeZone>,
                ),
                Option<String>,
            )> {
                let qualified = setup.qualified(client, relid)?;
                let sql = sqlgen::count_where_sql(&qualified, time, condition);
                // As the run would: as the owner of the policy that reaches
                // the table (planning alone can run a table owner's code).
                let owner = setup.owner_of(owner_rel)?;
                // In a subtransaction: a count that fails (the table's code
                // raises) says so in its own row.
                let found = in_subtransaction(|| {
                    as_table_owner(owner, || {
                        rows(client, &sql, &preds.args(), |r| {
                            Ok((
                                get::<i64>(r, 1)?,
                                get::<TimestampWithTimeZone>(r, 2)?,
                                get::<TimestampWithTimeZone>(r, 3)?,
                            ))
                        })
                    })
                    .map_err(internal)
                });
                Ok(match found {
                    Ok(found) => (found.into_iter().next().unwrap_or_default(), None),
                    Err(f) => (
                        (None, None, None),
                        Some(format!(
                            "; cannot count: {} (SQLSTATE {})",
                            f.message, f.sqlstate
                        )),
                    ),
                })
            };
            for (position, &relid) in setup.plan.order.iter().enumerate() {
                // Partitions the run removes whole, before the table's
                // batches: their own rows, and none of the table's.
                let mut whole = Vec::new();
                for p in setup
                    .policies
                    .iter()
                    .filter(|p| p.kind == PolicyKind::Expire && p.relid == relid)
                {
                    let column = setup.policy_column(p.id);
                    for partition in partitions::whole_partitions(client, &setup, p)? {
                        // As the run: a partition holding a row its batches
                        // would not delete keeps its rows in batches.
                        let young = format!(
                            "({}) IS NOT TRUE",
                            sqlgen::older_than("t", column, preds.param(p))
                        );
                        if count(partition.relid, relid, Some(column), &young)?.0 .0 == Some(0) {
                            whole.push((
                                partition,
                                p.partition_action.clone().unwrap_or(PartitionAction::Drop),
                            ));
                        }
                    }
                }
                for (partition, action) in &whole {
                    let time = setup.shape(relid).time_column.as_ref();
                    let ((n, oldest, newest), failed) =
                        count(partition.relid, relid, time, "true")?;
                    let what = match action {
                        PartitionAction::Drop => "detached and dropped whole".to_string(),
                        PartitionAction::Detach(None) => "detached whole, kept as a table".to_string(),
                        PartitionAction::Detach(Some(schema)) => format!("detached whole, kept as a table in schema {schema}"),
                    };
                    out.push((
                        0,
                        pg_sys::Oid::from(partition.relid),
                        format!(
                            "partition older than cutoff: {what}{}",
                            failed.as_deref().unwrap_or_default()
                        ),
                        n,
                        oldest,
                        newest,
                    ));
                }
                let members: Vec<RelId> = whole
                    .iter()
                    .flat_map(|(p, _)| p.members.iter().copied())
                    .collect();
                let mut reasons = Vec::new();
                for p in setup
                    .policies
                    .iter()
                    .filter(|p| p.kind == PolicyKind::Expire && p.relid == relid)
                {
                    reasons.push(format!(
                        "expired ({} older than cutoff)",
                        setup.policy_column(p.id).name
                    ));
                }
                for edge in setup.plan.parent_edges(relid) {
                    reasons.push(format!(
                        "references an expiring row of {}",
                        setup.name(edge.parent)
                    ));
                }
                let mut condition = format!(
                    "({}){}",
                    preds.counted(relid, "t", 0)?,
                    sqlgen::own_rows("t", &members)
                );
                // A partition's rows its partitioned table's own policy
                // deletes first are counted there.
                if let Some(&ancestor) = setup.policy_ancestors.get(&relid) {
                    for p in setup
                        .policies
                        .iter()
                        .filter(|p| p.kind == PolicyKind::Expire && p.relid == ancestor)
                    {
                        condition = format!(
                            "({condition}) AND ({}) IS NOT TRUE",
                            sqlgen::older_than("t", setup.policy_column(p.id), preds.param(p))
                        );
                    }
                }
                // A partition and its partitioned table may both be in the
                // plan (foreign keys declared on each): a row is counted
                // where the run deletes it first, at the earlier step.
                for &earlier in &setup.plan.order[..position] {
                    if !setup.same_partition_tree(relid, earlier) {
                        continue;
                    }
                    let there = preds.counted(earlier, "t", 0)?;
                    let earlier_is_below = setup
                        .partition_ancestors
                        .get(&earlier)
                        .is_some_and(|ancestors| ancestors.contains(&relid));
                    condition = if earlier_is_below {
                        // `relid` is partitioned: only its rows in that
                        // partition were counted there.
                        format!(
                            "({condition}) AND (t.tableoid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pt.relid::pg_catalog.oid \
                               FROM pg_catalog.pg_partition_tree('{earlier}'::pg_catalog.oid::pg_catalog.regclass) pt)) \
                             AND ({there})) IS NOT TRUE"
                        )
                    } else {
                        format!("({condition}) AND ({there}) IS NOT TRUE")
                    };
                }
                let ((n, oldest, newest), failed) = count(
                    relid,
                    relid,
                    setup.shape(relid).time_column.as_ref(),
                    &condition,
                )?;
                out.push((
                    0,
                    pg_sys::Oid::from(relid),
                    reasons.join("; ") + failed.as_deref().unwrap_or_default(),
                    n,
                    oldest,
                    newest,
                ));
            }
            for &relid in &setup.orphan_order {
                let Some(orphan) = preds.orphaned(relid, "t", 0)? else {
                    continue;
                };
                // Rows the expire steps delete first (this table's, or its
                // partitions' as dependents) are counted there.
                let expiring = preds.expiring(relid, "t", 0)?;
                let condition = if expiring == "false" {
                    orphan
                } else {
                    format!("({orphan}) AND ({expiring}) IS NOT TRUE")
                };
                let policy = setup
                    .policies
                    .iter()
                    .find(|p| p.kind == PolicyKind::Orphan && p.relid == relid)
                    .expect("orphan policy");
                let column = setup.policy_column(policy.id);
                let ((n, oldest, newest), failed) =
                    count(relid, relid, Some(column), &condition)?;
                out.push((
                    0,
                    pg_sys::Oid::from(relid),
                    format!(
                        "orphan (no row references it; {} older than grace){}",
                        column.name,
                        failed.as_deref().unwrap_or_default()
                    ),
                    n,
                    oldest,
                    newest,
                ));
            }
            // A policy that cannot run deletes nothing; its row says why.
            for b in &setup.broken {
                out.push((
                    0,
                    pg_sys::Oid::from(b.policy.relid),
                    format!(
                        "{} policy {} cannot run: {} (SQLSTATE {})",
                        b.policy.kind.as_str(),
                        b.policy.id,
                        b.error.message,
                        b.error.sqlstate
                    ),
                    Some(0),
                    None,
                    None,
                ));
            }
            for (i, row) in out.iter_mut().enumerate() {
                row.0 = i as i32 + 1;
            }
            Ok(out)
        })
    })
    .or_raise();
    TableIterator::new(found)
}

type StatsRow = (
    i64,
    pg_sys::Oid,
    String,
    Option<String>,
    String,
    Interval,
    Option<TimestampWithTimeZone>,
    bool,
    Option<i64>,
    Option<bool>,
    Option<i64>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    Option<i64>,
    Option<bool>,
    Option<Vec<String>>,
    Option<TimestampWithTimeZone>,
    Option<String>,
    Option<String>,
);

#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_unsafe)]
fn _retention_stats(
    label: Option<&str>,
    exact: Option<bool>,
) -> TableIterator<
    'static,
    (
        name!(policy_id, i64),
        name!(relid, pg_sys::Oid),
        name!(kind, String),
        name!(label, Option<String>),
        name!(time_column, String),
        name!(retain, Interval),
        name!(cutoff, Option<TimestampWithTimeZone>),
        name!(enabled, bool),
        name!(total_rows, Option<i64>),
        name!(total_rows_exact, Option<bool>),
        name!(expired_rows, Option<i64>),
        name!(oldest, Option<TimestampWithTimeZone>),
        name!(newest, Option<TimestampWithTimeZone>),
        name!(total_bytes, Option<i64>),
        name!(time_column_indexed, Option<bool>),
        name!(unindexed_foreign_keys, Option<Vec<String>>),
        name!(last_run_at, Option<TimestampWithTimeZone>),
        name!(last_run_status, Option<String>),
        name!(error, Option<String>),
    ),
> {
    let exact = exact.unwrap_or(false);
    let found = with_pinned_search_path(|| {
        // Not read-only: SPI counts the EXPLAIN behind the default
        // estimates as a utility statement.
        Spi::connect_mut(|client| -> Result<Vec<StatsRow>> {
            let setup = Setup::load(client, label, true)?;
            let mut out = Vec::new();
            // Each policy in a subtransaction: one whose table's code raises
            // (an index expression, a row-level security policy) shows its
            // error in its own row instead of failing the whole report.
            for p in &setup.policies {
                let row = in_subtransaction(|| {
                    as_table_owner(p.owner, || policy_stats(client, &setup, p, exact))
                });
                out.push(match row {
                    Ok(row) => row,
                    Err(error) => broken_policy_stats(
                        client,
                        &setup,
                        &Broken {
                            policy: p.clone(),
                            error,
                        },
                    )?,
                });
            }
            for b in &setup.broken {
                out.push(broken_policy_stats(client, &setup, b)?);
            }
            out.sort_by_key(|row| row.0);
            Ok(out)
        })
    })
    .or_raise();
    TableIterator::new(found)
}

/// Default `retention_stats()` counts expired rows exactly while at most this
/// many rows are past the cutoff.
const EXPIRED_COUNT_CAP: i64 = 10_000;

fn policy_stats(
    client: &mut SpiClient<'_>,
    setup: &Setup,
    p: &Policy,
    exact: bool,
) -> Result<StatsRow> {
    let relid = pg_sys::Oid::from(p.relid);
    let qualified = setup.qualified(client, p.relid)?;
    let column = setup.policy_column(p.id);
    let time = format!("t.{}", sqlgen::quote_ident(&column.name));

    // Estimates and sizes over the table and its leaf partitions, if any
    // (pg_partition_tree is empty for a plain table). A partitioned table's
    // own reltuples is its partitions' sum (ANALYZE sets it, PostgreSQL 14+):
    // counted once, from the leaves. For a Citus table,
    // over its shards on the workers (the coordinator's table is empty).
    let sizes_sql = if setup.routed(p.relid) {
        "SELECT (SELECT COALESCE(pg_catalog.sum(r.result::pg_catalog.float8), 0)::pg_catalog.int8 \
                 FROM pg_catalog.run_command_on_shards($1, \
                     'SELECT GREATEST(c.reltuples, 0) FROM pg_catalog.pg_class c \
                      WHERE c.oid OPERATOR(pg_catalog.=) ''%s''::pg_catalog.regclass') r \
                 WHERE r.success), \
                pg_catalog.citus_total_relation_size($1)"
    } else {
        "SELECT COALESCE(pg_catalog.sum(GREATEST(c.reltuples, 0)), 0)::pg_catalog.int8, \
                COALESCE(pg_catalog.sum(pg_catalog.pg_total_relation_size(c.oid)), 0)::pg_catalog.int8 \
         FROM pg_catalog.pg_class c \
         WHERE (c.oid OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.<>) 'p') \
            OR c.oid IN (SELECT pt.relid FROM pg_catalog.pg_partition_tree($1) pt WHERE pt.isleaf)"
    };
    let sizes = rows(client, sizes_sql, &[relid.into()], |r| {
        Ok((
            get::<i64>(r, 1)?.unwrap_or_default(),
            get::<i64>(r, 2)?.unwrap_or_default(),
        ))
    })
    .map_err(internal)?;
    let (estimate, total_bytes) = sizes.into_iter().next().unwrap_or_default();
    let total_rows = if exact {
        scalar_i64(
            client,
            &format!("SELECT pg_catalog.count(*) FROM {qualified} t"),
            &[],
        )?
    } else {
        estimate
    };

    let expired_condition = match p.kind {
        PolicyKind::Expire => format!("{time} < $1{}", setup.shape(p.relid).own_rows("t")),
        PolicyKind::Orphan => format!("{time} < $1 AND {}", setup.orphan_test(p.relid).0),
    };
    // Counting all expired rows costs as much as the rows looked at: by
    // default they are counted while the rows past the cutoff number at most
    // EXPIRED_COUNT_CAP (exact when runs keep up, which is what monitoring
    // asks), and past that the planner's estimate for the condition stands in.
    let expired_rows_from = format!("FROM {qualified} t WHERE {expired_condition}");
    let count_all = format!("SELECT pg_catalog.count(*) {expired_rows_from}");
    let expired_rows = if exact {
        scalar_i64(client, &count_all, &[p.cutoff.into()])?
    } else {
        let past_cutoff = scalar_i64(
            client,
            // One output column: Citus cannot ship a subquery of none.
            &format!("SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {qualified} t WHERE {time} < $1 LIMIT $2) s"),
            &[p.cutoff.into(), (EXPIRED_COUNT_CAP + 1).into()],
        )?;
        match (past_cutoff <= EXPIRED_COUNT_CAP, p.kind) {
            (true, PolicyKind::Expire) => past_cutoff,
            (true, PolicyKind::Orphan) => scalar_i64(client, &count_all, &[p.cutoff.into()])?,
            // Citus's plans carry no row estimate of their own.
            (false, _) if setup.routed(p.relid) => {
                scalar_i64(client, &count_all, &[p.cutoff.into()])?
            }
            (false, _) => planner_estimate(
                client,
                &format!("SELECT {expired_rows_from}"),
                &[p.cutoff.into()],
            )?,
        }
    };
    // min/max walk the time column's index from either end when there is one.
    let range = rows(
        client,
        &format!(
            "SELECT pg_catalog.min({time})::pg_catalog.timestamptz, pg_catalog.max({time})::pg_catalog.timestamptz FROM {qualified} t"
        ),
        &[],
        |r| Ok((get::<TimestampWithTimeZone>(r, 1)?, get::<TimestampWithTimeZone>(r, 2)?)),
    )
    .map_err(internal)?;
    let (oldest, newest) = range.into_iter().next().unwrap_or((None, None));

    let time_indexed = leading_index(client, p.relid, std::slice::from_ref(&column.name))?;
    let mut unindexed = Vec::new();
    for fk in checked_on_delete(setup, p) {
        if !leading_index(client, fk.child, &fk.child_columns)? {
            unindexed.push(format!(
                "{} ({}) -> {}",
                fk.name,
                fk.child_columns.join(", "),
                setup.qualified(client, fk.parent)?
            ));
        }
    }

    // The history may hold runs the owner cannot see (a superuser's).
    let (last_run_at, last_run_status) = as_extension_owner(|| last_run(client, setup, p.id))?;
    let retain = as_extension_owner(|| retain_of(client, setup, p.id))?;
    Ok((
        p.id,
        relid,
        p.kind.as_str().to_string(),
        p.label.clone(),
        column.name.clone(),
        retain,
        Some(p.cutoff),
        p.enabled,
        Some(total_rows),
        Some(exact),
        Some(expired_rows),
        oldest,
        newest,
        Some(total_bytes),
        Some(time_indexed),
        Some(unindexed),
        last_run_at,
        last_run_status,
        None,
    ))
}

/// The row of a policy that cannot run: what it is, its last run, and why
/// (nothing is counted: its table may be what is broken).
fn broken_policy_stats(client: &SpiClient<'_>, setup: &Setup, b: &Broken) -> Result<StatsRow> {
    let p = &b.policy;
    let (last_run_at, last_run_status) = as_extension_owner(|| last_run(client, setup, p.id))?;
    Ok((
        p.id,
        pg_sys::Oid::from(p.relid),
        p.kind.as_str().to_string(),
        p.label.clone(),
        p.time_column.clone(),
        as_extension_owner(|| retain_of(client, setup, p.id))?,
        (!p.cutoff.is_neg_infinity()).then_some(p.cutoff),
        p.enabled,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        last_run_at,
        last_run_status,
        Some(format!(
            "{} (SQLSTATE {})",
            b.error.message, b.error.sqlstate
        )),
    ))
}

/// When the last run that had this policy ended, and how.
fn last_run(
    client: &SpiClient<'_>,
    setup: &Setup,
    policy_id: i64,
) -> Result<(Option<TimestampWithTimeZone>, Option<String>)> {
    let schema = &setup.schema;
    let last = rows(
        client,
        &format!(
            "SELECT r.finished_at, r.status FROM {schema}.cleanup_runs r \
             WHERE r.status OPERATOR(pg_catalog.<>) 'skipped' \
               AND r.policies OPERATOR(pg_catalog.@>) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('policy_id', $1::pg_catalog.int8)) \
             ORDER BY r.id DESC LIMIT 1"
        ),
        &[policy_id.into()],
        |r| Ok((get::<TimestampWithTimeZone>(r, 1)?, get::<String>(r, 2)?)),
    )
    .map_err(internal)?;
    Ok(last.into_iter().next().unwrap_or((None, None)))
}

fn retain_of(client: &SpiClient<'_>, setup: &Setup, policy_id: i64) -> Result<Interval> {
    let schema = &setup.schema;
    rows(
        client,
        &format!("SELECT retain FROM {schema}.retention_config WHERE id OPERATOR(pg_catalog.=) $1"),
        &[policy_id.into()],
        |r| get::<Interval>(r, 1),
    )
    .map_err(internal)?
    .into_iter()
    .next()
    .flatten()
    .ok_or_else(|| RetentionError::UndefinedPolicy(format!("policy {policy_id} vanished")))
}

/// The foreign keys a policy's batches look up by their child columns: the
/// walked keys below an expire policy's table, or every key referencing an
/// orphan policy's table.
fn walked_for<'s>(setup: &'s Setup, p: &Policy) -> Vec<&'s ForeignKey> {
    match p.kind {
        PolicyKind::Orphan => setup.referencing(p.relid).collect(),
        PolicyKind::Expire => {
            let mut out: Vec<&ForeignKey> = Vec::new();
            let mut stack = vec![p.relid];
            while let Some(rel) = stack.pop() {
                for e in setup.plan.child_edges(rel) {
                    if !out.iter().any(|o| o.name == e.name) {
                        out.push(e);
                        stack.push(e.child);
                    }
                }
            }
            out
        }
    }
}

/// The foreign keys whose child rows a run's deletes look up: those it
/// walks, and those PostgreSQL acts on itself as it deletes (SET NULL, SET
/// DEFAULT, CASCADE of a table not walked) — each looks its child rows up
/// per deleted row, a scan of the child table without an index.
fn checked_on_delete<'s>(setup: &'s Setup, p: &Policy) -> Vec<&'s ForeignKey> {
    let mut out = walked_for(setup, p);
    let mut deleted_from = vec![p.relid];
    if p.kind == PolicyKind::Expire {
        deleted_from.extend(out.iter().map(|fk| fk.child));
    }
    for table in deleted_from {
        for fk in setup.referencing(table) {
            if !fk.partition_copy && !out.iter().any(|o| o.name == fk.name && o.child == fk.child) {
                out.push(fk);
            }
        }
    }
    out
}

/// Whether some valid, non-partial index of `relid` starts with exactly these
/// columns (in any order).
fn leading_index(client: &SpiClient<'_>, relid: RelId, columns: &[String]) -> Result<bool> {
    let found = rows(
        client,
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i \
            WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisvalid AND i.indpred IS NULL \
              AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attname) \
                   FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY k(num, ord) \
                   JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) k.num \
                   WHERE k.ord OPERATOR(pg_catalog.<=) $3) \
                  OPERATOR(pg_catalog.=) (SELECT pg_catalog.array_agg(x ORDER BY x) FROM pg_catalog.unnest($2::pg_catalog.text[]) x))",
        &[pg_sys::Oid::from(relid).into(), columns.to_vec().into(), (columns.len() as i64).into()],
        |r| get::<bool>(r, 1),
    )
    .map_err(internal)?;
    Ok(found.into_iter().next().flatten().unwrap_or(false))
}

/// The rows the planner expects `sql` to return, planned with these argument
/// values (the top line of its EXPLAIN reads `(cost=... rows=N width=...)`).
fn planner_estimate(
    client: &mut SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Result<i64> {
    let lines = rows_mut(client, &format!("EXPLAIN {sql}"), args, |r| {
        get::<String>(r, 1)
    })
    .map_err(internal)?;
    let top = lines.into_iter().next().flatten().unwrap_or_default();
    top.split_once(" rows=")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| {
            RetentionError::NotReady(format!("no row estimate in the plan line {top:?}"))
        })
}

fn scalar_i64(client: &SpiClient<'_>, sql: &str, args: &[DatumWithOid<'_>]) -> Result<i64> {
    let found = rows(client, sql, args, |r| get::<i64>(r, 1)).map_err(internal)?;
    Ok(found.into_iter().next().flatten().unwrap_or_default())
}

/// The planner's estimate of a policy's own expired rows (`time < cutoff`,
/// dependents not counted), for a run's progress; `None` when there is
/// none to be had (a Citus table's plan carries none), planning failed, or
/// a table lock was not granted at once. Planned as the table's owner, in a
/// subtransaction: planning may run the owner's functions (an index
/// predicate folded, say). A cancel is not swallowed: it ends the run.
pub fn expected_rows(client: &mut SpiClient<'_>, setup: &Setup, p: &Policy) -> Option<i64> {
    if setup.routed(p.relid) {
        return None;
    }
    let estimate = in_subtransaction(|| {
        as_table_owner(p.owner, || {
            // A table another session holds locked (a migration) must not
            // stall the run's start, or queue that session's waiters behind it.
            crate::security::with_lock_timeout(EXPECTED_ROWS_LOCK_WAIT_MS, || {
                let qualified = setup.qualified(client, p.relid)?;
                let column = setup.policy_column(p.id);
                let time = format!("t.{}", sqlgen::quote_ident(&column.name));
                let own = setup.shape(p.relid).own_rows("t");
                planner_estimate(
                    client,
                    &format!(
                        "SELECT FROM {qualified} t WHERE {time} OPERATOR(pg_catalog.<) $1{own}"
                    ),
                    &[p.cutoff.into()],
                )
            })
        })
    });
    match estimate {
        Ok(rows) => Some(rows),
        Err(failure) if failure.is_cancel() => {
            pgrx::pg_sys::panic::ErrorReport::new(
                pgrx::PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                failure.message,
                "pg_retention",
            )
            .report(PgLogLevel::ERROR);
            unreachable!("an ERROR report does not return")
        }
        Err(_) => None,
    }
}

/// [`expected_rows`] of every policy of a run, in its order.
pub fn expected_rows_of(client: &mut SpiClient<'_>, setup: &Setup) -> Vec<Option<i64>> {
    setup
        .policies
        .iter()
        .map(|p| expected_rows(client, setup, p))
        .collect()
}

/// How long the estimate at a run's start waits for a table's lock.
const EXPECTED_ROWS_LOCK_WAIT_MS: i32 = 100;
