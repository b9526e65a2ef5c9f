//! `retention_execute`: one run in the caller's transaction. The history row
//! is written first; each root batch is a subtransaction, so a failing batch
//! is rolled back alone, recorded with its SQLSTATE, and reported as a
//! WARNING while the row (and the batches before it) survive.

use pgrx::prelude::*;

use crate::catalog::{extension_schema, Setup};
use crate::deleter::{Deleter, Progress};
use crate::errors::{OrRaise, Result};
use crate::history::{self, RunEnd, RunStart};
use crate::policies::check_batch_size;
use crate::security::{lock_policies, with_pinned_search_path, LockScope};
use crate::stats;
use crate::subxact::{in_subtransaction, BatchFailure};

/// Takes the run lock of every loaded policy that no other run holds; the
/// others are left to the run that holds them (removed from `setup`, named
/// in the history's stop reason). When another run holds every policy, the
/// run is recorded `skipped` and `true` is returned.
pub fn claim_policies(
    client: &mut pgrx::spi::SpiClient<'_>,
    schema: &str,
    id: i64,
    setup: &mut Setup,
    scope: LockScope,
) -> Result<bool> {
    let ids: Vec<i64> = setup.policies.iter().map(|p| p.id).collect();
    let got = lock_policies(&ids, scope);
    let mut left = Vec::new();
    let mut claimed = got.iter();
    setup.policies.retain(|p| {
        let mine = claimed.next().copied().unwrap_or(false);
        if !mine {
            left.push(format!(
                "{} ({} policy {})",
                p.relation.as_deref().unwrap_or("?"),
                p.kind.as_str(),
                p.id
            ));
        }
        mine
    });
    if left.is_empty() {
        return Ok(false);
    }
    if setup.policies.is_empty() && setup.broken.is_empty() {
        history::finish(
            client,
            schema,
            id,
            &RunEnd {
                status: "skipped",
                tables: &[],
                error: Some("another pg_retention run is running every policy of this run"),
                sqlstate: None,
            },
        )?;
        pgrx::notice!(
            "pg_retention: another run is running every policy of this run; run {id} skipped"
        );
        return Ok(true);
    }
    history::note(
        client,
        schema,
        id,
        Some(&format!(
            "left to the run already running them: {}",
            left.join(", ")
        )),
        0,
    )?;
    Ok(false)
}

#[pg_extern(volatile, parallel_unsafe)]
fn _retention_execute(
    batch_size: Option<i32>,
    label: Option<&str>,
    origin: default!(Option<&str>, "NULL"),
) -> i64 {
    check_batch_size(batch_size, false).or_raise();
    let batch_size = batch_size.unwrap_or_default();
    with_pinned_search_path(|| {
        Spi::connect_mut(|client| -> Result<i64> {
            let schema = extension_schema(client)?;
            let run = RunStart {
                origin: origin.unwrap_or("retention_execute"),
                label,
                batch_size: Some(batch_size),
            };

            let id = history::start(client, &schema, &run, "running")?;
            let mut setup = match in_subtransaction(|| Setup::load(client, label, false)) {
                Ok(setup) => setup,
                Err(failure) => {
                    record_failure(client, &schema, id, &[], &failure)?;
                    return Ok(id);
                }
            };
            if claim_policies(client, &schema, id, &mut setup, LockScope::Transaction)? {
                return Ok(id);
            }
            let expected = stats::expected_rows_of(client, &setup);
            history::record_policies(client, &schema, id, &setup.policies, &expected)?;

            let mut deleter =
                Deleter::new(&setup, i64::from(batch_size), Progress::new(&setup), None);
            let outcome = deleter.run(client);
            let counts = deleter.progress.counts(&setup);
            match outcome.err().or_else(|| deleter.progress.failure()) {
                None => history::finish(
                    client,
                    &schema,
                    id,
                    &RunEnd {
                        status: "succeeded",
                        tables: &counts,
                        error: None,
                        sqlstate: None,
                    },
                )?,
                Some(failure) => record_failure(client, &schema, id, &counts, &failure)?,
            }
            history::prune(client, &schema)?;
            Ok(id)
        })
    })
    .or_raise()
}

pub fn record_failure(
    client: &mut pgrx::spi::SpiClient<'_>,
    schema: &str,
    id: i64,
    counts: &[history::TableCount],
    failure: &BatchFailure,
) -> Result<()> {
    let status = if failure.is_cancel() {
        "cancelled"
    } else {
        "failed"
    };
    // The DETAIL (row values, a trigger's text) goes to the caller's WARNING
    // and the server log only: every role can read the history.
    let error = failure.message.clone();
    history::finish(
        client,
        schema,
        id,
        &RunEnd {
            status,
            tables: counts,
            error: Some(&error),
            sqlstate: Some(&failure.sqlstate),
        },
    )?;
    let detail = failure
        .detail
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    let kept = if counts.iter().any(|c| c.deleted > 0) {
        "the failing batch was rolled back, earlier batches stay deleted"
    } else {
        "nothing was deleted"
    };
    pgrx::warning!(
        "pg_retention: run {id} {status}: {}{detail} (SQLSTATE {}); {kept}",
        failure.message,
        failure.sqlstate
    );
    Ok(())
}
