use std::collections::BTreeMap;

use crate::common::{
    add_odds_policies, connect, count, error_message, fresh_db, odds_db, sqlstate_of,
    status_and_deleted, strings,
};

/// Ids each table must lose, computed in plain SQL from the same cutoffs.
fn compute_expected(
    db: &mut postgres::Client,
    prefix: &str,
    odds: &str,
    matches: &str,
    grace: &str,
) {
    db.batch_execute(&format!(
        "CREATE TABLE expected_{p}events AS SELECT id FROM {p}events WHERE kickoff < now() - interval '{matches}';
         CREATE TABLE expected_{p}odds_snapshots AS SELECT id FROM {p}odds_snapshots
             WHERE captured_at < now() - interval '{odds}' OR event_id IN (SELECT id FROM expected_{p}events);
         CREATE TABLE expected_{p}market_odds AS SELECT id FROM {p}market_odds
             WHERE snapshot_id IN (SELECT id FROM expected_{p}odds_snapshots);
         CREATE TABLE expected_{p}tournaments AS SELECT id FROM {p}tournaments t
             WHERE created_at < now() - interval '{grace}'
               AND NOT EXISTS (SELECT 1 FROM {p}events e WHERE e.tournament_id = t.id
                               AND e.id NOT IN (SELECT id FROM expected_{p}events));",
        p = prefix
    ))
    .unwrap();
}

fn table_counts(db: &mut postgres::Client, tables: &[&str]) -> BTreeMap<String, i64> {
    tables
        .iter()
        .map(|t| {
            (
                t.to_string(),
                count(db, &format!("SELECT count(*) FROM {t}")),
            )
        })
        .collect()
}

const OWN: [&str; 4] = ["market_odds", "odds_snapshots", "events", "tournaments"];
const COMPETITOR: [&str; 4] = [
    "competitor_market_odds",
    "competitor_odds_snapshots",
    "competitor_events",
    "competitor_tournaments",
];

#[test]
fn odds_run_deletes_exactly_what_plain_sql_computes() {
    let mut db = odds_db("it_odds_run", 1);
    add_odds_policies(&mut db);
    compute_expected(&mut db, "", "30 days", "60 days", "1 day");
    compute_expected(&mut db, "competitor_", "14 days", "45 days", "2 days");
    let all: Vec<&str> = OWN.iter().chain(COMPETITOR.iter()).copied().collect();
    let before = table_counts(&mut db, &all);
    let expected: BTreeMap<String, i64> = all
        .iter()
        .map(|t| {
            (
                t.to_string(),
                count(&mut db, &format!("SELECT count(*) FROM expected_{t}")),
            )
        })
        .collect();
    // The data set is meant to exercise every reason: check it does.
    for t in &all {
        assert!(
            expected[*t] > 0,
            "{t}: the generated data should expire some rows"
        );
        assert!(
            expected[*t] < before[*t],
            "{t}: the generated data should keep some rows"
        );
    }

    // Preview: the run's order, and exactly the expected counts.
    let preview: Vec<(i32, String, i64)> = db
        .query(
            "SELECT step, relation::text, rows_to_delete FROM retention_preview() ORDER BY step",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let preview_tables: Vec<&str> = preview.iter().map(|(_, t, _)| t.as_str()).collect();
    let own_steps: Vec<&str> = preview_tables
        .iter()
        .copied()
        .filter(|t| !t.starts_with("competitor_"))
        .collect();
    assert_eq!(own_steps, OWN.to_vec(), "children first, orphans last");
    for (_, table, n) in &preview {
        assert_eq!(*n, expected[table], "preview of {table}");
    }

    let run = db
        .query_one(
            "SELECT id, status, total_deleted, batch_size, label, error, origin FROM retention_execute(97)",
            &[],
        )
        .unwrap();
    let run_id: i64 = run.get(0);
    assert_eq!(run.get::<_, String>(1), "succeeded");
    assert_eq!(run.get::<_, i64>(2), expected.values().sum::<i64>());
    assert_eq!(run.get::<_, Option<i32>>(3), Some(97));
    assert_eq!(run.get::<_, Option<String>>(4), None);
    assert_eq!(run.get::<_, Option<String>>(5), None);
    assert_eq!(run.get::<_, String>(6), "retention_execute");

    // Exactly the expected rows are gone: all of them, and nothing else.
    let after = table_counts(&mut db, &all);
    for t in &all {
        assert_eq!(
            before[*t] - after[*t],
            expected[*t],
            "rows deleted from {t}"
        );
        let left = count(
            &mut db,
            &format!("SELECT count(*) FROM {t} WHERE id IN (SELECT id FROM expected_{t})"),
        );
        assert_eq!(left, 0, "expected rows of {t} still there");
    }
    // Tournaments created minutes ago have no events yet: inside the grace period.
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM tournaments WHERE name LIKE 'new tournament%'"
        ),
        3
    );

    // The history row: per-table counts in deletion order, date ranges, cutoffs.
    let tables: Vec<(String, i64, bool)> = db
        .query(
            "SELECT t->>'relation', (t->>'deleted')::bigint, t->>'oldest' IS NOT NULL
             FROM cleanup_runs r, jsonb_array_elements(r.tables) t WHERE r.id = $1",
            &[&run_id],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(tables.len(), 8);
    for (relation, deleted, has_range) in &tables {
        let name = relation.trim_start_matches("public.");
        assert_eq!(*deleted, expected[name], "history count for {relation}");
        let has_time_column = !name.ends_with("market_odds");
        assert_eq!(*has_range, has_time_column, "date range of {relation}");
    }
    assert_eq!(
        count(
            &mut db,
            &format!(
                "SELECT jsonb_array_length(policies)::bigint FROM cleanup_runs WHERE id = {run_id}"
            )
        ),
        6
    );
    assert_eq!(
        count(&mut db, &format!("SELECT count(*) FROM cleanup_runs WHERE id = {run_id} AND finished_at >= started_at AND duration IS NOT NULL")),
        1
    );

    // A second run finds nothing left, and the preview agrees.
    assert_eq!(
        count(
            &mut db,
            "SELECT coalesce(sum(rows_to_delete), 0)::bigint FROM retention_preview()"
        ),
        0
    );
    assert_eq!(
        count(&mut db, "SELECT total_deleted FROM retention_execute()"),
        0
    );
}

#[test]
fn label_runs_only_its_policies() {
    let mut db = odds_db("it_label", 1);
    add_odds_policies(&mut db);
    let before = table_counts(&mut db, &OWN);
    let preview = count(
        &mut db,
        "SELECT sum(rows_to_delete)::bigint FROM retention_preview('competitor')",
    );
    let deleted = count(
        &mut db,
        "SELECT total_deleted FROM retention_execute(500, 'competitor')",
    );
    assert!(deleted > 0);
    assert_eq!(deleted, preview);
    assert_eq!(
        table_counts(&mut db, &OWN),
        before,
        "own tables untouched by a competitor run"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM cleanup_runs WHERE label = 'competitor' AND status = 'succeeded'"
        ),
        1
    );
    // A label no policy has is a mistake (a typo): refused, naming the
    // labels there are, by runs, stats and preview alike.
    for sql in [
        "SELECT * FROM retention_preview('competitr')",
        "SELECT * FROM retention_stats('competitr')",
        "CALL retention_run(10, 'competitr')",
    ] {
        assert_eq!(sqlstate_of(&mut db, sql), "42704", "{sql}");
    }
    // retention_execute returns its run's row, failed, as for any failure.
    assert_eq!(
        strings(
            &mut db,
            "SELECT status || ' ' || sqlstate || ' ' || total_deleted FROM retention_execute(10, 'competitr')"
        ),
        vec!["failed 42704 0"]
    );
    let message = error_message(&mut db, "CALL retention_run(10, 'competitr')");
    assert!(
        message.ends_with("failed: no policy has label \"competitr\" (labels: competitor, own)"),
        "{message}"
    );
    // A label whose policies are all paused exists: an empty, successful run.
    db.batch_execute("UPDATE retention_config SET enabled = false WHERE label = 'competitor'")
        .unwrap();
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute(10, 'competitor')"
        ),
        ("succeeded".to_string(), 0)
    );
}

/// A partitioned table's estimated rows are its partitions' rows, once:
/// ANALYZE also sets the partitioned table's own reltuples to their sum, which
/// the stats added on top (640,000 for a 320,000-row table).
#[test]
fn stats_estimate_a_partitioned_tables_rows_once() {
    let mut db = fresh_db("it_stats_partitioned");
    db.batch_execute(
        "CREATE TABLE readings (id int, ts timestamptz NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
         CREATE TABLE readings_old PARTITION OF readings FOR VALUES FROM (MINVALUE) TO ('2020-01-01');
         CREATE TABLE readings_new PARTITION OF readings FOR VALUES FROM ('2020-01-01') TO (MAXVALUE);
         INSERT INTO readings SELECT g, timestamptz '2019-12-01' + g * interval '1 hour' FROM generate_series(1, 3000) g;
         ANALYZE readings;
         SELECT retention_add_policy('readings', 'ts', '30 days');",
    )
    .unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT reltuples::bigint FROM pg_class WHERE oid = 'readings'::regclass"
        ),
        3000,
        "ANALYZE sets the partitioned table's own estimate"
    );
    assert_eq!(
        count(&mut db, "SELECT total_rows FROM retention_stats()"),
        3000
    );
}

#[test]
fn stats_report_rows_ranges_and_missing_indexes() {
    let mut db = odds_db("it_stats", 1);
    add_odds_policies(&mut db);
    db.batch_execute("DROP INDEX market_odds_snapshot_id_idx")
        .unwrap();
    let row = db
        .query_one(
            "SELECT total_rows, expired_rows, oldest IS NOT NULL AND newest > oldest, total_bytes > 0,
                    time_column_indexed, unindexed_foreign_keys, cutoff < now() - interval '59 days', last_run_status
             FROM retention_stats('own', exact => true) WHERE relation = 'events'::regclass",
            &[],
        )
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        count(&mut db, "SELECT count(*) FROM events")
    );
    assert_eq!(
        row.get::<_, i64>(1),
        count(
            &mut db,
            "SELECT count(*) FROM events WHERE kickoff < now() - interval '60 days'"
        )
    );
    assert!(row.get::<_, bool>(2));
    assert!(row.get::<_, bool>(3));
    assert!(row.get::<_, bool>(4));
    let unindexed: Vec<String> = row.get(5);
    assert_eq!(unindexed.len(), 1, "{unindexed:?}");
    assert!(
        unindexed[0].contains("market_odds_snapshot_id_fkey (snapshot_id)"),
        "{unindexed:?}"
    );
    assert!(row.get::<_, bool>(6));
    assert_eq!(row.get::<_, Option<String>>(7), None);

    // Estimates by default: from pg_class (the generator ANALYZEs).
    let estimate = count(
        &mut db,
        "SELECT total_rows FROM retention_stats() WHERE relation = 'odds_snapshots'::regclass",
    );
    assert_eq!(
        estimate,
        count(
            &mut db,
            "SELECT reltuples::bigint FROM pg_class WHERE oid = 'odds_snapshots'::regclass"
        )
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_stats()"), 6);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention_stats('competitor')"
        ),
        3
    );

    db.batch_execute("SELECT retention_execute()").unwrap();
    let status: String = db
        .query_one(
            "SELECT last_run_status FROM retention_stats() WHERE relation = 'events'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(status, "succeeded");
}

#[test]
fn composite_keys_cross_schema_cascade_and_set_null() {
    let mut db = fresh_db("it_shapes");
    db.batch_execute(
        r#"CREATE SCHEMA "Audit Log";
           CREATE SCHEMA other;
           CREATE TABLE "Audit Log"."Sessions" (region text, "Id" int, "Started At" timestamp NOT NULL,
               PRIMARY KEY (region, "Id"));
           CREATE TABLE other.events (id int PRIMARY KEY, region text NOT NULL, session_id int NOT NULL,
               FOREIGN KEY (region, session_id) REFERENCES "Audit Log"."Sessions" ON DELETE CASCADE);
           CREATE TABLE other.details (id int PRIMARY KEY, event_id int NOT NULL REFERENCES other.events);
           CREATE TABLE other.notes (id int PRIMARY KEY, region text, session_id int,
               FOREIGN KEY (region, session_id) REFERENCES "Audit Log"."Sessions" ON DELETE SET NULL);
           INSERT INTO "Audit Log"."Sessions"
               SELECT r, g, now()::timestamp - g * interval '1 day' + interval '1 hour'
               FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 20) g;
           INSERT INTO other.events SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, (g % 20) + 1
               FROM generate_series(1, 200) g;
           INSERT INTO other.details SELECT g, (g % 200) + 1 FROM generate_series(1, 600) g;
           INSERT INTO other.notes SELECT g, 'eu', (g % 20) + 1 FROM generate_series(1, 40) g;
           SELECT retention_add_policy('"Audit Log"."Sessions"', 'Started At', '10 days', batch_size => 3);"#,
    )
    .unwrap();
    // Sessions 11..20 of each region are older than 10 days.
    let expected_events = count(
        &mut db,
        "SELECT count(*) FROM other.events WHERE session_id > 10",
    );
    let expected_details = count(
        &mut db,
        "SELECT count(*) FROM other.details WHERE event_id IN (SELECT id FROM other.events WHERE session_id > 10)",
    );
    let preview: Vec<(String, i64)> = db
        .query(
            "SELECT relation::text, rows_to_delete FROM retention_preview() ORDER BY step",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        preview,
        vec![
            ("other.details".to_string(), expected_details),
            ("other.events".to_string(), expected_events),
            ("\"Audit Log\".\"Sessions\"".to_string(), 20),
        ]
    );
    let total = count(&mut db, "SELECT total_deleted FROM retention_execute(7)");
    assert_eq!(total, 20 + expected_events + expected_details);
    assert_eq!(
        count(&mut db, r#"SELECT count(*) FROM "Audit Log"."Sessions""#),
        20
    );
    assert_eq!(
        count(
            &mut db,
            r#"SELECT count(*) FROM "Audit Log"."Sessions" WHERE "Id" > 10"#
        ),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM other.events WHERE session_id > 10"
        ),
        0
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM other.events"),
        200 - expected_events
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM other.details"),
        600 - expected_details
    );
    // SET NULL children are left to Postgres: kept, their reference cleared.
    assert_eq!(count(&mut db, "SELECT count(*) FROM other.notes"), 40);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM other.notes WHERE session_id IS NULL"
        ),
        20
    );
}

#[test]
fn timestamp_and_date_columns_and_search_path() {
    let mut db = fresh_db("it_types");
    db.batch_execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.daily (day date PRIMARY KEY, v int);
         INSERT INTO app.daily SELECT current_date - g, g FROM generate_series(0, 29) g;
         SELECT retention_add_policy('app.daily', 'day', '10 days');
         SET search_path = app;",
    )
    .unwrap();
    // date < now() - 10 days: days 11..29 back (day 10 back is midnight, before now()-10d only if ... )
    let expected = count(
        &mut db,
        "SELECT count(*) FROM app.daily WHERE day < now() - interval '10 days'",
    );
    let deleted = count(
        &mut db,
        "SELECT total_deleted FROM public.retention_execute(4)",
    );
    assert_eq!(deleted, expected);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM app.daily"),
        30 - expected
    );
}

#[test]
fn failing_batch_is_rolled_back_alone_and_recorded() {
    let mut db = fresh_db("it_failure");
    db.batch_execute(
        "CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO logs SELECT g, now() - interval '100 days' + g * interval '1 minute' FROM generate_series(1, 10) g;
         CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF OLD.id = 6 THEN RAISE EXCEPTION 'row 6 is protected'; END IF; RETURN OLD; END $$;
         CREATE TRIGGER guard BEFORE DELETE ON logs FOR EACH ROW EXECUTE FUNCTION refuse();
         SELECT retention_add_policy('logs', 'ts', '1 day');",
    )
    .unwrap();
    let run = db
        .query_one(
            "SELECT status, total_deleted, error, sqlstate FROM retention_execute(2)",
            &[],
        )
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "failed");
    // Batches {1,2} and {3,4} went; {5,6} failed and was rolled back whole.
    assert_eq!(run.get::<_, i64>(1), 4);
    assert!(run.get::<_, String>(2).contains("row 6 is protected"));
    assert_eq!(run.get::<_, String>(3), "P0001");
    let left: Vec<i32> = db
        .query("SELECT id FROM logs ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![5, 6, 7, 8, 9, 10]);
    // Committed by the caller: the row is there for everyone.
    let mut other = connect("it_failure");
    assert_eq!(
        count(
            &mut other,
            "SELECT count(*) FROM cleanup_runs WHERE status = 'failed'"
        ),
        1
    );
}

#[test]
fn cycles_and_self_references() {
    let mut db = fresh_db("it_cycles");
    db.batch_execute(
        "CREATE TABLE a (id int PRIMARY KEY, b_id int, ts timestamptz NOT NULL);
         CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a);
         ALTER TABLE a ADD CONSTRAINT a_b_fk FOREIGN KEY (b_id) REFERENCES b;
         CREATE TABLE tree (id int PRIMARY KEY, parent_id int REFERENCES tree, ts timestamptz NOT NULL);
         CREATE TABLE soft_tree (id int PRIMARY KEY, parent_id int REFERENCES soft_tree ON DELETE SET NULL, ts timestamptz NOT NULL);
         INSERT INTO soft_tree VALUES (1, NULL, now() - interval '9 days'), (2, 1, now()), (3, 2, now() - interval '9 days');",
    )
    .unwrap();
    assert_eq!(
        sqlstate_of(&mut db, "SELECT retention_add_policy('a', 'ts', '1 day')"),
        "0A000"
    );
    let msg = error_message(&mut db, "SELECT retention_add_policy('a', 'ts', '1 day')");
    assert!(
        msg.contains("a_b_fk") && msg.contains("b_a_id_fkey"),
        "{msg}"
    );
    let msg = error_message(
        &mut db,
        "SELECT retention_add_policy('tree', 'ts', '1 day')",
    );
    assert!(
        msg.contains("tree_parent_id_fkey") && msg.contains("references its own table"),
        "{msg}"
    );
    // SET NULL self reference: Postgres clears the children's reference.
    db.batch_execute("SELECT retention_add_policy('soft_tree', 'ts', '1 day')")
        .unwrap();
    assert_eq!(
        count(&mut db, "SELECT total_deleted FROM retention_execute()"),
        2
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM soft_tree WHERE id = 2 AND parent_id IS NULL"
        ),
        1
    );

    // A cycle made after the policy: the run fails cleanly and says why.
    db.batch_execute(
        "CREATE TABLE c (id int PRIMARY KEY, ts timestamptz NOT NULL, d_id int);
         CREATE TABLE d (id int PRIMARY KEY, c_id int REFERENCES c);
         SELECT retention_add_policy('c', 'ts', '1 day');
         ALTER TABLE c ADD CONSTRAINT c_d_fk FOREIGN KEY (d_id) REFERENCES d;",
    )
    .unwrap();
    let run = db
        .query_one(
            "SELECT status, sqlstate, error FROM retention_execute()",
            &[],
        )
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "failed");
    assert_eq!(run.get::<_, String>(1), "0A000");
    assert!(run.get::<_, String>(2).contains("c_d_fk"));
}

#[test]
fn concurrent_run_is_skipped() {
    let mut db = fresh_db("it_overlap");
    db.batch_execute(
        "CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO logs SELECT g, now() - interval '10 days' FROM generate_series(1, 10) g;
         SELECT retention_add_policy('logs', 'ts', '1 day');",
    )
    .unwrap();
    // Another run of the same policy holds its run lock until its
    // transaction ends (it rolls back).
    let mut holder = connect("it_overlap");
    holder
        .batch_execute("BEGIN; SELECT retention_execute();")
        .unwrap();
    let run = db
        .query_one("SELECT status, total_deleted FROM retention_execute()", &[])
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "skipped");
    assert_eq!(run.get::<_, i64>(1), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM logs"), 10);
    holder.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        count(&mut db, "SELECT total_deleted FROM retention_execute()"),
        10
    );
}

#[test]
fn policies_follow_renames_and_can_be_paused_altered_removed() {
    let mut db = fresh_db("it_manage");
    db.batch_execute(
        "CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO logs SELECT g, now() - g * interval '1 day' - interval '1 hour' FROM generate_series(1, 10) g;
         SELECT retention_add_policy('logs', 'ts', '5 days', 'app', 2);
         ALTER TABLE logs RENAME TO app_logs;",
    )
    .unwrap();
    let row = db
        .query_one("SELECT relation::text, kind, time_column::text, retain::text, label, batch_size, enabled FROM retention_policies", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "app_logs");
    assert_eq!(row.get::<_, String>(1), "expire");
    assert_eq!(row.get::<_, String>(2), "ts");
    assert_eq!(row.get::<_, String>(3), "5 days");
    assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some("app"));
    assert_eq!(row.get::<_, Option<i32>>(5), Some(2));
    assert!(row.get::<_, bool>(6));

    assert_eq!(count(&mut db, "SELECT retention_pause('app_logs')"), 1);
    assert_eq!(
        count(&mut db, "SELECT total_deleted FROM retention_execute()"),
        0
    );
    assert_eq!(count(&mut db, "SELECT retention_resume('app_logs')"), 1);
    db.batch_execute("SELECT retention_alter_policy('app_logs', retain => '8 days')")
        .unwrap();
    // Days 8, 9 and 10 back.
    assert_eq!(
        count(&mut db, "SELECT total_deleted FROM retention_execute()"),
        3
    );
    assert_eq!(
        count(&mut db, "SELECT retention_remove_policy('app_logs')"),
        1
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_policies"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM app_logs"), 7);
}

#[test]
fn a_dropped_table_skips_its_policy_and_the_others_run() {
    let mut db = fresh_db("it_dropped");
    db.batch_execute(
        "CREATE TABLE keep_logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE gone_logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO keep_logs SELECT g, now() - interval '10 days' FROM generate_series(1, 5) g;
         SELECT retention_add_policy('keep_logs', 'ts', '1 day');
         SELECT retention_add_policy('gone_logs', 'ts', '1 day');
         -- Without the event trigger (as in 0.1.0) the policy outlives its table.
         ALTER EVENT TRIGGER pg_retention_forget_dropped DISABLE;
         DROP TABLE gone_logs;",
    )
    .unwrap();
    let run = db
        .query_one(
            "SELECT status, total_deleted, jsonb_array_length(policies) FROM retention_execute()",
            &[],
        )
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "succeeded");
    assert_eq!(run.get::<_, i64>(1), 5);
    assert_eq!(run.get::<_, i32>(2), 1, "only the live policy ran");
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_stats()"), 1);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention_policies"),
        2,
        "the dangling policy stays listed"
    );
}

#[test]
fn stats_count_expired_rows_up_to_a_cap_then_estimate() {
    let mut db = fresh_db("it_stats_cap");
    db.batch_execute(
        "CREATE TABLE readings (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE INDEX ON readings (ts);
         INSERT INTO readings SELECT g, now() - interval '40 days' - g * interval '1 second'
           FROM generate_series(1, 15000) g;
         INSERT INTO readings SELECT g, now() FROM generate_series(15001, 20000) g;
         ANALYZE readings;
         SELECT retention_add_policy('readings', 'ts', '30 days');",
    )
    .unwrap();
    let default_sql = "SELECT expired_rows FROM retention_stats()";
    // Past 10,000 expired rows: the planner's estimate (ANALYZE saw them all).
    let estimated = count(&mut db, default_sql);
    assert!(
        (13_500..=16_500).contains(&estimated),
        "estimate {estimated} for 15000"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT expired_rows FROM retention_stats(exact => true)"
        ),
        15_000
    );
    // Up to the cap, an exact count, whatever the statistics still say.
    db.batch_execute("DELETE FROM readings WHERE id > 500 AND id <= 15000")
        .unwrap();
    assert_eq!(count(&mut db, default_sql), 500);
}

/// Foreign keys PostgreSQL acts on itself as a run deletes (SET NULL, SET
/// DEFAULT) look their child rows up per deleted row: without an index each
/// is a scan of the child table, so the stats name them too.
#[test]
fn stats_name_unindexed_keys_that_postgres_acts_on() {
    let mut db = fresh_db("it_stats_set_null");
    db.batch_execute(
        "CREATE TABLE sessions (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE audit (id int PRIMARY KEY, session_id int REFERENCES sessions ON DELETE SET NULL);
         CREATE TABLE pages (id int PRIMARY KEY, session_id int NOT NULL REFERENCES sessions ON DELETE CASCADE);
         CREATE INDEX ON pages (session_id);
         SELECT retention_add_policy('sessions', 'ts', '30 days');",
    )
    .unwrap();
    assert_eq!(
        crate::common::strings(
            &mut db,
            "SELECT unnest(unindexed_foreign_keys) FROM retention_stats()"
        ),
        ["public.audit_session_id_fkey (session_id) -> \"public\".\"sessions\""]
    );
    db.batch_execute("CREATE INDEX ON audit (session_id)")
        .unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT cardinality(unindexed_foreign_keys)::bigint FROM retention_stats()"
        ),
        0
    );
}
