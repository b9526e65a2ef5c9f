//! `CALL retention_run(...)`: the commit-per-batch run that pg_cron schedules.
//!
//! A function cannot commit, so the procedure is PL/pgSQL looping over these
//! functions with a COMMIT after each: `_retention_run_begin` (run lock,
//! abandoned runs, history row), `_retention_run_step` (one batch) until it
//! says otherwise. The run's plan and position live in this backend's memory
//! between the steps; the history row is updated after every batch.
//!
//! Overlap guards are session-level run locks (`security.rs`; transaction
//! ones would be released by the first COMMIT): one per policy, so that two
//! runs never run one policy at once, and one per run, held while it runs.
//! Every way out of a run that the backend survives goes through `end`,
//! which releases them; a backend that dies releases them by dying, an error
//! outside the batches by the next run in the session. A `running` row whose
//! run lock nobody holds is marked 'abandoned' by the next run.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use pgrx::datum::Interval;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::catalog::{
    bookkeeping, extension_schema, get, internal, rows, PreparedStatements, Setup,
};
use crate::deleter::{Deleter, Progress};
use crate::errors::{OrRaise, Result, RetentionError};
use crate::execute::{claim_policies, record_failure};
use crate::gucs;
use crate::history::{self, RunEnd, RunStart};
use crate::policies::check_batch_size;
use crate::security::{
    hold_run_alive, release_run_locks, run_is_alive, with_pinned_search_path, LockScope,
};
use crate::stats;
use crate::subxact::{in_subtransaction, BatchFailure};

const LOCK_NOT_AVAILABLE: &str = "55P03";
/// Lock timeouts in a row on one batch before its policy is left for the next run.
const LOCK_RETRIES: u32 = 3;
const NOTICE_EVERY: Duration = Duration::from_secs(5);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// The longest a run yields after one batch: a batch that waited on a lock
/// for seconds is not a measure of the load it puts on others.
const MAX_YIELD: Duration = Duration::from_secs(1);
/// How often a run looks for other sessions running statements: reading
/// the backend status array copies every slot, too much for every batch.
const OTHERS_RECHECK: Duration = Duration::from_millis(100);

struct ActiveRun {
    id: i64,
    schema: String,
    setup: Setup,
    progress: Progress,
    batch_size: i64,
    max_rows: Option<i64>,
    deadline: Option<Instant>,
    pause: Duration,
    yield_ratio: f64,
    /// `pg_retention.max_lag`: past it, a run yields less.
    max_lag: std::time::Duration,
    /// The sleep owed to other sessions for the last batch, taken with the
    /// pause before the next one.
    yield_next: Duration,
    others_running: bool,
    others_checked: Option<Instant>,
    lock_timeout_ms: i64,
    lock_timeouts: i64,
    lock_timeouts_in_a_row: u32,
    left_for_next_run: Vec<String>,
    steps: u64,
    last_notice: Instant,
    last_progress: Instant,
    started: Instant,
    /// The planner's estimate of the policies' own expired rows at the
    /// start, when every policy has one: the progress notices' total.
    expected_rows: Option<i64>,
    /// The history row's update, prepared once for the run.
    history_statements: PreparedStatements,
}

thread_local! {
    static ACTIVE: RefCell<Option<ActiveRun>> = const { RefCell::new(None) };
}

/// ", 40% of about N expired rows, about 2m30s to go" for a progress
/// notice: rows deleted from the policies' own tables against the estimate
/// made at the start; empty without an estimate.
fn progress_of(run: &ActiveRun) -> String {
    let Some(expected) = run.expected_rows.filter(|n| *n > 0) else {
        return String::new();
    };
    let own: std::collections::HashSet<_> = run.setup.policies.iter().map(|p| p.relid).collect();
    let done: i64 = run
        .progress
        .counts(&run.setup)
        .iter()
        // A partition removed whole is the policy's own table's rows.
        .filter(|t| own.contains(&t.relid) || t.partition.is_some())
        .map(|t| t.deleted)
        .sum();
    let (percent, eta) = progress_estimate(done, expected, run.started.elapsed());
    match eta {
        Some(eta) => format!(
            ", {percent:.0}% of about {expected} expired rows, about {} to go",
            human_duration(eta)
        ),
        None => format!(", {percent:.0}% of about {expected} expired rows"),
    }
}

/// Percent done (at most 100) and the time left at the rate so far.
fn progress_estimate(
    done: i64,
    expected: i64,
    elapsed: std::time::Duration,
) -> (f64, Option<std::time::Duration>) {
    let percent = (100.0 * done as f64 / expected as f64).min(100.0);
    let eta = (done > 0 && expected > done)
        .then(|| elapsed.mul_f64((expected - done) as f64 / done as f64));
    (percent, eta)
}

/// A duration as a DBA reads it: "45s", "2m30s", "1h05m".
fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Seconds in an interval argument; months count as 30 days.
fn interval_seconds(
    client: &SpiClient<'_>,
    what: &str,
    value: Option<Interval>,
) -> Result<Option<f64>> {
    let Some(value) = value else { return Ok(None) };
    let secs = rows(
        client,
        "SELECT pg_catalog.date_part('epoch', $1::pg_catalog.interval)",
        &[value.into()],
        |r| get::<f64>(r, 1),
    )
    .map_err(internal)?
    .into_iter()
    .next()
    .flatten()
    .unwrap_or_default();
    if secs < 0.0 {
        return Err(RetentionError::InvalidParameter(format!(
            "{what} must not be negative"
        )));
    }
    Ok(Some(secs))
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn _retention_run_begin(
    batch_size: Option<i32>,
    label: Option<&str>,
    max_rows: Option<i64>,
    max_duration: Option<Interval>,
    batch_pause: Option<Interval>,
    lock_timeout: Option<Interval>,
    origin: Option<&str>,
) -> i64 {
    check_batch_size(batch_size, false).or_raise();
    let batch_size = batch_size.unwrap_or_default();
    // SAFETY: reads the transaction state of this backend.
    if unsafe { pg_sys::IsTransactionBlock() } {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "retention_run commits after every batch and cannot run inside a transaction block",
            "pg_retention",
        )
        .set_hint(
            "Send CALL retention_run(...) as a command of its own with autocommit on: not after BEGIN, \
             not in a multi-statement query string (\"SET ...; CALL ...\" is one transaction), \
             not from a driver's implicit transaction (psycopg: connection.autocommit = True). \
             Pass settings as its arguments or SET them in an earlier command. \
             To delete inside your own transaction, use SELECT retention_execute(...).",
        )
        .report(PgLogLevel::ERROR);
    }
    ACTIVE.with(|a| a.borrow_mut().take());
    with_pinned_search_path(|| {
        Spi::connect_mut(|client| -> Result<i64> {
            if max_rows.is_some_and(|n| n < 0) {
                return Err(RetentionError::InvalidParameter(
                    "max_rows must not be negative".into(),
                ));
            }
            let max_duration = interval_seconds(client, "max_duration", max_duration)?;
            let pause = interval_seconds(client, "batch_pause", batch_pause)?;
            let lock_timeout = interval_seconds(client, "lock_timeout", lock_timeout)?;
            let schema = extension_schema(client)?;
            let origin = origin.unwrap_or("retention_run");
            let run = RunStart {
                origin,
                label,
                batch_size: Some(batch_size),
            };

            // An earlier run in this session that an error ended outside its
            // batches (at a COMMIT, say) left its locks: it is over.
            release_run_locks();
            mark_abandoned(client, &schema)?;

            let id = history::start(client, &schema, &run, "running")?;
            hold_run_alive(id);
            let mut setup = match in_subtransaction(|| Setup::load(client, label, false)) {
                Ok(setup) => setup,
                Err(failure) => {
                    record_failure(client, &schema, id, &[], &failure)?;
                    release_run_locks();
                    return Ok(id);
                }
            };
            if claim_policies(client, &schema, id, &mut setup, LockScope::Session)? {
                release_run_locks();
                return Ok(id);
            }
            let expected = stats::expected_rows_of(client, &setup);
            history::record_policies(client, &schema, id, &setup.policies, &expected)?;
            let expected_rows = expected.iter().copied().sum::<Option<i64>>();
            pgrx::notice!(
                "pg_retention run {id}: {} {}, {} expired rows of their own tables{}",
                setup.policies.len(),
                if setup.policies.len() == 1 {
                    "policy"
                } else {
                    "policies"
                },
                expected_rows.map_or("an unknown number of".to_string(), |n| format!("about {n}")),
                if expected_rows.is_some() {
                    " (planner's estimate; dependent rows come on top)"
                } else {
                    ""
                }
            );
            let max_rows = max_rows
                .or(Some(i64::from(gucs::MAX_ROWS_PER_RUN.get())))
                .filter(|n| *n > 0);
            let max_duration = max_duration
                .unwrap_or(f64::from(gucs::MAX_RUN_DURATION.get()))
                .max(0.0);
            let pause = pause.unwrap_or(f64::from(gucs::BATCH_PAUSE.get()) / 1000.0);
            let lock_timeout_ms = lock_timeout
                .map(|s| (s * 1000.0) as i64)
                .unwrap_or(i64::from(gucs::LOCK_TIMEOUT.get()));
            let progress = Progress::new(&setup);
            ACTIVE.with(|a| {
                *a.borrow_mut() = Some(ActiveRun {
                    id,
                    schema,
                    setup,
                    progress,
                    batch_size: i64::from(batch_size),
                    max_rows,
                    deadline: (max_duration > 0.0)
                        .then(|| Instant::now() + Duration::from_secs_f64(max_duration)),
                    pause: Duration::from_secs_f64(pause),
                    yield_ratio: gucs::YIELD_RATIO.get(),
                    max_lag: std::time::Duration::from_secs(gucs::MAX_LAG.get().max(0) as u64),
                    yield_next: Duration::ZERO,
                    others_running: false,
                    others_checked: None,
                    lock_timeout_ms,
                    lock_timeouts: 0,
                    lock_timeouts_in_a_row: 0,
                    left_for_next_run: Vec::new(),
                    steps: 0,
                    last_notice: Instant::now(),
                    last_progress: Instant::now(),
                    started: Instant::now(),
                    expected_rows,
                    history_statements: PreparedStatements::enabled(),
                })
            });
            Ok(id)
        })
    })
    .or_raise()
}

/// One batch of the run `run_id`. Returns 'more' (commit and call again),
/// 'done' (finished: succeeded or stopped at a cap), or 'failed' /
/// 'cancelled' (recorded; the procedure re-raises after committing).
#[pg_extern(volatile, parallel_unsafe)]
fn _retention_run_step(run_id: i64) -> &'static str {
    let active = ACTIVE.with(|a| a.borrow_mut().take());
    let Some(mut run) = active.filter(|run| run.id == run_id) else {
        // The run ended in `_retention_run_begin` (skipped, or failed before
        // its first batch): the CALL must fail if the run did.
        return with_pinned_search_path(|| Spi::connect(|client| ended_status(client, run_id)))
            .or_raise();
    };
    let state =
        with_pinned_search_path(|| Spi::connect_mut(|client| step(client, &mut run))).or_raise();
    if state == "more" {
        ACTIVE.with(|a| *a.borrow_mut() = Some(run));
    }
    state
}

fn step(client: &mut SpiClient<'_>, run: &mut ActiveRun) -> Result<&'static str> {
    // The schema may have been given to an untrusted role since the run
    // began: nothing more is read or written through it (the history row
    // stays 'running'; a later run marks it abandoned).
    crate::security::check_extension_schema()?;
    let schema = run.schema.clone();
    let pause = run.pause + std::mem::take(&mut run.yield_next);
    if run.steps > 0 && !pause.is_zero() {
        // Taken after the previous batch committed: no row lock is held.
        let seconds = pause.as_secs_f64();
        let slept = in_subtransaction(|| {
            rows(
                client,
                "SELECT pg_catalog.pg_sleep($1)",
                &[seconds.into()],
                |_| Ok(()),
            )
            .map_err(internal)
        });
        if let Err(failure) = slept {
            return end_with_failure(client, run, &failure);
        }
    }
    run.steps += 1;

    let total = run.progress.total_deleted();
    if let Some(max) = run.max_rows.filter(|max| total >= *max) {
        return end(
            client,
            run,
            "stopped",
            Some(format!(
                "max_rows reached: {total} rows deleted (cap {max})"
            )),
        );
    }
    if run.deadline.is_some_and(|d| Instant::now() >= d) {
        return end(
            client,
            run,
            "stopped",
            Some("max_duration reached".to_string()),
        );
    }
    if run.progress.finished() {
        if let Some(failure) = run.progress.failure() {
            return end_with_failure(client, run, &failure);
        }
        let reason = (!run.left_for_next_run.is_empty()).then(|| {
            format!(
                "lock timeouts left work for the next run: {}",
                run.left_for_next_run.join(", ")
            )
        });
        let status = if reason.is_some() {
            "stopped"
        } else {
            "succeeded"
        };
        return end(client, run, status, reason);
    }

    // Per batch: the lock timeout, and no wait for the WAL flush at commit.
    // A crash may lose the last few batches' commits; their rows are still
    // expired and the next run deletes them, so durability buys nothing here.
    // Generic plans: the batches' statements are prepared once per run, and
    // the plan cache would otherwise re-plan the keyset selection at every
    // batch (its generic cost looks high only because LIMIT is a parameter).
    // Not with Citus tables: Citus plans a statement with parameters over
    // several shards only with their values (a custom plan).
    set_local(c"lock_timeout", &format!("{}ms", run.lock_timeout_ms));
    set_local(c"synchronous_commit", "off");
    if run.setup.routes_any() {
        // Rows of Citus tables are locked on the workers, in sessions Citus
        // opens: it passes them the transaction's SET LOCAL commands, given
        // as SQL, when told to.
        for sql in [
            "SET LOCAL citus.propagate_set_commands = 'local'".to_string(),
            format!("SET LOCAL lock_timeout = '{}ms'", run.lock_timeout_ms),
        ] {
            client.update(&sql, None, &[]).map_err(internal)?;
        }
    } else {
        set_local(c"plan_cache_mode", "force_generic_plan");
    }
    let policy_before = run.progress.current_policy();
    let progress = std::mem::take(&mut run.progress);
    let mut deleter = Deleter::new(&run.setup, run.batch_size, progress, Some(run.batch_size));
    let deleted_before = deleter.progress.total_deleted();
    let started = Instant::now();
    let outcome = deleter.step(client);
    run.progress = deleter.progress;
    let batch_time = started.elapsed();
    if run.yield_ratio > 0.0 {
        if run
            .others_checked
            .is_none_or(|checked| checked.elapsed() >= OTHERS_RECHECK)
        {
            run.others_running = another_session_running();
            run.others_checked = Some(Instant::now());
        }
        if run.others_running {
            let ratio =
                yield_ratio_at_lag(run.yield_ratio, run.max_lag, run.progress.last_batch_lag());
            run.yield_next = batch_time.mul_f64(ratio).min(MAX_YIELD);
        }
    }
    // One line per batch at DEBUG1 (SET client_min_messages = debug1 to see
    // them): the lock-hold time of each batch, for tuning and the benchmark.
    pgrx::debug1!(
        "pg_retention run {}: batch {} deleted {} rows in {:.3} ms; yields {:.3} ms",
        run.id,
        run.steps,
        run.progress.total_deleted() - deleted_before,
        batch_time.as_secs_f64() * 1000.0,
        run.yield_next.as_secs_f64() * 1000.0
    );

    match outcome {
        Ok(()) => run.lock_timeouts_in_a_row = 0,
        Err(failure) if failure.sqlstate == LOCK_NOT_AVAILABLE => {
            run.lock_timeouts += 1;
            run.lock_timeouts_in_a_row += 1;
            if run.lock_timeouts_in_a_row >= LOCK_RETRIES {
                if let Some(index) = policy_before {
                    let p = &run.setup.policies[index];
                    let name = p.relation.clone().unwrap_or_default();
                    pgrx::warning!(
                        "pg_retention run {}: {name} ({}) kept timing out on locks; its remaining rows are left for the next run",
                        run.id,
                        p.kind.as_str()
                    );
                    run.left_for_next_run.push(name);
                }
                run.progress.skip_policy();
                run.lock_timeouts_in_a_row = 0;
            }
        }
        Err(failure) if failure.is_cancel() => return end_with_failure(client, run, &failure),
        Err(failure) => {
            pgrx::warning!(
                "pg_retention run {}: a policy failed and is skipped: {} (SQLSTATE {})",
                run.id,
                failure.message,
                failure.sqlstate
            );
            run.progress.fail_policy(&run.setup, failure);
        }
    }

    let policy_done = policy_before.is_some() && policy_before != run.progress.current_policy();
    // After every batch that deleted rows, in its transaction: the history
    // then counts exactly what was committed, however the run ends. Batches
    // that deleted nothing update it (its last-seen time) every
    // PROGRESS_EVERY.
    let deleted_now = run.progress.total_deleted() > deleted_before;
    if deleted_now || policy_done || run.last_progress.elapsed() >= PROGRESS_EVERY {
        history::progress(
            client,
            &mut run.history_statements,
            &schema,
            run.id,
            &run.progress.counts(&run.setup),
        )?;
        if run.lock_timeouts > 0 {
            history::note(client, &schema, run.id, None, run.lock_timeouts)?;
        }
        run.last_progress = Instant::now();
    }
    if policy_done || run.last_notice.elapsed() >= NOTICE_EVERY {
        let name = policy_before
            .and_then(|i| run.setup.policies[i].relation.clone())
            .unwrap_or_default();
        let what = if policy_done {
            "done with"
        } else {
            "working on"
        };
        pgrx::notice!(
            "pg_retention run {}: {what} {name}; {} rows deleted so far{}",
            run.id,
            run.progress.total_deleted(),
            progress_of(run)
        );
        run.last_notice = Instant::now();
    }
    Ok("more")
}

/// The yield ratio of a run whose last batch was `lag` behind its cutoff: a
/// run that has fallen behind by more than `max_lag` (a backlog, a run
/// that missed its schedule, an inflow larger than it keeps up with while
/// yielding) yields `ratio * max_lag / lag`, less the further behind, so
/// that it catches up instead of taking `ratio + 1` times as long. A
/// `max_lag` of zero: always `ratio`.
fn yield_ratio_at_lag(
    ratio: f64,
    max_lag: std::time::Duration,
    lag: Option<std::time::Duration>,
) -> f64 {
    match lag {
        Some(lag) if !max_lag.is_zero() && lag > max_lag => {
            ratio * max_lag.as_secs_f64() / lag.as_secs_f64()
        }
        _ => ratio,
    }
}

/// Whether a client session other than this one is running statements:
/// running one now, or ended one less than `OTHERS_RECHECK` ago. What a run
/// yields to. A busy client spends much of its time between statements (its
/// own work, the network, the next BEGIN), so a look at that instant alone
/// misses it; a session idle (or idle in transaction) for longer does not
/// count. Read from the backend status array directly: pg_stat_activity
/// hides other roles' states without pg_read_all_stats, and whether one is
/// busy reveals nothing of what it runs. Citus's own connections
/// (`application_name` `citus_internal ...`: its maintenance daemon's
/// deadlock detection and transaction recovery, every few seconds, and the
/// connections a distributed query opens) are not applications to yield to.
fn another_session_running() -> bool {
    let own_pid = std::process::id() as i32;
    let recent = OTHERS_RECHECK.as_micros() as i64;
    // SAFETY: GetCurrentTimestamp only reads the clock; the
    // transaction-local copy of the backend status array is valid for
    // indexes 1..=count until the transaction ends.
    unsafe {
        let now = pg_sys::GetCurrentTimestamp();
        (1..=pg_sys::pgstat_fetch_stat_numbackends())
            .filter_map(|index| local_backend_status(index).as_ref())
            .map(|local| &local.backendStatus)
            .any(|status| {
                status.st_procpid != own_pid
                    && status.st_backendType == pg_sys::BackendType::B_BACKEND
                    && !is_citus_internal(status)
                    && match status.st_state {
                        pg_sys::BackendState::STATE_RUNNING
                        | pg_sys::BackendState::STATE_FASTPATH => true,
                        pg_sys::BackendState::STATE_IDLE
                        | pg_sys::BackendState::STATE_IDLEINTRANSACTION
                        | pg_sys::BackendState::STATE_IDLEINTRANSACTION_ABORTED => {
                            now - status.st_state_start_timestamp < recent
                        }
                        _ => false,
                    }
            })
    }
}

/// Whether a backend is one of Citus's own connections.
fn is_citus_internal(status: &pg_sys::PgBackendStatus) -> bool {
    if status.st_appname.is_null() {
        return false;
    }
    // SAFETY: a NUL-terminated name in the status array's local copy.
    let name = unsafe { std::ffi::CStr::from_ptr(status.st_appname) };
    name.to_bytes().starts_with(b"citus_internal")
}

#[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
unsafe fn local_backend_status(index: i32) -> *mut pg_sys::LocalPgBackendStatus {
    pg_sys::pgstat_fetch_stat_local_beentry(index)
}

#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
unsafe fn local_backend_status(index: i32) -> *mut pg_sys::LocalPgBackendStatus {
    pg_sys::pgstat_get_local_beentry_by_index(index)
}

/// `SET LOCAL name = value`: until the step's transaction ends. Called
/// directly rather than through `set_config()`, which would be parsed and
/// planned again at every step.
fn set_local(name: &std::ffi::CStr, value: &str) {
    let value = std::ffi::CString::new(value).expect("setting values have no NUL");
    // SAFETY: plain C strings; a bad value raises an ERROR like SET would.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            0,
            false,
        );
    }
}

/// Marks 'abandoned' every `running` run whose run lock nobody holds: its
/// backend died, or an error ended it outside its batches. Its counts are
/// those of its last committed batch, its `finished_at` when that batch
/// committed (when it was last seen working).
fn mark_abandoned(client: &mut SpiClient<'_>, schema: &str) -> Result<()> {
    let running = bookkeeping(
        client,
        &format!(
            "SELECT id FROM {schema}.cleanup_runs WHERE status OPERATOR(pg_catalog.=) 'running'"
        ),
        &[],
        |r| get::<i64>(r, 1),
    )
    .map_err(internal)?;
    let gone: Vec<i64> = running
        .into_iter()
        .flatten()
        .filter(|id| !run_is_alive(*id))
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    let abandoned = bookkeeping(
        client,
        &format!(
            "UPDATE {schema}.cleanup_runs r SET status = 'abandoned', finished_at = COALESCE(r.finished_at, r.started_at), \
               error = CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_stat_activity a \
                                         WHERE a.pid OPERATOR(pg_catalog.=) r.backend_pid \
                                           AND a.backend_start OPERATOR(pg_catalog.<=) r.started_at) \
                            THEN pg_catalog.format('an error ended the run outside its batches; backend %s lives on', r.backend_pid) \
                            ELSE pg_catalog.format('backend %s ended before the run finished', r.backend_pid) END \
             WHERE r.id OPERATOR(pg_catalog.=) ANY ($1) AND r.status OPERATOR(pg_catalog.=) 'running' RETURNING r.id"
        ),
        &[gone.into()],
        |r| get::<i64>(r, 1),
    )
    .map_err(internal)?;
    for id in abandoned.into_iter().flatten() {
        pgrx::notice!("pg_retention: run {id} was abandoned (it ended without recording its end); this run continues its work");
    }
    Ok(())
}

/// How a run that is no longer active ended, as a step reports it.
fn ended_status(client: &SpiClient<'_>, run_id: i64) -> Result<&'static str> {
    let schema = extension_schema(client)?;
    let status = rows(
        client,
        &format!("SELECT status FROM {schema}.cleanup_runs WHERE id OPERATOR(pg_catalog.=) $1"),
        &[run_id.into()],
        |r| get::<String>(r, 1),
    )
    .map_err(internal)?;
    Ok(match status.into_iter().next().flatten().as_deref() {
        Some("failed") => "failed",
        Some("cancelled") => "cancelled",
        _ => "done",
    })
}

fn end(
    client: &mut SpiClient<'_>,
    run: &ActiveRun,
    status: &str,
    stop_reason: Option<String>,
) -> Result<&'static str> {
    let counts = run.progress.counts(&run.setup);
    history::finish(
        client,
        &run.schema,
        run.id,
        &RunEnd {
            status,
            tables: &counts,
            error: None,
            sqlstate: None,
        },
    )?;
    if stop_reason.is_some() || run.lock_timeouts > 0 {
        history::note(
            client,
            &run.schema,
            run.id,
            stop_reason.as_deref(),
            run.lock_timeouts,
        )?;
    }
    history::prune(client, &run.schema)?;
    release_run_locks();
    pgrx::notice!(
        "pg_retention run {} {status}: {} rows deleted{}",
        run.id,
        run.progress.total_deleted(),
        stop_reason.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    Ok("done")
}

fn end_with_failure(
    client: &mut SpiClient<'_>,
    run: &ActiveRun,
    failure: &BatchFailure,
) -> Result<&'static str> {
    let counts = run.progress.counts(&run.setup);
    record_failure(client, &run.schema, run.id, &counts, failure)?;
    if run.lock_timeouts > 0 {
        history::note(client, &run.schema, run.id, None, run.lock_timeouts)?;
    }
    history::prune(client, &run.schema)?;
    release_run_locks();
    Ok(if failure.is_cancel() {
        "cancelled"
    } else {
        "failed"
    })
}

#[cfg(test)]
mod tests {
    use super::yield_ratio_at_lag;
    use std::time::Duration;

    #[test]
    fn progress_is_rows_done_against_the_estimate_at_the_rate_so_far() {
        let (percent, eta) = super::progress_estimate(250, 1000, Duration::from_secs(10));
        assert_eq!(percent, 25.0);
        assert_eq!(eta, Some(Duration::from_secs(30)));
        // Past the estimate: 100%, no time left to guess.
        assert_eq!(
            super::progress_estimate(1200, 1000, Duration::from_secs(5)),
            (100.0, None)
        );
        assert_eq!(
            super::progress_estimate(0, 1000, Duration::from_secs(5)),
            (0.0, None)
        );
    }

    #[test]
    fn durations_read_in_the_largest_units() {
        assert_eq!(super::human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(super::human_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(super::human_duration(Duration::from_secs(3900)), "1h05m");
    }

    #[test]
    fn a_run_behind_by_more_than_max_lag_yields_less() {
        let day = Duration::from_secs(86_400);
        assert_eq!(yield_ratio_at_lag(30.0, day, None), 30.0);
        assert_eq!(yield_ratio_at_lag(30.0, day, Some(day / 2)), 30.0);
        assert_eq!(yield_ratio_at_lag(30.0, day, Some(day)), 30.0);
        assert_eq!(yield_ratio_at_lag(30.0, day, Some(day * 3)), 10.0);
        assert_eq!(yield_ratio_at_lag(30.0, day, Some(day * 300)), 0.1);
        assert_eq!(
            yield_ratio_at_lag(30.0, Duration::ZERO, Some(day * 300)),
            30.0
        );
    }
}
