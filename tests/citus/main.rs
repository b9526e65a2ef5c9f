//! pg_retention on a real Citus cluster: a coordinator and two workers
//! (`scripts/citus.sh`, started by `scripts/test.sh`), PGHOST/PGPORT naming
//! the coordinator over TCP and PG_RETENTION_CITUS_WORKERS the workers'
//! ports. Each test makes its own database on all three nodes.
//!
//! The odds schema is distributed as a Citus user shards it
//! (`tests/citus/odds_citus.sql`): tournaments a reference table; events,
//! snapshots and market odds hash-distributed by event, co-located. The own
//! chain keeps the CASCADE key of market odds, the competitor chain has it
//! NO ACTION. Every count a run is checked against is computed in plain SQL.

#[path = "../integration/common.rs"]
#[allow(dead_code)]
mod common;

use common::{add_odds_policies, connect, count, status_and_deleted};
use postgres::{Client, NoTls};

const ODDS_CITUS: &str = include_str!("odds_citus.sql");

fn worker_ports() -> Vec<String> {
    std::env::var("PG_RETENTION_CITUS_WORKERS")
        .expect(
            "PG_RETENTION_CITUS_WORKERS is not set: run the Citus tests through scripts/test.sh",
        )
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn connect_to(port: &str, db: &str) -> Client {
    let host = std::env::var("PGHOST").expect("PGHOST is not set");
    Client::connect(
        &format!(
            "host={host} port={port} user=postgres dbname={db} application_name=pg_retention_citus"
        ),
        NoTls,
    )
    .unwrap_or_else(|e| panic!("cannot connect to {db} on port {port}: {e}"))
}

/// A new database on the coordinator and both workers, with Citus and the
/// workers registered, and pg_retention installed (Citus creates it on the
/// workers too).
fn citus_db(name: &str) -> Client {
    let coordinator_port = std::env::var("PGPORT").expect("PGPORT is not set");
    let workers = worker_ports();
    for port in workers.iter().chain(std::iter::once(&coordinator_port)) {
        let mut admin = connect_to(port, "postgres");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        connect_to(port, name)
            .batch_execute("SET client_min_messages = warning; CREATE EXTENSION citus")
            .unwrap();
    }
    let mut db = connect(name);
    db.batch_execute(&format!(
        "SELECT citus_set_coordinator_host('127.0.0.1', {coordinator_port})"
    ))
    .unwrap();
    for port in &workers {
        db.batch_execute(&format!("SELECT citus_add_node('127.0.0.1', {port})"))
            .unwrap();
    }
    db.batch_execute("SET client_min_messages = warning; CREATE EXTENSION pg_retention")
        .unwrap();
    db
}

/// [`citus_db`] with the odds schema's two chains distributed over `shards`
/// shards each, and the demo's policies.
fn citus_odds_db(name: &str, scale: i32, shards: i32) -> Client {
    let mut db = citus_db(name);
    db.batch_execute(common::ODDS_SCHEMA).unwrap();
    db.batch_execute(ODDS_CITUS).unwrap();
    db.batch_execute(&format!(
        "SELECT odds_create_schema(); SELECT odds_create_schema('competitor_');
         SELECT odds_generate({scale}); SELECT odds_generate({scale}, 'competitor_');
         SELECT odds_distribute('', 'CASCADE', {shards});
         SELECT odds_distribute('competitor_', 'NO ACTION', {shards});
         ANALYZE;"
    ))
    .unwrap();
    db
}

/// What a run of one chain must delete, per table in the run's order
/// (market odds, snapshots, events, tournaments), computed in plain SQL
/// with the chain's windows: snapshots expire after `snapshots`, events
/// after `events`, tournaments with no event left after `grace`.
fn expected(
    db: &mut Client,
    prefix: &str,
    snapshots: &str,
    events: &str,
    grace: &str,
) -> Vec<(String, i64)> {
    let doomed_snapshot = format!(
        "(s.captured_at < now() - interval '{snapshots}' OR e.kickoff < now() - interval '{events}')"
    );
    let market = count(
        db,
        &format!(
            "SELECT count(*) FROM {prefix}market_odds m
             JOIN {prefix}odds_snapshots s ON s.event_id = m.event_id AND s.id = m.snapshot_id
             JOIN {prefix}events e ON e.id = s.event_id WHERE {doomed_snapshot}"
        ),
    );
    let snaps = count(
        db,
        &format!(
            "SELECT count(*) FROM {prefix}odds_snapshots s JOIN {prefix}events e ON e.id = s.event_id
             WHERE {doomed_snapshot}"
        ),
    );
    let evs = count(
        db,
        &format!(
            "SELECT count(*) FROM {prefix}events e WHERE e.kickoff < now() - interval '{events}'"
        ),
    );
    let tournaments = count(
        db,
        &format!(
            "SELECT count(*) FROM {prefix}tournaments t WHERE t.created_at < now() - interval '{grace}'
             AND t.id NOT IN (SELECT e.tournament_id FROM {prefix}events e
                              WHERE e.kickoff >= now() - interval '{events}')"
        ),
    );
    vec![
        (format!("{prefix}market_odds"), market),
        (format!("{prefix}odds_snapshots"), snaps),
        (format!("{prefix}events"), evs),
        (format!("{prefix}tournaments"), tournaments),
    ]
}

fn table_rows(db: &mut Client, prefix: &str) -> Vec<i64> {
    ["market_odds", "odds_snapshots", "events", "tournaments"]
        .iter()
        .map(|t| count(db, &format!("SELECT count(*) FROM {prefix}{t}")))
        .collect()
}

fn preview(db: &mut Client, label: Option<&str>) -> Vec<(String, i64)> {
    db.query(
        "SELECT relation::text, rows_to_delete FROM retention_preview($1) ORDER BY step",
        &[&label],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The newest run's per-table counts, in the history's order.
fn last_history(db: &mut Client) -> Vec<(String, i64)> {
    db.query(
        "SELECT t->>'relation', (t->>'deleted')::bigint FROM cleanup_runs r, jsonb_array_elements(r.tables) t
         WHERE r.id = (SELECT max(id) FROM cleanup_runs)",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get::<_, String>(0).trim_start_matches("public.").to_string(), r.get(1)))
    .collect()
}

/// Each chain, one by `retention_execute` (one transaction) and one by
/// `CALL retention_run` (a commit per batch): stats, preview, the history
/// and the rows left all match plain SQL, and a second run finds nothing.
#[test]
fn distributed_odds_schema_runs_as_plain_sql_says() {
    let mut db = citus_odds_db("citus_odds", 1, 4);
    add_odds_policies(&mut db);
    // Rows and bytes are the shards' (the coordinator's tables are empty);
    // ANALYZE counted every row of these small shards.
    let sizes: Vec<(String, i64, i64)> = db
        .query(
            "SELECT relation::text, total_rows, total_bytes FROM retention_stats('own') ORDER BY policy_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut want_sizes = Vec::new();
    for table in ["odds_snapshots", "events", "tournaments"] {
        want_sizes.push((
            table.to_string(),
            count(&mut db, &format!("SELECT count(*) FROM {table}")),
            count(
                &mut db,
                &format!("SELECT citus_total_relation_size('{table}')"),
            ),
        ));
    }
    assert_eq!(sizes, want_sizes);
    // The windows of `add_odds_policies`.
    for (label, prefix, snapshots, events, grace) in [
        ("own", "", "30 days", "60 days", "1 day"),
        ("competitor", "competitor_", "14 days", "45 days", "2 days"),
    ] {
        let want = expected(&mut db, prefix, snapshots, events, grace);
        let before = table_rows(&mut db, prefix);
        assert!(want.iter().all(|(_, n)| *n > 0), "{label}: {want:?}");

        let stats: Vec<(String, i64)> = db
            .query(
                "SELECT relation::text, expired_rows FROM retention_stats($1, exact => true) ORDER BY policy_id",
                &[&label],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let expired_snapshots = count(
            &mut db,
            &format!("SELECT count(*) FROM {prefix}odds_snapshots WHERE captured_at < now() - interval '{snapshots}'"),
        );
        let orphans_now = count(
            &mut db,
            &format!(
                "SELECT count(*) FROM {prefix}tournaments t WHERE t.created_at < now() - interval '{grace}'
                 AND t.id NOT IN (SELECT e.tournament_id FROM {prefix}events e)"
            ),
        );
        assert_eq!(
            stats,
            vec![
                (format!("{prefix}odds_snapshots"), expired_snapshots),
                (format!("{prefix}events"), want[2].1),
                (format!("{prefix}tournaments"), orphans_now),
            ],
            "{label}: exact stats"
        );
        assert_eq!(preview(&mut db, Some(label)), want, "{label}: preview");

        let total: i64 = want.iter().map(|(_, n)| n).sum();
        if label == "own" {
            let sql =
                format!("SELECT status, total_deleted FROM retention_execute(1000, '{label}')");
            assert_eq!(
                status_and_deleted(&mut db, &sql),
                ("succeeded".to_string(), total)
            );
        } else {
            db.batch_execute(&format!("CALL retention_run(1000, '{label}')"))
                .unwrap();
            let sql = "SELECT status, total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1";
            assert_eq!(
                status_and_deleted(&mut db, sql),
                ("succeeded".to_string(), total)
            );
        }
        assert_eq!(last_history(&mut db), want, "{label}: history per table");
        let after = table_rows(&mut db, prefix);
        let left: Vec<i64> = before.iter().zip(&want).map(|(b, (_, n))| b - n).collect();
        assert_eq!(after, left, "{label}: rows left");
        assert_eq!(
            expected(&mut db, prefix, snapshots, events, grace)
                .iter()
                .map(|(_, n)| *n)
                .sum::<i64>(),
            0,
            "{label}: nothing expired is left"
        );
        let sql = format!("SELECT status, total_deleted FROM retention_execute(1000, '{label}')");
        assert_eq!(
            status_and_deleted(&mut db, &sql),
            ("succeeded".to_string(), 0)
        );
    }
}

/// Batches over Citus tables lock no rows when they select them. A parent
/// made young by another session after its batch selected it and deleted its
/// children (here that session is a dblink connection, opened by a trigger
/// on the child when a child of parent 7 goes: the timing is exact) is kept
/// by the parent's delete, which re-checks the time: the batch is then
/// rolled back whole, children included, and taken again without it.
/// Tables in Citus's metadata on the coordinator (where a trigger can run
/// dblink) take the same path as distributed ones.
#[test]
fn a_parent_kept_after_its_children_were_deleted_rolls_its_batch_back() {
    let mut db = citus_db("citus_changed");
    let conninfo = common::conninfo("citus_changed");
    db.batch_execute(&format!(
        "ALTER DATABASE citus_changed SET citus_test.conninfo = '{conninfo}'"
    ))
    .unwrap();
    let mut db = connect("citus_changed");
    // One statement at a time: Citus sends a function's definition to the
    // workers as the query string it came in.
    for sql in [
        "CREATE TABLE parent (id bigint PRIMARY KEY, t timestamptz NOT NULL)",
        "CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parent (id))",
        "CREATE INDEX ON child (parent_id)",
        "INSERT INTO parent SELECT i, now() - interval '10 days' - i * interval '1 minute' FROM generate_series(1, 50) i",
        "INSERT INTO child SELECT i, (i - 1) / 4 + 1 FROM generate_series(1, 200) i",
        "SELECT citus_add_local_table_to_metadata('parent', cascade_via_foreign_keys => true)",
        "CREATE EXTENSION dblink",
        "CREATE FUNCTION keep_parent_7() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF OLD.parent_id = 7 THEN
                 PERFORM public.dblink_exec(current_setting('citus_test.conninfo'),
                     'UPDATE public.parent SET t = now() WHERE id = 7 AND t < now() - interval ''1 day''');
             END IF;
             RETURN OLD;
         END $$",
        "CREATE TRIGGER keep_parent_7 BEFORE DELETE ON child FOR EACH ROW EXECUTE FUNCTION keep_parent_7()",
        "SELECT retention_add_policy('parent', 't', '1 day')",
    ] {
        db.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid IN ('parent'::regclass, 'child'::regclass)"),
        2
    );
    let sql = "SELECT status, total_deleted FROM retention_execute(10)";
    assert_eq!(
        status_and_deleted(&mut db, sql),
        ("succeeded".to_string(), 245)
    );
    assert_eq!(
        last_history(&mut db),
        vec![("child".to_string(), 196), ("parent".to_string(), 49)]
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM parent WHERE id = 7"),
        1
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM child WHERE parent_id = 7"),
        4
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM child"), 4);
}

/// An expire policy on a reference table whose rows distributed tables
/// reference (NO ACTION, down to market odds): its batches delete events,
/// snapshots and market odds first, over every shard, then the reference
/// rows, in one transaction that Citus runs on one connection per node.
#[test]
fn a_reference_table_policy_deletes_distributed_children_first() {
    let mut db = citus_odds_db("citus_reference", 1, 4);
    db.batch_execute(
        "SELECT retention_add_policy('competitor_tournaments', 'created_at', '100 days')",
    )
    .unwrap();
    // Rows of old tournaments, reached through these joins from each table.
    let events = "competitor_events e JOIN competitor_tournaments t ON t.id = e.tournament_id";
    let want: Vec<(String, i64)> = [
        (
            "competitor_market_odds",
            format!("competitor_market_odds m JOIN {events} ON e.id = m.event_id"),
        ),
        (
            "competitor_odds_snapshots",
            format!("competitor_odds_snapshots s JOIN {events} ON e.id = s.event_id"),
        ),
        ("competitor_events", events.to_string()),
        (
            "competitor_tournaments",
            "competitor_tournaments t".to_string(),
        ),
    ]
    .into_iter()
    .map(|(table, from)| {
        let sql =
            format!("SELECT count(*) FROM {from} WHERE t.created_at < now() - interval '100 days'");
        (table.to_string(), count(&mut db, &sql))
    })
    .collect();
    assert!(want.iter().all(|(_, n)| *n > 0), "{want:?}");
    assert_eq!(preview(&mut db, None), want);
    let total: i64 = want.iter().map(|(_, n)| n).sum();
    let sql = "SELECT status, total_deleted FROM retention_execute(500)";
    assert_eq!(
        status_and_deleted(&mut db, sql),
        ("succeeded".to_string(), total)
    );
    assert_eq!(last_history(&mut db), want);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM competitor_tournaments t WHERE t.created_at < now() - interval '100 days'"),
        0
    );
}

/// A writer holding a row lock on a worker: `CALL retention_run`'s
/// `lock_timeout` reaches the workers' sessions (Citus passes them the
/// run's SET LOCAL), so the batch that needs the row times out instead of
/// waiting for the writer; after three in a row the policy is left for the
/// next run (status `stopped`), which deletes the rest once the writer is done.
#[test]
fn a_writers_row_lock_on_a_worker_times_out_the_batch() {
    let mut db = citus_odds_db("citus_locked", 1, 4);
    db.batch_execute("SELECT retention_add_policy('competitor_events', 'kickoff', '45 days')")
        .unwrap();
    let want: i64 = expected(&mut db, "competitor_", "100 years", "45 days", "1 day")
        .iter()
        .filter(|(t, _)| t != "competitor_tournaments")
        .map(|(_, n)| n)
        .sum();
    assert!(want > 0);
    let mut writer = connect("citus_locked");
    writer
        .batch_execute(
            "BEGIN; UPDATE competitor_odds_snapshots SET bookmaker = bookmaker WHERE event_id =
                 (SELECT id FROM competitor_events ORDER BY kickoff, id LIMIT 1)",
        )
        .unwrap();
    // Were the timeout not passed on, the run would wait for the writer,
    // which waits for the run: statement_timeout ends that as a failure.
    db.batch_execute("SET statement_timeout = '60s'").unwrap();
    db.batch_execute("CALL retention_run(1000, lock_timeout => '200ms')")
        .unwrap();
    let row = db
        .query_one(
            "SELECT status, total_deleted, lock_timeouts FROM cleanup_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap();
    let (status, deleted, timeouts): (String, i64, i32) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((status.as_str(), deleted, timeouts), ("stopped", 0, 3));
    writer.batch_execute("COMMIT").unwrap();
    db.batch_execute("CALL retention_run(1000)").unwrap();
    let sql = "SELECT status, total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1";
    assert_eq!(
        status_and_deleted(&mut db, sql),
        ("succeeded".to_string(), want)
    );
}

/// An orphan policy on Citus whose referencing foreign key cascades is
/// refused (0A000, naming the key): Citus locks no orphan, so a row
/// referencing one, committed while it is deleted, would be cascaded to.
/// The other policies run; with NO ACTION the same orphan policy runs.
#[test]
fn an_orphan_policy_whose_references_cascade_is_refused_on_citus() {
    let mut db = citus_odds_db("citus_orphans", 1, 4);
    db.batch_execute(
        "ALTER TABLE competitor_events DROP CONSTRAINT competitor_events_tournament_id_fkey",
    )
    .unwrap();
    db.batch_execute(
        "ALTER TABLE competitor_events ADD CONSTRAINT competitor_events_tournament_id_fkey
             FOREIGN KEY (tournament_id) REFERENCES competitor_tournaments (id) ON DELETE CASCADE",
    )
    .unwrap();
    db.batch_execute(
        "SELECT retention_add_orphan_policy('competitor_tournaments', 'created_at', '1 day');
         SELECT retention_add_policy('events', 'kickoff', '60 days');
         SELECT retention_add_orphan_policy('tournaments', 'created_at', '1 day');",
    )
    .unwrap();
    let want = expected(&mut db, "", "100 years", "60 days", "1 day");
    assert!(want[3].1 > 0, "{want:?}");
    let orphans: i64 = want.iter().map(|(_, n)| n).sum();
    let row = db
        .query_one(
            "SELECT status, total_deleted, sqlstate, error FROM retention_execute(1000)",
            &[],
        )
        .unwrap();
    let (status, deleted, sqlstate, error): (String, i64, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (status.as_str(), deleted, sqlstate.as_str()),
        ("failed", orphans, "0A000")
    );
    assert!(
        error.contains("public.competitor_tournaments (orphan policy 1): on Citus, no foreign key to an orphan policy's table may act on delete: public.competitor_events_tournament_id_fkey of public.competitor_events does"),
        "{error}"
    );
    let stats_error: String = db
        .query_one(
            "SELECT error FROM retention_stats() WHERE relation = 'competitor_tournaments'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        stats_error.starts_with("on Citus, no foreign key"),
        "{stats_error}"
    );
}

/// Another session makes expired events young, as fast as it can, while
/// `CALL retention_run` deletes them and their snapshots and market odds (NO
/// ACTION and CASCADE, distributed over four shards): every event that
/// survives keeps every snapshot and market odd it had, every event the
/// session made young survives, and no expired event is left. Without the
/// rollback of a batch whose rows changed, this fails (an event made young
/// between its children's delete and its own lost its rows: seen in three
/// runs out of three). Should a batch keep changing three times in a row
/// the policy fails with 40001, and the test still checks that nothing
/// else went.
#[test]
fn events_made_young_during_a_run_keep_all_their_rows() {
    race_a_run(1000);
    // A budget smaller than one event's snapshots and market odds: on one
    // node a step may stop inside a batch and the next take the rest; here
    // a batch commits whole, or a root made young after one step deleted
    // its children would be re-checked by no one.
    race_a_run(20);
}

fn race_a_run(batch_size: i32) {
    let name = format!("citus_racing_{batch_size}");
    let mut db = citus_odds_db(&name, 2, 4);
    db.batch_execute("SELECT retention_add_policy('competitor_events', 'kickoff', '45 days')")
        .unwrap();
    let per_event =
        "SELECT e.id, (SELECT count(*) FROM competitor_odds_snapshots s WHERE s.event_id = e.id),
                            (SELECT count(*) FROM competitor_market_odds m WHERE m.event_id = e.id)
                     FROM competitor_events e ORDER BY e.id";
    let rows_of = |db: &mut Client| -> Vec<(i64, i64, i64)> {
        db.query(per_event, &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let before = rows_of(&mut db);
    let expired: Vec<i64> = db
        .query(
            "SELECT id FROM competitor_events WHERE kickoff < now() - interval '45 days' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(expired.len() > 100, "{}", expired.len());
    // The writer updates expired events in a fixed pseudo-random order as
    // fast as it can: some land inside the batch that is deleting them.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut w = connect(&name);
            let mut young = Vec::new();
            let mut state: u64 = 20261202;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = expired[(state >> 33) as usize % expired.len()];
                let n = w
                    .execute(
                        "UPDATE competitor_events SET kickoff = now() WHERE id = $1 AND kickoff < now() - interval '45 days'",
                        &[&id],
                    )
                    .unwrap();
                if n == 1 {
                    young.push(id);
                }
            }
            young
        })
    };
    // A run whose batch kept changing fails with 40001 (checked below from
    // its history row); any other error is the test's failure.
    if let Err(e) = db.batch_execute(&format!("CALL retention_run({batch_size})")) {
        assert_eq!(
            e.code(),
            Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE),
            "{e}"
        );
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let young = writer.join().unwrap();
    let row = db
        .query_one(
            "SELECT status, coalesce(sqlstate, '') FROM cleanup_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap();
    let (status, sqlstate): (String, String) = (row.get(0), row.get(1));
    assert!(
        status == "succeeded" || (status == "failed" && sqlstate == "40001"),
        "{status} {sqlstate}"
    );
    let after = rows_of(&mut db);
    for (id, snapshots, odds) in &after {
        let was = before
            .iter()
            .find(|(b, ..)| b == id)
            .expect("no event is created");
        assert_eq!((snapshots, odds), (&was.1, &was.2), "event {id} lost rows");
    }
    for id in &young {
        assert!(
            after.iter().any(|(a, ..)| a == id),
            "event {id} was made young and deleted"
        );
    }
    if status == "succeeded" {
        assert_eq!(
            count(
                &mut db,
                "SELECT count(*) FROM competitor_events WHERE kickoff < now() - interval '45 days'"
            ),
            0
        );
    }
    assert!(!young.is_empty());
}

/// The overlap guard works on the coordinator as on one node: a run of a
/// policy another run holds is recorded `skipped` and deletes nothing.
#[test]
fn a_run_overlapping_another_on_the_coordinator_is_skipped() {
    let mut db = citus_odds_db("citus_overlap", 1, 4);
    db.batch_execute("SELECT retention_add_policy('competitor_events', 'kickoff', '45 days')")
        .unwrap();
    let before = table_rows(&mut db, "competitor_");
    let mut holder = connect("citus_overlap");
    holder
        .batch_execute("BEGIN; SELECT retention_execute(1000)")
        .unwrap();
    db.batch_execute("CALL retention_run(1000)").unwrap();
    let sql = "SELECT status, total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1";
    assert_eq!(status_and_deleted(&mut db, sql), ("skipped".to_string(), 0));
    holder.batch_execute("ROLLBACK").unwrap();
    assert_eq!(table_rows(&mut db, "competitor_"), before);
}
