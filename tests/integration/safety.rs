//! Safety: the caller's privileges, a hostile search_path, hostile names,
//! writers racing a run, and a run with live writers on the odds schema.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::common::{connect, count, fresh_db, odds_db};
use crate::run::{spawn_call, wait_for};

#[test]
fn a_run_has_only_the_privileges_of_its_role() {
    let mut db = fresh_db("it_privileges");
    db.batch_execute(
        "DROP ROLE IF EXISTS it_runner;
         CREATE ROLE it_runner;
         CREATE TABLE a_parent (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE a_child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES a_parent);
         CREATE TABLE b_logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO a_parent SELECT g, now() - interval '10 days' FROM generate_series(1, 20) g;
         INSERT INTO a_child SELECT g, g FROM generate_series(1, 20) g;
         INSERT INTO b_logs SELECT g, now() - interval '10 days' FROM generate_series(1, 30) g;
         ALTER TABLE a_parent OWNER TO it_runner;
         ALTER TABLE b_logs OWNER TO it_runner;
         -- The runner may read and lock a_child, but not delete from it.
         GRANT SELECT, UPDATE ON a_child TO it_runner;
         SET ROLE it_runner;
         SELECT retention_add_policy('a_parent', 'ts', '1 day');
         SELECT retention_add_policy('b_logs', 'ts', '1 day');
         RESET ROLE;",
    )
    .unwrap();
    // Row-level security: another role sees none of it_runner's policies.
    db.batch_execute("DROP ROLE IF EXISTS it_other; CREATE ROLE it_other; SET ROLE it_other")
        .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_policies"), 0);
    assert_eq!(
        crate::common::sqlstate_of(
            &mut db,
            "INSERT INTO retention_config (relid, kind, time_column, retain) VALUES ('b_logs', 'expire', 'ts', '1 day')"
        ),
        "42501"
    );
    db.batch_execute("RESET ROLE; SET ROLE it_runner").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_policies"), 2);

    let run = db
        .query_one(
            "SELECT status, sqlstate, error, total_deleted FROM retention_execute()",
            &[],
        )
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "failed");
    assert_eq!(run.get::<_, String>(1), "42501");
    let error: String = run.get(2);
    assert!(
        error.contains("DELETE on public.a_child") && error.contains("a_parent"),
        "{error}"
    );
    assert_eq!(run.get::<_, i64>(3), 30, "the other policy ran");
    assert_eq!(count(&mut db, "SELECT count(*) FROM a_parent"), 20);
    assert_eq!(count(&mut db, "SELECT count(*) FROM a_child"), 20);
    assert_eq!(count(&mut db, "SELECT count(*) FROM b_logs"), 0);

    // The procedure: the same, and the CALL reports the failure at the end.
    db.batch_execute("RESET ROLE; INSERT INTO b_logs SELECT g, now() - interval '10 days' FROM generate_series(1, 5) g; SET ROLE it_runner")
        .unwrap();
    let err = db.batch_execute("CALL retention_run()").unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42501"));
    assert_eq!(count(&mut db, "SELECT count(*) FROM b_logs"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM a_child"), 20);
    db.batch_execute("RESET ROLE").unwrap();
}

#[test]
fn a_hostile_search_path_changes_nothing() {
    let mut db = fresh_db("it_search_path");
    db.batch_execute(
        "CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE log_lines (id int PRIMARY KEY, log_id int NOT NULL REFERENCES logs);
         INSERT INTO logs SELECT g, now() - g * interval '1 day' - interval '1 hour' FROM generate_series(1, 20) g;
         INSERT INTO log_lines SELECT g, (g % 20) + 1 FROM generate_series(1, 60) g;
         CREATE SCHEMA evil;
         -- If any of these were used, everything (or nothing) would expire.
         CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT 'infinity'::timestamptz $$;
         CREATE FUNCTION evil.always(timestamptz, timestamptz) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
         CREATE OPERATOR evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.always);
         CREATE FUNCTION evil.int_eq(int, int) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
         CREATE OPERATOR evil.= (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.int_eq);
         CREATE TABLE evil.retention_config (id int);
         CREATE TABLE evil.cleanup_runs (id int);
         SET search_path = evil, public, pg_catalog;",
    )
    .unwrap();
    db.batch_execute("SELECT public.retention_add_policy('public.logs', 'ts', '10 days')")
        .unwrap();
    let expected_logs = 11; // 10..20 days back
    let expected_lines = count(
        &mut db,
        "SELECT pg_catalog.count(*) FROM public.log_lines l WHERE l.log_id OPERATOR(pg_catalog.>=) 10",
    );
    let preview = count(
        &mut db,
        "SELECT pg_catalog.sum(rows_to_delete)::bigint FROM public.retention_preview()",
    );
    assert_eq!(preview, expected_logs + expected_lines);
    let expired = count(
        &mut db,
        "SELECT expired_rows FROM public.retention_stats(exact => true)",
    );
    assert_eq!(expired, expected_logs);
    db.batch_execute("CALL public.retention_run(4)").unwrap();
    assert_eq!(
        count(&mut db, "SELECT pg_catalog.count(*) FROM public.logs"),
        20 - expected_logs
    );
    assert_eq!(
        count(&mut db, "SELECT pg_catalog.count(*) FROM public.log_lines"),
        60 - expected_lines
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT total_deleted FROM public.retention_execute()"
        ),
        0,
        "a second run finds nothing"
    );
    assert_eq!(
        count(&mut db, "SELECT pg_catalog.count(*) FROM evil.cleanup_runs"),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT pg_catalog.count(*) FROM evil.retention_config"
        ),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT pg_catalog.count(*) FROM public.cleanup_runs"
        ),
        2
    );
}

#[test]
fn hostile_names_are_quoted_and_labels_bound() {
    let mut db = fresh_db("it_names");
    db.batch_execute(
        r#"CREATE TABLE victim (id int);
           CREATE SCHEMA "My Schema; --";
           CREATE TABLE "My Schema; --"."x""; DROP TABLE victim; --" (
               "Id ü" int PRIMARY KEY, "select" timestamptz NOT NULL, "Time; DROP" date);
           CREATE TABLE "My Schema; --"."Child ""Table""" (
               "order" int PRIMARY KEY,
               "Parent Id" int NOT NULL REFERENCES "My Schema; --"."x""; DROP TABLE victim; --");
           INSERT INTO "My Schema; --"."x""; DROP TABLE victim; --"
               SELECT g, now() - g * interval '1 day' - interval '1 hour', current_date FROM generate_series(1, 10) g;
           INSERT INTO "My Schema; --"."Child ""Table""" SELECT g, (g % 10) + 1 FROM generate_series(1, 30) g;
           SELECT retention_add_policy('"My Schema; --"."x""; DROP TABLE victim; --"', 'select', '5 days',
                                       label => $$'; DROP TABLE victim; --$$, batch_size => 2);"#,
    )
    .unwrap();
    let preview = count(
        &mut db,
        "SELECT sum(rows_to_delete)::bigint FROM retention_preview($$'; DROP TABLE victim; --$$)",
    );
    assert_eq!(preview, 6 + 18);
    db.batch_execute("CALL retention_run(3, label => $$'; DROP TABLE victim; --$$)")
        .unwrap();
    assert_eq!(
        count(
            &mut db,
            r#"SELECT count(*) FROM "My Schema; --"."x""; DROP TABLE victim; --""#
        ),
        4
    );
    assert_eq!(
        count(
            &mut db,
            r#"SELECT count(*) FROM "My Schema; --"."Child ""Table""""#
        ),
        12
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM victim"),
        0,
        "victim still exists"
    );
    let relation: String = db
        .query_one("SELECT tables->0->>'relation' FROM cleanup_runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(relation, r#""My Schema; --"."Child ""Table""""#);
}

/// parent(1..100, all expired) <- child (2 per parent); a BEFORE DELETE
/// trigger on child waits on advisory lock 4242, so the test can hold a run
/// in the middle of its first batch.
fn paused_db(name: &str) -> postgres::Client {
    let mut db = fresh_db(name);
    db.batch_execute(
        "CREATE TABLE parent (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent);
         CREATE INDEX ON child (parent_id);
         INSERT INTO parent SELECT g, now() - interval '100 days' + g * interval '1 minute' FROM generate_series(1, 100) g;
         INSERT INTO child SELECT g, (g % 100) + 1 FROM generate_series(1, 200) g;
         CREATE FUNCTION wait_for_test() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_advisory_lock(4242); PERFORM pg_advisory_unlock(4242); RETURN OLD; END $$;
         CREATE TRIGGER pause BEFORE DELETE ON child FOR EACH ROW EXECUTE FUNCTION wait_for_test();
         SELECT retention_add_policy('parent', 'ts', '30 days');",
    )
    .unwrap();
    db
}

fn waiting_on_lock(db: &mut postgres::Client, pid: i32) -> bool {
    count(
        db,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND wait_event_type = 'Lock'"
        ),
    ) == 1
}

#[test]
fn a_writer_attaching_a_child_to_a_batch_parent_waits_then_fails_and_the_run_succeeds() {
    let mut db = paused_db("it_race_insert");
    let mut gate = connect("it_race_insert");
    gate.execute("SELECT pg_advisory_lock(4242)", &[]).unwrap();
    // One transaction: the batch's parents stay locked until the run commits.
    let (run_pid, run) = spawn_call("it_race_insert", "SELECT retention_execute(10)");
    // The run has locked parents 1..10 and waits inside its first child delete.
    wait_for("the run to pause", Duration::from_secs(30), || {
        waiting_on_lock(&mut db, run_pid)
    });
    let (writer_pid, writer) = spawn_call("it_race_insert", "INSERT INTO child VALUES (1000, 1)");
    wait_for(
        "the writer to wait for the parent",
        Duration::from_secs(30),
        || waiting_on_lock(&mut db, writer_pid),
    );
    gate.execute("SELECT pg_advisory_unlock(4242)", &[])
        .unwrap();
    run.join().unwrap().unwrap();
    let err = writer.join().unwrap().unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23503"), "{err}");
    let status: String = db
        .query_one("SELECT status FROM cleanup_runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(status, "succeeded");
    assert_eq!(count(&mut db, "SELECT count(*) FROM parent"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM child"), 0);
}

#[test]
fn a_parent_a_writer_holds_is_skipped_and_taken_by_the_next_run() {
    let mut db = paused_db("it_race_held");
    db.batch_execute("DROP TRIGGER pause ON child").unwrap();
    let mut writer = connect("it_race_held");
    writer
        .batch_execute("BEGIN; INSERT INTO child VALUES (1000, 1);")
        .unwrap();
    db.batch_execute("CALL retention_run(10)").unwrap();
    // Parent 1 was locked by the writer's FK check: skipped, kept whole.
    assert_eq!(count(&mut db, "SELECT count(*) FROM parent"), 1);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM child WHERE parent_id = 1"),
        2
    );
    writer.batch_execute("COMMIT").unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM child WHERE parent_id = 1"),
        3
    );
    db.batch_execute("CALL retention_run(10)").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM parent"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM child"), 0);
}

#[test]
fn a_row_made_younger_after_the_run_started_survives() {
    let mut db = paused_db("it_race_younger");
    let mut gate = connect("it_race_younger");
    gate.execute("SELECT pg_advisory_lock(4242)", &[]).unwrap();
    let (run_pid, run) = spawn_call("it_race_younger", "CALL retention_run(10)");
    wait_for("the run to pause", Duration::from_secs(30), || {
        waiting_on_lock(&mut db, run_pid)
    });
    // The cutoff is fixed; parent 50 is not reached yet. Make it young.
    assert_eq!(
        db.execute("UPDATE parent SET ts = now() WHERE id = 50", &[])
            .unwrap(),
        1
    );
    gate.execute("SELECT pg_advisory_unlock(4242)", &[])
        .unwrap();
    run.join().unwrap().unwrap();
    let left: Vec<i32> = db
        .query("SELECT id FROM parent", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![50]);
    assert_eq!(count(&mut db, "SELECT count(*) FROM child"), 2);
}

#[test]
fn live_writers_keep_writing_while_a_run_deletes_exactly_the_expired_rows() {
    let mut db = odds_db("it_live", 1);
    db.batch_execute(
        "SELECT retention_add_policy('odds_snapshots', 'captured_at', '30 days');
         SELECT retention_add_policy('events', 'kickoff', '60 days');
         SELECT retention_add_orphan_policy('tournaments', 'created_at', '1 day');
         CREATE TABLE gone_events AS SELECT id FROM events WHERE kickoff < now() - interval '60 days';
         CREATE TABLE gone_odds_snapshots AS SELECT id FROM odds_snapshots
             WHERE captured_at < now() - interval '30 days' OR event_id IN (SELECT id FROM gone_events);
         CREATE TABLE gone_market_odds AS SELECT id FROM market_odds WHERE snapshot_id IN (SELECT id FROM gone_odds_snapshots);
         CREATE TABLE gone_tournaments AS SELECT id FROM tournaments t WHERE created_at < now() - interval '1 day'
             AND NOT EXISTS (SELECT 1 FROM events e WHERE e.tournament_id = t.id AND e.id NOT IN (SELECT id FROM gone_events));
         CREATE TABLE live_events AS SELECT id FROM events WHERE kickoff > now() - interval '20 days';",
    )
    .unwrap();
    let before: Vec<(String, i64)> = ["events", "odds_snapshots", "market_odds", "tournaments"]
        .iter()
        .map(|t| {
            (
                t.to_string(),
                count(&mut db, &format!("SELECT count(*) FROM {t}")),
            )
        })
        .collect();
    let deadlocks_before = count(
        &mut db,
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (1..=3_i64)
        .map(|w| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut c = connect("it_live");
                let (mut writes, mut errors) = (0_i64, Vec::new());
                let mut n = 0_i64;
                while !stop.load(Ordering::Relaxed) || writes < 20 {
                    n += 1;
                    let snapshot = 100_000_000 * w + n;
                    let result = (|| -> Result<(), postgres::Error> {
                        let mut tx = c.transaction()?;
                        tx.execute(
                            "INSERT INTO odds_snapshots (id, event_id, bookmaker, captured_at)
                             SELECT $1, id, 'live', now() FROM live_events ORDER BY id OFFSET $2 LIMIT 1",
                            &[&snapshot, &(n % 10)],
                        )?;
                        tx.execute(
                            "INSERT INTO market_odds (id, snapshot_id, market, price)
                             SELECT $1::bigint * 10 + m, $1, 'm' || m, 2.5 FROM generate_series(1, 8) m",
                            &[&snapshot],
                        )?;
                        tx.execute(
                            "UPDATE market_odds SET price = price + 0.001
                             WHERE snapshot_id = (SELECT s.id FROM odds_snapshots s JOIN live_events e ON e.id = s.event_id
                                                  ORDER BY s.id OFFSET $1 LIMIT 1)",
                            &[&((n * 7) % 50)],
                        )?;
                        tx.commit()
                    })();
                    match result {
                        Ok(()) => writes += 1,
                        Err(e) => {
                            errors.push(e.to_string());
                            if errors.len() >= 10 {
                                break;
                            }
                        }
                    }
                }
                (writes, errors)
            })
        })
        .collect();
    db.batch_execute("CALL retention_run(100, batch_pause => '5ms')")
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        let (writes, errors) = w.join().unwrap();
        assert!(errors.is_empty(), "writer errors: {errors:?}");
        written += writes;
    }
    assert!(written >= 60);
    assert_eq!(
        count(
            &mut db,
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ),
        deadlocks_before
    );
    let status: String = db
        .query_one("SELECT status FROM cleanup_runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(status, "succeeded");
    for (table, n_before) in before {
        let gone = count(&mut db, &format!("SELECT count(*) FROM gone_{table}"));
        let left_of_gone = count(
            &mut db,
            &format!("SELECT count(*) FROM {table} WHERE id IN (SELECT id FROM gone_{table})"),
        );
        assert_eq!(left_of_gone, 0, "{table}: expired rows left");
        let old_left = count(
            &mut db,
            &format!("SELECT count(*) FROM {table} WHERE id < 100000000"),
        );
        assert_eq!(
            old_left,
            n_before - gone,
            "{table}: rows deleted that should not have been"
        );
    }
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM odds_snapshots WHERE id >= 100000000"
        ),
        written,
        "every snapshot the writers added survives"
    );
}
