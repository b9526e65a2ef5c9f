//! Refused inputs: each gets its SQLSTATE, and neither the configuration nor
//! the data changes.

use crate::common::{count, fresh_db, sqlstate_of};

fn fingerprint(db: &mut postgres::Client) -> String {
    db.query_one(
        "SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s|%s', id, relid::oid, kind, time_column, retain, label, batch_size), ';' ORDER BY id), '')
                || '#' || (SELECT count(*) FROM cleanup_runs)
                || '#' || (SELECT count(*) FROM logs)
         FROM retention_config",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn bad_inputs_are_refused_with_their_sqlstate_and_change_nothing() {
    let mut db = fresh_db("it_inputs");
    db.batch_execute(
        "DROP ROLE IF EXISTS it_inputs_intruder;
         CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL, note text, n int);
         INSERT INTO logs SELECT g, now() - g * interval '1 day' - interval '1 hour' FROM generate_series(1, 20) g;
         CREATE TABLE keyless (ts timestamptz NOT NULL);
         CREATE VIEW logs_view AS SELECT * FROM logs;
         CREATE MATERIALIZED VIEW logs_mv AS SELECT * FROM logs;
         CREATE TABLE parted (id int, ts timestamptz NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
         CREATE TABLE parted_old PARTITION OF parted FOR VALUES FROM (MINVALUE) TO ('2020-01-01');
         CREATE TABLE other_owner (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE ROLE it_inputs_intruder;
         GRANT ALL ON other_owner, logs TO it_inputs_intruder;
         GRANT ALL ON ALL TABLES IN SCHEMA public TO it_inputs_intruder;
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO it_inputs_intruder;
         CREATE TEMP TABLE scratch (id int PRIMARY KEY, ts timestamptz NOT NULL);
         -- A wrapper without a handler: enough for a foreign table to exist
         -- (no contrib module needed, which some PostgreSQL builds lack).
         CREATE FOREIGN DATA WRAPPER no_handler;
         CREATE SERVER files FOREIGN DATA WRAPPER no_handler;
         CREATE FOREIGN TABLE logs_file (id int, ts timestamptz) SERVER files OPTIONS (filename '/dev/null');
         ALTER TABLE other_owner ADD COLUMN old_ts timestamptz;
         ALTER TABLE other_owner DROP COLUMN old_ts;
         SELECT retention_add_policy('logs', 'ts', '5 days');",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cases: &[(&str, &str)] = &[
        ("SELECT retention_add_policy(NULL, 'ts', '1 day')", "22004"),
        ("SELECT retention_add_policy('other_owner', NULL, '1 day')", "22004"),
        ("SELECT retention_add_policy('other_owner', 'ts', NULL)", "22004"),
        ("SELECT retention_add_policy('other_owner', 'ts', '1 day', enabled => NULL)", "22004"),
        ("SELECT retention_add_policy('other_owner', 'ts', '-1 day')", "22023"),
        ("SELECT retention_add_policy('other_owner', 'ts', '0 seconds')", "22023"),
        ("SELECT retention_add_policy('other_owner', 'ts', '1 day', batch_size => 0)", "22023"),
        ("SELECT retention_add_policy('other_owner', 'ts', '1 day', batch_size => -10)", "22023"),
        ("SELECT retention_add_policy('no_such_table', 'ts', '1 day')", "42P01"),
        ("SELECT retention_add_policy(123456789::oid::regclass, 'ts', '1 day')", "42P01"),
        ("SELECT retention_add_policy('other_owner', 'missing', '1 day')", "42703"),
        ("SELECT retention_add_policy('logs', 'note', '1 day')", "42804"),
        ("SELECT retention_add_policy('logs', 'n', '1 day')", "42804"),
        ("SELECT retention_add_policy('logs_view', 'ts', '1 day')", "42809"),
        ("SELECT retention_add_policy('logs_mv', 'ts', '1 day')", "42809"),
        ("SELECT retention_add_policy('pg_catalog.pg_class', 'relname', '1 day')", "42809"),
        ("SELECT retention_add_policy('parted_old', 'ts', '1 day')", "42809"),
        ("SELECT retention_add_policy('scratch', 'ts', '1 day')", "0A000"),
        ("SELECT retention_add_policy('keyless', 'ts', '1 day')", "0A000"),
        ("SELECT retention_add_policy('logs', 'ts', '9 days')", "42710"),
        ("SELECT retention_add_orphan_policy('other_owner', 'ts', NULL)", "22004"),
        ("SELECT retention_add_orphan_policy('other_owner', 'ts', '-1 hour')", "22023"),
        ("SELECT retention_alter_policy('logs', retain => '-2 days')", "22023"),
        ("SELECT retention_alter_policy('logs', batch_size => 0)", "22023"),
        ("SELECT retention_alter_policy('other_owner', retain => '2 days')", "42704"),
        ("SELECT retention_alter_policy('logs', kind => 'forever')", "22023"),
        ("SELECT retention_remove_policy('other_owner')", "42704"),
        ("SELECT retention_remove_policy('logs', 'bogus')", "22023"),
        ("SELECT retention_pause('other_owner')", "42704"),
        ("SELECT retention_execute(NULL)", "22004"),
        ("SELECT retention_execute(0)", "22023"),
        ("SELECT retention_execute(-1)", "22023"),
        (
            "SET ROLE it_inputs_intruder; SELECT retention_add_policy('other_owner', 'ts', '1 day')",
            "42501",
        ),
        ("SET ROLE it_inputs_intruder; SELECT retention_remove_policy('logs')", "42501"),
        ("SET ROLE it_inputs_intruder; SELECT retention_pause('logs')", "42501"),
        ("SET ROLE it_inputs_intruder; SELECT retention_alter_policy('logs', retain => '1 day')", "42501"),
        ("SELECT retention_add_policy('logs_file', 'ts', '1 day')", "42809"),
        ("SELECT retention_add_policy('other_owner', 'old_ts', '1 day')", "42703"),
        ("SELECT retention_add_policy('other_owner', 'ts', '1 day', batch_size => 2147483648)", "42883"),
        ("SELECT retention_alter_policy('logs', reset => '{retain}')", "22023"),
        ("SELECT retention_alter_policy('logs', reset => '{NULL}')", "22023"),
        ("SELECT retention_alter_policy('logs', label => 'x', reset => '{label}')", "22023"),
        ("SELECT retention_alter_policy('logs', batch_size => 5, reset => '{batch_size}')", "22023"),
        ("SELECT retention_alter_policy('other_owner', reset => '{label}')", "42704"),
        // if_exists forgives a missing policy, not a table of another owner.
        ("SET ROLE it_inputs_intruder; SELECT retention_pause('logs', if_exists => true)", "42501"),
        ("SET ROLE it_inputs_intruder; SELECT retention_remove_policy('logs', if_exists => true)", "42501"),
        ("SET ROLE it_inputs_intruder; SELECT retention_add_policy('logs', 'ts', '1 day', if_not_exists => true)", "42501"),
        ("CALL retention_run(yield_ratio => -1)", "22023"),
        ("CALL retention_run(yield_ratio => 'NaN')", "22023"),
        ("CALL retention_run(yield_ratio => 1001)", "22023"),
        ("SET pg_retention.batch_pause = '-1'", "22023"),
        // A misspelt setting, once the library is loaded (PostgreSQL 15+).
        ("SET pg_retention.yield_ratoi = 0", "42602"),
        ("SET pg_retention.yield_ratio = -0.5", "22023"),
        ("SET pg_retention.max_rows_per_run = 'lots'", "22023"),
        ("SET pg_retention.lock_timeout = '99999999999'", "22023"),
        ("SET pg_retention.history_retention = '-5 days'", "22023"),
    ];
    let before = fingerprint(&mut db);
    for (sql, expected) in cases {
        let got = sqlstate_of(&mut db, sql);
        db.batch_execute("RESET ROLE").unwrap();
        assert_eq!(&got, expected, "{sql}");
        assert_eq!(fingerprint(&mut db), before, "{sql} changed something");
    }
    assert!(cases.len() >= 30);
    // Messages name the object.
    let msg = crate::common::error_message(
        &mut db,
        "SELECT retention_add_policy('logs_view', 'ts', '1 day')",
    );
    assert!(msg.contains("logs_view") && msg.contains("view"), "{msg}");
    let msg = crate::common::error_message(
        &mut db,
        "SELECT retention_add_policy('logs', 'note', '1 day')",
    );
    assert!(msg.contains("note") && msg.contains("text"), "{msg}");
    // The refusals left the one policy working.
    assert_eq!(
        count(&mut db, "SELECT total_deleted FROM retention_execute()"),
        16
    );
}

/// A window under an hour is accepted with a WARNING: '60' is 60 seconds,
/// more often a missing unit than a wish.
#[test]
fn a_window_without_a_unit_is_warned_about() {
    let mut db = fresh_db("it_inputs_unitless");
    db.batch_execute("CREATE TABLE jobs (id int PRIMARY KEY, ts timestamptz NOT NULL)")
        .unwrap();
    drop(db);
    let (mut db, warnings) = crate::common::connect_keeping_notices("it_inputs_unitless");
    db.batch_execute("SELECT retention_add_policy('jobs', 'ts', '60')")
        .unwrap();
    db.batch_execute("SELECT retention_alter_policy('jobs', retain => '2 days')")
        .unwrap();
    assert_eq!(
        *warnings.lock().unwrap(),
        vec!["WARNING pg_retention: retain is 00:01:00: rows older than that go. A number without a unit is read as seconds ('60' is one minute); write the unit, as in '60 days'"]
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention_config WHERE retain = '2 days'"
        ),
        1
    );
}

/// if_not_exists / if_exists answer with a NOTICE and leave everything as
/// it was; reset clears a label or a batch size (NULL arguments keep them).
#[test]
fn policies_are_managed_idempotently() {
    let mut db = fresh_db("it_inputs_idempotent");
    db.batch_execute(
        "CREATE TABLE jobs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE unmanaged (id int PRIMARY KEY, ts timestamptz NOT NULL);",
    )
    .unwrap();
    drop(db);
    let (mut db, notices) = crate::common::connect_keeping_notices("it_inputs_idempotent");
    let listing = "SELECT format('%s %s %s %s %s', kind, retain, label, batch_size, enabled) FROM retention_policies ORDER BY id";
    let id = count(
        &mut db,
        "SELECT retention_add_policy('jobs', 'ts', '30 days', label => 'nightly', batch_size => 500)",
    );
    // Declared again, differently: kept as it is, same id.
    assert_eq!(
        count(
            &mut db,
            "SELECT retention_add_policy('jobs', 'ts', '9 days', if_not_exists => true)"
        ),
        id
    );
    let orphan = count(
        &mut db,
        "SELECT retention_add_orphan_policy('jobs', 'ts', '1 day')",
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT retention_add_orphan_policy('jobs', 'ts', '2 days', if_not_exists => true)"
        ),
        orphan
    );
    assert_eq!(
        crate::common::strings(&mut db, listing),
        ["expire 30 days nightly 500 t", "orphan 1 day   t"]
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT retention_pause('unmanaged', if_exists => true)"
        ),
        0
    );
    assert_eq!(
        count(&mut db, "SELECT retention_resume('unmanaged', true)"),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT retention_remove_policy('unmanaged', if_exists => true)"
        ),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT retention_remove_policy('jobs', 'orphan', if_exists => true)"
        ),
        1
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT retention_remove_policy('jobs', 'orphan', if_exists => true)"
        ),
        0
    );
    // reset clears; the settings not named stay.
    db.batch_execute("SELECT retention_alter_policy('jobs', reset => '{label}')")
        .unwrap();
    assert_eq!(
        crate::common::strings(&mut db, listing),
        ["expire 30 days  500 t"]
    );
    db.batch_execute(
        "SELECT retention_alter_policy('jobs', retain => '20 days', reset => ARRAY['batch_size'])",
    )
    .unwrap();
    assert_eq!(
        crate::common::strings(&mut db, listing),
        ["expire 20 days   t"]
    );
    assert_eq!(
        *notices.lock().unwrap(),
        vec![
            "NOTICE table jobs already has an expire policy (id 1), skipping",
            "NOTICE table jobs already has an orphan policy (id 2), skipping",
            "NOTICE table unmanaged has no retention policy, skipping",
            "NOTICE table unmanaged has no retention policy, skipping",
            "NOTICE table unmanaged has no such retention policy, skipping",
            "NOTICE table jobs has no such retention policy, skipping",
        ]
    );
}

#[test]
fn a_table_with_a_rule_on_delete_is_refused_at_add_and_at_every_run() {
    let mut db = fresh_db("it_inputs_rules");
    db.batch_execute(
        "CREATE TABLE soft (id int PRIMARY KEY, ts timestamptz NOT NULL, gone bool NOT NULL DEFAULT false);
         INSERT INTO soft SELECT g, now() - g * interval '1 day' FROM generate_series(1, 20) g;
         CREATE RULE soft_delete AS ON DELETE TO soft DO INSTEAD UPDATE soft SET gone = true WHERE id = OLD.id;
         CREATE TABLE later (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO later SELECT g, now() - g * interval '1 day' FROM generate_series(1, 20) g;
         CREATE TABLE later_log (id int);
         SELECT retention_add_policy('later', 'ts', '5 days');
         CREATE RULE \"Keep Log\" AS ON DELETE TO later DO ALSO INSERT INTO later_log VALUES (OLD.id);",
    )
    .unwrap();
    let refused = db
        .batch_execute("SELECT retention_add_policy('soft', 'ts', '5 days')")
        .unwrap_err();
    let refused = refused.as_db_error().unwrap();
    assert_eq!(refused.code().code(), "0A000");
    assert_eq!(
        refused.message(),
        "table public.soft has a rule on DELETE (soft_delete); pg_retention deletes rows itself and \
         cannot apply rules: drop the rule (DROP RULE soft_delete ON public.soft) or the policy"
    );
    // A rule added after the policy: every run refuses the policy, and
    // neither deletes a row nor runs the rule's action.
    for _ in 0..2 {
        let failed = sqlstate_of(&mut db, "CALL retention_run(1000)");
        assert_eq!(failed, "0A000");
    }
    assert_eq!(count(&mut db, "SELECT count(*) FROM later"), 20);
    assert_eq!(count(&mut db, "SELECT count(*) FROM later_log"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM soft WHERE gone"), 0);
    let errors: Vec<String> = db
        .query(
            "SELECT status || ': ' || error FROM cleanup_runs ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected = "failed: public.later (expire policy 1): table public.later has a rule on DELETE (\"Keep Log\"); pg_retention deletes rows itself and \
                    cannot apply rules: drop the rule (DROP RULE \"Keep Log\" ON public.later) or the policy";
    assert_eq!(errors, vec![expected.to_string(), expected.to_string()]);
}

/// A rule on DELETE created while a run goes on (here by a trigger of the
/// table the run deletes from first): the sweep checks again before each of
/// its DELETEs, and the policy fails instead of running the rule's action.
#[test]
fn a_rule_created_during_a_run_fails_its_policy_before_any_delete() {
    let mut db = fresh_db("it_inputs_rule_later");
    db.batch_execute(
        "CREATE TABLE first_log (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE second_log (id int PRIMARY KEY, ts timestamptz NOT NULL, gone bool NOT NULL DEFAULT false);
         INSERT INTO first_log SELECT g, now() - (g % 20) * interval '10 days' - interval '12 hours' FROM generate_series(1, 2000) g;
         INSERT INTO second_log SELECT g, now() - (g % 20) * interval '10 days' - interval '12 hours' FROM generate_series(1, 2000) g;
         ANALYZE first_log, second_log;
         CREATE FUNCTION add_rule() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NOT EXISTS (SELECT FROM pg_rewrite WHERE rulename = 'soft' AND ev_class = 'public.second_log'::regclass) THEN
             CREATE RULE soft AS ON DELETE TO public.second_log DO INSTEAD UPDATE public.second_log SET gone = true WHERE id = OLD.id;
           END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER add_rule AFTER DELETE ON first_log FOR EACH STATEMENT EXECUTE FUNCTION add_rule();
         SELECT retention_add_policy('first_log', 'ts', '100 days');
         SELECT retention_add_policy('second_log', 'ts', '100 days');
         SET pg_retention.yield_ratio = 0;",
    )
    .unwrap();
    let expired = "SELECT count(*) FROM second_log WHERE ts < now() - interval '100 days'";
    let before = count(&mut db, expired);
    assert_eq!(sqlstate_of(&mut db, "CALL retention_run(1000)"), "0A000");
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM first_log WHERE ts < now() - interval '100 days'"
        ),
        0
    );
    assert_eq!(count(&mut db, expired), before);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM second_log WHERE gone"),
        0
    );
    let error: String = db
        .query_one(
            "SELECT error FROM cleanup_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        error.contains("table public.second_log has a rule on DELETE (soft)"),
        "{error}"
    );
}

#[test]
fn a_table_swapped_in_during_a_run_keeps_its_rows() {
    // A trigger on the first policy's table swaps the second's table for a
    // copy under its name (as a DBA swapping tables would) before the
    // second policy's first batch: the copy is no policy's table.
    let mut db = fresh_db("it_inputs_swapped");
    db.batch_execute(
        "CREATE TABLE first_log (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE second_log (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO first_log SELECT g, now() - (g % 20) * interval '10 days' - interval '12 hours' FROM generate_series(1, 2000) g;
         INSERT INTO second_log SELECT g, now() - (g % 20) * interval '10 days' - interval '12 hours' FROM generate_series(1, 2000) g;
         CREATE INDEX ON second_log (ts);
         ANALYZE first_log, second_log;
         CREATE FUNCTION swap_second() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NOT EXISTS (SELECT FROM pg_class WHERE relname = 'second_log_old') THEN
             ALTER TABLE public.second_log RENAME TO second_log_old;
             CREATE TABLE public.second_log (LIKE public.second_log_old INCLUDING ALL);
             INSERT INTO public.second_log SELECT * FROM public.second_log_old;
           END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER swap_second AFTER DELETE ON first_log FOR EACH STATEMENT EXECUTE FUNCTION swap_second();
         SELECT retention_add_policy('first_log', 'ts', '100 days');
         SELECT retention_add_policy('second_log', 'ts', '100 days');",
    )
    .unwrap();
    assert_eq!(sqlstate_of(&mut db, "CALL retention_run(1000)"), "42P01");
    assert_eq!(count(&mut db, "SELECT count(*) FROM second_log"), 2000);
    assert_eq!(count(&mut db, "SELECT count(*) FROM second_log_old"), 2000);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM first_log WHERE ts < now() - interval '100 days'"
        ),
        0
    );
    let error: String = db
        .query_one(
            "SELECT error FROM cleanup_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        error.contains(
            "table public.second_log was renamed or dropped during the run (it is now \"public\".\"second_log_old\")"
        ),
        "{error}"
    );
}
