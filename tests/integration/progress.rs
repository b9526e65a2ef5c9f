//! What a DBA reads while and after a run: the start notice with the
//! expected rows, `retention_progress` from another session, and the
//! narrow history views.

use std::thread;
use std::time::Duration;

use crate::common::{connect_keeping_notices, count, fresh_db, strings};
use crate::run::wait_for;

#[test]
fn another_session_follows_a_run_in_retention_progress() {
    let mut db = fresh_db("it_progress");
    // Every row expired: after ANALYZE the planner's estimate is the table's
    // row count, exactly.
    db.batch_execute(
        "CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO events SELECT g, now() - interval '40 days' - g * interval '1 minute' FROM generate_series(1, 3000) g;
         ANALYZE events;
         SELECT retention_add_policy('events', 'ts', '30 days', label => 'nightly');",
    )
    .unwrap();
    let (mut runner, notices) = connect_keeping_notices("it_progress");
    let run = thread::spawn(move || {
        runner
            .batch_execute(
                "CALL retention_run(batch_size => 100, label => 'nightly', batch_pause => '100ms')",
            )
            .unwrap();
    });
    wait_for("the run to commit a batch", Duration::from_secs(30), || {
        count(
            &mut db,
            "SELECT count(*) FROM retention_progress WHERE deleted > 0",
        ) > 0
    });
    let seen = strings(
        &mut db,
        "SELECT format('%s %s %s %s %s %s', label, origin, current_table, expected_rows,
                      percent = round(100.0 * done_rows / expected_rows, 1),
                      done_rows = deleted AND done_rows < 3000 AND eta IS NOT NULL AND elapsed IS NOT NULL)
         FROM retention_progress",
    );
    assert_eq!(seen, ["nightly retention_run public.events 3000 t t"]);
    run.join().unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_progress"), 0);
    let notices = notices.lock().unwrap();
    assert_eq!(
        notices[0],
        "NOTICE pg_retention run 1: 1 policy, about 3000 expired rows of their own tables (planner's estimate; dependent rows come on top)"
    );
    assert_eq!(
        notices.last().unwrap(),
        "NOTICE pg_retention run 1 succeeded: 3000 rows deleted"
    );
}

#[test]
fn the_history_reads_one_row_per_run_and_one_per_table() {
    let mut db = fresh_db("it_history_views");
    db.batch_execute(
        "CREATE TABLE owners (id int PRIMARY KEY, created timestamptz NOT NULL);
         CREATE TABLE logs (id int PRIMARY KEY, owner_id int REFERENCES owners ON DELETE CASCADE, ts timestamptz NOT NULL);
         INSERT INTO owners SELECT g, '2026-01-01 12:00:00.123456+00' FROM generate_series(1, 10) g;
         INSERT INTO logs SELECT g, (g % 10) + 1, '2026-01-02 00:00:00.5+00'::timestamptz + g * interval '1 hour' FROM generate_series(1, 50) g;
         SELECT retention_add_policy('owners', 'created', '30 days');
         SELECT retention_execute();
         CREATE TABLE empty (id int PRIMARY KEY, ts timestamptz NOT NULL);
         SELECT retention_remove_policy('owners');
         SELECT retention_add_policy('empty', 'ts', '1 day', label => 'quiet');",
    )
    .unwrap();
    db.batch_execute("CALL retention_run(label => 'quiet')")
        .unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s|%s|%s|%s|%s|%s|%s|%s', id, label, origin, status, deleted, tables, note,
                           duration = date_trunc('milliseconds', duration) AND started_at = date_trunc('second', started_at))
             FROM retention_history ORDER BY id"
        ),
        [
            "1||retention_execute|succeeded|60|2||t",
            "2|quiet|retention_run|succeeded|0|0||t"
        ]
    );
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s|%s|%s|%s|%s|%s|%s', run_id, step, relation, deleted, oldest, newest, partition)
             FROM retention_history_tables ORDER BY run_id, step"
        ),
        [
            "1|1|public.logs|50|||",
            "1|2|public.owners|10|2026-01-01 12:00:00+00|2026-01-01 12:00:00+00|"
        ]
    );
}

/// The estimate at a run's start waits briefly for a table another session
/// holds locked: the run goes on without it (no expected rows) and meets
/// the lock in its batches, where lock_timeout applies, instead of hanging
/// until the other session ends.
#[test]
fn a_locked_table_gets_no_estimate_and_does_not_hold_the_run() {
    let mut db = fresh_db("it_progress_locked");
    db.batch_execute(
        "CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO events SELECT g, now() - interval '40 days' FROM generate_series(1, 50) g;
         SELECT retention_add_policy('events', 'ts', '30 days');",
    )
    .unwrap();
    let mut holder = crate::common::connect("it_progress_locked");
    holder
        .batch_execute("BEGIN; LOCK events IN ACCESS EXCLUSIVE MODE;")
        .unwrap();
    let (_, run) = crate::run::spawn_call(
        "it_progress_locked",
        "CALL retention_run(lock_timeout => '200ms')",
    );
    // With the lock still held, the run ends: stopped, its batches having
    // timed out on the lock.
    wait_for(
        "the run to end while the lock is held",
        Duration::from_secs(60),
        || {
            count(
                &mut db,
                "SELECT count(*) FROM cleanup_runs WHERE status <> 'running'",
            ) > 0
        },
    );
    holder.batch_execute("COMMIT").unwrap();
    run.join().unwrap().unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s', status, policies->0->'expected_rows', lock_timeouts > 0) FROM cleanup_runs"
        ),
        ["stopped null t"]
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM events"), 50);
}

/// A cancel while the start estimate plans (here a partial index whose
/// predicate the planner evaluates, and which sleeps) ends the run: it is
/// not taken for a failed estimate, and nothing is deleted.
#[test]
fn a_cancel_during_the_start_estimate_ends_the_run() {
    let mut db = fresh_db("it_progress_cancel");
    db.batch_execute(
        "CREATE FUNCTION slow_true(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
             $$ BEGIN
                  -- Slow only for the run's session: planning elsewhere
                  -- (this setup, the checks below) folds it at once.
                  IF current_setting('application_name') = 'slow_planning' THEN PERFORM pg_sleep(30); END IF;
                  RETURN true;
                END $$;
         CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO events SELECT g, now() - interval '40 days' FROM generate_series(1, 50) g;
         SELECT retention_add_policy('events', 'ts', '30 days');
         CREATE INDEX events_slow ON events (ts) WHERE slow_true(1);",
    )
    .unwrap();
    let (pid, run) = crate::run::spawn_call_with(
        crate::common::conninfo("it_progress_cancel").replace(
            "application_name=pg_retention_it",
            "application_name=slow_planning",
        ),
        "CALL retention_run()",
    );
    wait_for("the estimate to plan", Duration::from_secs(30), || {
        count(
            &mut db,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND wait_event = 'PgSleep'"),
        ) > 0
    });
    db.batch_execute(&format!("SELECT pg_cancel_backend({pid})"))
        .unwrap();
    let error = run.join().unwrap().unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("57014"));
    assert_eq!(count(&mut db, "SELECT count(*) FROM events"), 50);
    // Cancelled in the transaction that starts the run (the estimate's), so
    // not even its history row stays.
    assert_eq!(count(&mut db, "SELECT count(*) FROM cleanup_runs"), 0);
}
