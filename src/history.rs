//! The `cleanup_runs` history: a row is written when a run starts and
//! completed when it ends, whatever the outcome.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;

use crate::catalog::{bookkeeping, get, internal, Policy, PreparedStatements};
use crate::errors::Result;

/// Per-table result of a run, in deletion order.
#[derive(Clone, Debug, Default)]
pub struct TableCount {
    pub relid: crate::planner::RelId,
    pub relation: String,
    pub deleted: i64,
    /// Microseconds since the epoch of the oldest and newest deleted row's
    /// time column, when the table has one.
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
    /// For a partition its policy removes whole: what became of it
    /// (`dropped`, or why it is left for the next run), and its size.
    pub partition: Option<String>,
    pub bytes: Option<i64>,
}

pub struct RunStart<'a> {
    pub origin: &'a str,
    pub label: Option<&'a str>,
    pub batch_size: Option<i32>,
}

pub fn start(
    client: &mut SpiClient<'_>,
    schema: &str,
    run: &RunStart<'_>,
    status: &str,
) -> Result<i64> {
    let sql = format!(
        "INSERT INTO {schema}.cleanup_runs (status, origin, label, batch_size, started_by) \
         VALUES ($1, $2, $3, $4, pg_catalog.pg_get_userbyid($5)) RETURNING id"
    );
    // Read before the insert switches to the extension's owner.
    let started_by = crate::security::current_role();
    let id = bookkeeping(
        client,
        &sql,
        &[
            status.into(),
            run.origin.into(),
            run.label.into(),
            run.batch_size.into(),
            started_by.into(),
        ],
        |r| get::<i64>(r, 1),
    )
    .map_err(internal)?;
    Ok(id.into_iter().next().flatten().unwrap_or_default())
}

/// Records the cutoffs fixed at the start of the run, and each policy's
/// expected rows (`stats::expected_rows`, the progress view's total).
pub fn record_policies(
    client: &mut SpiClient<'_>,
    schema: &str,
    id: i64,
    policies: &[Policy],
    expected: &[Option<i64>],
) -> Result<()> {
    let ids: Vec<i64> = policies.iter().map(|p| p.id).collect();
    let relids: Vec<pgrx::pg_sys::Oid> = policies
        .iter()
        .map(|p| pgrx::pg_sys::Oid::from(p.relid))
        .collect();
    let names: Vec<Option<String>> = policies.iter().map(|p| p.relation.clone()).collect();
    let kinds: Vec<String> = policies
        .iter()
        .map(|p| p.kind.as_str().to_string())
        .collect();
    let cutoffs: Vec<TimestampWithTimeZone> = policies.iter().map(|p| p.cutoff).collect();
    let sql = format!(
        "UPDATE {schema}.cleanup_runs SET policies = COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
            'policy_id', u.id, 'relation', u.rel, 'relid', u.relid, 'kind', u.kind, 'cutoff', u.cutoff, \
            'expected_rows', u.expected) ORDER BY u.ord) \
          FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.int8[]), pg_catalog.unnest($3::pg_catalog.text[]), \
                         pg_catalog.unnest($4::pg_catalog.text[]), pg_catalog.unnest($5::pg_catalog.timestamptz[]), \
                         pg_catalog.unnest($6::pg_catalog.oid[]), pg_catalog.unnest($7::pg_catalog.int8[])) \
               WITH ORDINALITY u(id, rel, kind, cutoff, relid, expected, ord)), '[]') \
         WHERE id OPERATOR(pg_catalog.=) $1"
    );
    bookkeeping(
        client,
        &sql,
        &[
            id.into(),
            ids.into(),
            names.into(),
            kinds.into(),
            cutoffs.into(),
            relids.into(),
            expected.to_vec().into(),
        ],
        |_| Ok(()),
    )
    .map_err(internal)?;
    Ok(())
}

pub struct RunEnd<'a> {
    pub status: &'a str,
    pub tables: &'a [TableCount],
    pub error: Option<&'a str>,
    pub sqlstate: Option<&'a str>,
}

/// Completes the run's row.
pub fn finish(client: &mut SpiClient<'_>, schema: &str, id: i64, end: &RunEnd<'_>) -> Result<()> {
    write(
        client,
        schema,
        id,
        Some(end.status),
        end.tables,
        end.error,
        end.sqlstate,
    )
}

/// Updates a running run's counters in the transaction of the batch they
/// count, so that they are what was committed however the run ends (a
/// backend killed after a batch loses neither or both); and `finished_at`
/// to now: while the run runs, when it was last seen working. Through a
/// statement prepared once per run: it runs after every batch.
pub fn progress(
    client: &mut SpiClient<'_>,
    statements: &mut PreparedStatements,
    schema: &str,
    id: i64,
    tables: &[TableCount],
) -> Result<()> {
    let (sql, args) = counts_update(schema, id, None, tables, None, None);
    crate::security::as_extension_owner(|| statements.rows(client, &sql, &args, |_| Ok(())))
        .map_err(internal)?;
    Ok(())
}

/// Notes why a run stopped early, or what it left for the next run.
pub fn note(
    client: &mut SpiClient<'_>,
    schema: &str,
    id: i64,
    stop_reason: Option<&str>,
    lock_timeouts: i64,
) -> Result<()> {
    let sql = format!(
        "UPDATE {schema}.cleanup_runs SET stop_reason = COALESCE($2, stop_reason), lock_timeouts = $3::pg_catalog.int4 \
         WHERE id OPERATOR(pg_catalog.=) $1"
    );
    bookkeeping(
        client,
        &sql,
        &[id.into(), stop_reason.into(), lock_timeouts.into()],
        |_| Ok(()),
    )
    .map_err(internal)?;
    Ok(())
}

fn write(
    client: &mut SpiClient<'_>,
    schema: &str,
    id: i64,
    status: Option<&str>,
    tables: &[TableCount],
    error: Option<&str>,
    sqlstate: Option<&str>,
) -> Result<()> {
    let (sql, args) = counts_update(schema, id, status, tables, error, sqlstate);
    bookkeeping(client, &sql, &args, |_| Ok(())).map_err(internal)?;
    Ok(())
}

/// The UPDATE of a run's row with its per-table counts, and its arguments.
fn counts_update(
    schema: &str,
    id: i64,
    status: Option<&str>,
    tables: &[TableCount],
    error: Option<&str>,
    sqlstate: Option<&str>,
) -> (String, Vec<pgrx::datum::DatumWithOid<'static>>) {
    let names: Vec<String> = tables.iter().map(|t| t.relation.clone()).collect();
    let relids: Vec<pgrx::pg_sys::Oid> = tables
        .iter()
        .map(|t| pgrx::pg_sys::Oid::from(t.relid))
        .collect();
    let deleted: Vec<i64> = tables.iter().map(|t| t.deleted).collect();
    let oldest: Vec<Option<i64>> = tables.iter().map(|t| t.oldest).collect();
    let newest: Vec<Option<i64>> = tables.iter().map(|t| t.newest).collect();
    let partition: Vec<Option<String>> = tables.iter().map(|t| t.partition.clone()).collect();
    let bytes: Vec<Option<i64>> = tables.iter().map(|t| t.bytes).collect();
    let sql = format!(
        "UPDATE {schema}.cleanup_runs SET status = COALESCE($2, status), \
           finished_at = pg_catalog.clock_timestamp(), \
           total_deleted = (SELECT COALESCE(pg_catalog.sum(n), 0) FROM pg_catalog.unnest($4::pg_catalog.int8[]) n), \
           tables = COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
               'relation', u.rel, 'relid', u.relid, 'deleted', u.n, \
               'oldest', {oldest}, 'newest', {newest}) OPERATOR(pg_catalog.||) \
               CASE WHEN u.part IS NULL THEN '{{}}'::pg_catalog.jsonb \
                    ELSE pg_catalog.jsonb_build_object('partition', u.part, 'bytes', u.bytes) END ORDER BY u.ord) \
             FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.text[]), pg_catalog.unnest($4::pg_catalog.int8[]), \
                           pg_catalog.unnest($5::pg_catalog.int8[]), pg_catalog.unnest($6::pg_catalog.int8[]), \
                           pg_catalog.unnest($9::pg_catalog.oid[]), pg_catalog.unnest($10::pg_catalog.text[]), \
                           pg_catalog.unnest($11::pg_catalog.int8[])) \
                  WITH ORDINALITY u(rel, n, lo, hi, relid, part, bytes, ord)), '[]'), \
           error = COALESCE($7, error), sqlstate = COALESCE($8, sqlstate) \
         WHERE id OPERATOR(pg_catalog.=) $1",
        oldest = timestamp_of_us("u.lo"),
        newest = timestamp_of_us("u.hi"),
    );
    let args = vec![
        id.into(),
        status.into(),
        names.into(),
        deleted.into(),
        oldest.into(),
        newest.into(),
        error.into(),
        sqlstate.into(),
        relids.into(),
        partition.into(),
        bytes.into(),
    ];
    (sql, args)
}

/// Deletes finished runs older than `pg_retention.history_retention`.
pub fn prune(client: &mut SpiClient<'_>, schema: &str) -> Result<()> {
    let keep_seconds = crate::gucs::HISTORY_RETENTION.get();
    if keep_seconds <= 0 {
        return Ok(());
    }
    let sql = format!(
        "DELETE FROM {schema}.cleanup_runs WHERE status OPERATOR(pg_catalog.<>) 'running' \
           AND started_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))"
    );
    bookkeeping(client, &sql, &[f64::from(keep_seconds).into()], |_| Ok(())).map_err(internal)?;
    Ok(())
}

/// A time from microseconds since the epoch, the two infinities included
/// (see `sqlgen::NEG_INFINITY_US`).
fn timestamp_of_us(us: &str) -> String {
    format!(
        "CASE {us} WHEN '{}'::pg_catalog.int8 THEN '-infinity'::pg_catalog.timestamptz \
                   WHEN '{}'::pg_catalog.int8 THEN 'infinity'::pg_catalog.timestamptz \
                   ELSE pg_catalog.to_timestamp({us}::pg_catalog.float8 OPERATOR(pg_catalog./) 1000000) END",
        crate::sqlgen::NEG_INFINITY_US,
        crate::sqlgen::INFINITY_US
    )
}
