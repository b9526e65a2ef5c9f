//! The `cleanup_runs` history: a row is written when a run starts and
//! completed when it ends, whatever the outcome.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;

use crate::catalog::{get, internal, rows_mut, Policy};
use crate::errors::Result;

/// Per-table result of a run, in deletion order.
#[derive(Clone, Debug, Default)]
pub struct TableCount {
    pub relation: String,
    pub deleted: i64,
    /// Microseconds since the epoch of the oldest and newest deleted row's
    /// time column, when the table has one.
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
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
        "INSERT INTO {schema}.cleanup_runs (status, origin, label, batch_size) VALUES ($1, $2, $3, $4) RETURNING id"
    );
    let id = rows_mut(
        client,
        &sql,
        &[
            status.into(),
            run.origin.into(),
            run.label.into(),
            run.batch_size.into(),
        ],
        |r| get::<i64>(r, 1),
    )
    .map_err(internal)?;
    Ok(id.into_iter().next().flatten().unwrap_or_default())
}

/// Records the cutoffs fixed at the start of the run.
pub fn record_policies(
    client: &mut SpiClient<'_>,
    schema: &str,
    id: i64,
    policies: &[Policy],
) -> Result<()> {
    let ids: Vec<i64> = policies.iter().map(|p| p.id).collect();
    let names: Vec<Option<String>> = policies.iter().map(|p| p.relation.clone()).collect();
    let kinds: Vec<String> = policies
        .iter()
        .map(|p| p.kind.as_str().to_string())
        .collect();
    let cutoffs: Vec<TimestampWithTimeZone> = policies.iter().map(|p| p.cutoff).collect();
    let sql = format!(
        "UPDATE {schema}.cleanup_runs SET policies = COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
            'policy_id', u.id, 'relation', u.rel, 'kind', u.kind, 'cutoff', u.cutoff) ORDER BY u.ord) \
          FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.int8[]), pg_catalog.unnest($3::pg_catalog.text[]), \
                         pg_catalog.unnest($4::pg_catalog.text[]), pg_catalog.unnest($5::pg_catalog.timestamptz[])) \
               WITH ORDINALITY u(id, rel, kind, cutoff, ord)), '[]') \
         WHERE id OPERATOR(pg_catalog.=) $1"
    );
    rows_mut(
        client,
        &sql,
        &[
            id.into(),
            ids.into(),
            names.into(),
            kinds.into(),
            cutoffs.into(),
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

pub fn finish(client: &mut SpiClient<'_>, schema: &str, id: i64, end: &RunEnd<'_>) -> Result<()> {
    let names: Vec<String> = end.tables.iter().map(|t| t.relation.clone()).collect();
    let deleted: Vec<i64> = end.tables.iter().map(|t| t.deleted).collect();
    let oldest: Vec<Option<i64>> = end.tables.iter().map(|t| t.oldest).collect();
    let newest: Vec<Option<i64>> = end.tables.iter().map(|t| t.newest).collect();
    let sql = format!(
        "UPDATE {schema}.cleanup_runs SET status = $2, finished_at = pg_catalog.clock_timestamp(), \
           total_deleted = (SELECT COALESCE(pg_catalog.sum(n), 0) FROM pg_catalog.unnest($4::pg_catalog.int8[]) n), \
           tables = COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
               'relation', u.rel, 'deleted', u.n, \
               'oldest', pg_catalog.to_timestamp(u.lo::pg_catalog.float8 / 1000000), \
               'newest', pg_catalog.to_timestamp(u.hi::pg_catalog.float8 / 1000000)) ORDER BY u.ord) \
             FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.text[]), pg_catalog.unnest($4::pg_catalog.int8[]), \
                           pg_catalog.unnest($5::pg_catalog.int8[]), pg_catalog.unnest($6::pg_catalog.int8[])) \
                  WITH ORDINALITY u(rel, n, lo, hi, ord)), '[]'), \
           error = $7, sqlstate = $8 \
         WHERE id OPERATOR(pg_catalog.=) $1"
    );
    rows_mut(
        client,
        &sql,
        &[
            id.into(),
            end.status.into(),
            names.into(),
            deleted.into(),
            oldest.into(),
            newest.into(),
            end.error.into(),
            end.sqlstate.into(),
        ],
        |_| Ok(()),
    )
    .map_err(internal)?;
    Ok(())
}
