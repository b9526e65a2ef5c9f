//! Upgrades, pg_dump / pg_restore, dropped tables, monitoring views.

use std::process::Command;

use crate::common::{connect, count, empty_db, odds_db, strings};

fn psql_env() -> (String, String) {
    (
        std::env::var("PGHOST").expect("PGHOST"),
        std::env::var("PGPORT").expect("PGPORT"),
    )
}

fn tool(program: &str, args: &[&str]) {
    let (host, port) = psql_env();
    // The server's own client programs (scripts/test.sh sets the directory
    // for each PostgreSQL version it tests).
    let bin = std::env::var("PG_RETENTION_PG_BIN")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let out = Command::new(format!("{bin}/{program}"))
        .args(["-h", &host, "-p", &port, "-U", "postgres"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every object of the extension, with its comment, and the privileges,
/// options and row-level security policies of its relations: what an install
/// or an upgrade must produce.
fn extension_objects(db: &mut postgres::Client) -> Vec<String> {
    let mut objects = strings(
        db,
        "SELECT pg_describe_object(d.classid, d.objid, 0) || ' -- ' || coalesce(obj_description(d.objid, c.relname), '')
         FROM pg_depend d JOIN pg_class c ON c.oid = d.classid
         WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_retention')
         ORDER BY 1",
    );
    objects.extend(strings(
        db,
        "SELECT format('%s acl=%s options=%s rls=%s', c.relname,
                       coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner)),
                       c.reloptions, c.relrowsecurity)
         FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_retention')
         ORDER BY 1",
    ));
    // Bodies too: a routine or view an upgrade script writes differently
    // from the install script (a fix made in one only) shows here; so do a
    // routine's properties, argument names and privileges.
    objects.extend(strings(
        db,
        "SELECT format('body of %s: %s %s cost=%s %s strict=%s %s %s acl=%s', p.oid::regprocedure, md5(p.prosrc),
                       p.prolang::regproc, p.procost, p.provolatile, p.proisstrict, p.proparallel,
                       p.proargnames,
                       (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(coalesce(p.proacl, acldefault('f', p.proowner))) a))
         FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
         WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_retention')
         UNION ALL
         SELECT format('view %s: %s', c.relname, md5(pg_get_viewdef(c.oid)))
         FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           AND c.relkind = 'v'
           AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_retention')
         ORDER BY 1",
    ));
    objects.extend(strings(
        db,
        "SELECT format('column %s.%s -- %s', c.relname, a.attname, col_description(c.oid, a.attnum))
         FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           AND c.relkind = 'r'
           AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_retention')
         ORDER BY 1",
    ));
    objects.extend(strings(
        db,
        "SELECT format('policy %s on %s %s %s using %s check %s', p.polname, p.polrelid::regclass, p.polcmd, p.polroles,
                       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
         FROM pg_policy p ORDER BY 1",
    ));
    objects
}

/// After an upgrade: the one earlier run is still in the history, and a run
/// deletes a newly expired row.
fn history_kept_and_runs_work(db: &mut postgres::Client) {
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM cleanup_runs WHERE status = 'succeeded'"
        ),
        1
    );
    db.batch_execute("INSERT INTO logs VALUES (100, NULL, now() - interval '50 days')")
        .unwrap();
    assert_eq!(
        count(db, "SELECT total_deleted FROM retention_execute()"),
        1
    );
}

const POLICIES: &str = "SELECT retention_add_policy('logs', 'ts', '5 days', 'app');
     SELECT retention_add_policy('parts', 'ts', '3 days', 'app', 10);
     SELECT retention_add_orphan_policy('owners', 'created', '1 day');";

const TABLES: &str = "CREATE TABLE owners (id int PRIMARY KEY, created timestamptz NOT NULL);
     CREATE TABLE logs (id int PRIMARY KEY, owner_id int REFERENCES owners, ts timestamptz NOT NULL);
     CREATE TABLE parts (id int PRIMARY KEY, log_id int NOT NULL REFERENCES logs, ts timestamptz NOT NULL);
     INSERT INTO owners SELECT g, now() - interval '30 days' FROM generate_series(1, 10) g;
     INSERT INTO logs SELECT g, (g % 10) + 1, now() - g * interval '1 day' - interval '1 hour' FROM generate_series(1, 20) g;
     INSERT INTO parts SELECT g, (g % 20) + 1, now() - (g % 7) * interval '1 day' - interval '1 hour' FROM generate_series(1, 100) g;";

#[test]
fn upgrade_from_0_1_0_keeps_policies_and_history_and_matches_a_fresh_install() {
    let mut db = empty_db("it_upgrade");
    db.batch_execute("CREATE EXTENSION pg_retention VERSION '0.1.0'")
        .unwrap();
    db.batch_execute(TABLES).unwrap();
    db.batch_execute(POLICIES).unwrap();
    let first = count(&mut db, "SELECT total_deleted FROM retention_execute()");
    assert!(first > 0);
    let policies_before = strings(&mut db, "SELECT format('%s %s %s %s', relation, kind, retain, label) FROM retention_policies ORDER BY id");

    db.batch_execute("ALTER EXTENSION pg_retention UPDATE")
        .unwrap();
    let version: String = db
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_retention'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, "0.6.0");
    assert_eq!(
        strings(&mut db, "SELECT format('%s %s %s %s', relation, kind, retain, label) FROM retention_policies ORDER BY id"),
        policies_before
    );
    // It works after the upgrade, new objects included.
    history_kept_and_runs_work(&mut db);
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_monitor"), 3);
    db.batch_execute("DROP TABLE parts").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_policies"), 2);

    // The upgraded extension has exactly the objects of a fresh install.
    let upgraded = extension_objects(&mut db);
    let mut fresh = empty_db("it_upgrade_fresh");
    fresh
        .batch_execute("CREATE EXTENSION pg_retention")
        .unwrap();
    assert_eq!(extension_objects(&mut fresh), upgraded);
}

#[test]
fn upgrade_from_0_2_0_takes_the_write_privileges_from_public() {
    let mut db = empty_db("it_upgrade_020");
    db.batch_execute("CREATE EXTENSION pg_retention VERSION '0.2.0'")
        .unwrap();
    db.batch_execute(TABLES).unwrap();
    db.batch_execute(POLICIES).unwrap();
    assert!(count(&mut db, "SELECT total_deleted FROM retention_execute()") > 0);
    db.batch_execute(
        "DROP ROLE IF EXISTS it_upgrade_forger; CREATE ROLE it_upgrade_forger;
         SET ROLE it_upgrade_forger;
         INSERT INTO cleanup_runs (status, origin) VALUES ('failed', 'forged');
         RESET ROLE;",
    )
    .unwrap();

    db.batch_execute("ALTER EXTENSION pg_retention UPDATE TO '0.3.0'")
        .unwrap();
    db.batch_execute("SET ROLE it_upgrade_forger").unwrap();
    assert_eq!(
        crate::common::sqlstate_of(
            &mut db,
            "INSERT INTO cleanup_runs (status, origin) VALUES ('failed', 'forged')"
        ),
        "42501"
    );
    db.batch_execute("RESET ROLE").unwrap();
    // Policies and history survive; runs work as before.
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_policies"), 3);
    history_kept_and_runs_work(&mut db);

    let upgraded = extension_objects(&mut db);
    let mut fresh = empty_db("it_upgrade_020_fresh");
    fresh
        .batch_execute("CREATE EXTENSION pg_retention VERSION '0.3.0'")
        .unwrap();
    assert_eq!(extension_objects(&mut fresh), upgraded);
}

#[test]
fn upgrade_from_0_3_0_keeps_policies_and_adds_the_partition_action() {
    let mut db = empty_db("it_upgrade_030");
    db.batch_execute("CREATE EXTENSION pg_retention VERSION '0.3.0'")
        .unwrap();
    db.batch_execute(TABLES).unwrap();
    db.batch_execute(POLICIES).unwrap();
    assert!(count(&mut db, "SELECT total_deleted FROM retention_execute()") > 0);
    let policies_before = strings(
        &mut db,
        "SELECT format('%s %s %s %s', relation, kind, retain, label) FROM retention_policies ORDER BY id",
    );

    db.batch_execute("ALTER EXTENSION pg_retention UPDATE TO '0.4.0'")
        .unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s %s', relation, kind, retain, label) FROM retention_policies ORDER BY id"
        ),
        policies_before
    );
    assert_eq!(
        strings(
            &mut db,
            "SELECT DISTINCT format('%s %s', partition_action, partition_schema) FROM retention_policies"
        ),
        ["drop "]
    );
    db.batch_execute("SELECT retention_set_partition_action('logs', 'detach')")
        .unwrap();
    history_kept_and_runs_work(&mut db);

    let upgraded = extension_objects(&mut db);
    let mut fresh = empty_db("it_upgrade_030_fresh");
    fresh
        .batch_execute("CREATE EXTENSION pg_retention VERSION '0.4.0'")
        .unwrap();
    assert_eq!(extension_objects(&mut fresh), upgraded);
}

/// 0.5.0 changes the arguments of eight functions (dropped and created
/// again): calls written for 0.4.0 still work after the update, the
/// history's new views read the runs of 0.4.0, and the objects are a fresh
/// install's.
#[test]
fn upgrade_from_0_4_0_keeps_policies_history_and_calls() {
    let mut db = empty_db("it_upgrade_040");
    db.batch_execute("CREATE EXTENSION pg_retention VERSION '0.4.0'")
        .unwrap();
    db.batch_execute(TABLES).unwrap();
    db.batch_execute(POLICIES).unwrap();
    let deleted_before = count(&mut db, "SELECT total_deleted FROM retention_execute()");
    assert!(deleted_before > 0);
    let policies_before = strings(
        &mut db,
        "SELECT format('%s %s %s %s', relation, kind, retain, label) FROM retention_policies ORDER BY id",
    );

    // A DBA took the run from PUBLIC and gave it to one role; the functions
    // replaced by the update must not give it back.
    db.batch_execute(
        "DROP ROLE IF EXISTS it_upgrade_040_app; DROP ROLE IF EXISTS it_upgrade_040_ops;
         CREATE ROLE it_upgrade_040_app; CREATE ROLE it_upgrade_040_ops;
         REVOKE EXECUTE ON PROCEDURE retention_run(integer, text, bigint, interval, interval, interval, text) FROM PUBLIC;
         GRANT EXECUTE ON PROCEDURE retention_run(integer, text, bigint, interval, interval, interval, text)
             TO it_upgrade_040_ops WITH GRANT OPTION;
         REVOKE EXECUTE ON FUNCTION retention_pause(regclass) FROM PUBLIC;",
    )
    .unwrap();
    db.batch_execute("ALTER EXTENSION pg_retention UPDATE TO '0.5.0'")
        .unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s %s', r, has_function_privilege(r, 'retention_run(integer, text, bigint, interval, interval, interval, text, real)', 'EXECUTE'),
                           has_function_privilege(r, 'retention_run(integer, text, bigint, interval, interval, interval, text, real)', 'EXECUTE WITH GRANT OPTION'),
                           has_function_privilege(r, 'retention_pause(regclass, boolean)', 'EXECUTE'))
             FROM unnest(ARRAY['it_upgrade_040_app', 'it_upgrade_040_ops']) r"
        ),
        ["it_upgrade_040_app f f f", "it_upgrade_040_ops t t f"]
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM pg_proc WHERE proname LIKE '_retention_replaced%'"
        ),
        0
    );
    db.batch_execute(
        "GRANT EXECUTE ON ALL ROUTINES IN SCHEMA public TO PUBLIC;
         DROP OWNED BY it_upgrade_040_app, it_upgrade_040_ops;
         DROP ROLE it_upgrade_040_app; DROP ROLE it_upgrade_040_ops;",
    )
    .unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s %s', relation, kind, retain, label) FROM retention_policies ORDER BY id"
        ),
        policies_before
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT sum(deleted)::bigint FROM retention_history_tables WHERE run_id = 1"
        ),
        deleted_before
    );
    // 0.4.0's calls, positional and named, as scripts wrote them.
    db.batch_execute(
        "SELECT retention_pause('parts'); SELECT retention_resume('parts');
         SELECT retention_alter_policy('logs', label => 'renamed');
         INSERT INTO logs VALUES (100, NULL, now() - interval '50 days');",
    )
    .unwrap();
    db.batch_execute("CALL retention_run(1000, max_duration => '1 minute')")
        .unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s', origin, status, deleted) FROM retention_history ORDER BY id"
        ),
        [
            format!("retention_execute succeeded {deleted_before}"),
            "retention_run succeeded 1".to_string()
        ]
    );

    let upgraded = extension_objects(&mut db);
    let mut fresh = empty_db("it_upgrade_040_fresh");
    fresh
        .batch_execute("CREATE EXTENSION pg_retention VERSION '0.5.0'")
        .unwrap();
    assert_eq!(extension_objects(&mut fresh), upgraded);
}

/// 0.6.0 adds the functions a heap sweep's DELETE calls: after the update,
/// a table whose expired rows are spread over its heap is swept (with the
/// new functions) and the run deletes exactly its expired rows; the objects
/// are a fresh install's.
#[test]
fn upgrade_from_0_5_0_sweeps_with_the_new_functions() {
    let mut db = empty_db("it_upgrade_050");
    db.batch_execute("CREATE EXTENSION pg_retention VERSION '0.5.0'")
        .unwrap();
    db.batch_execute(TABLES).unwrap();
    db.batch_execute(POLICIES).unwrap();
    let deleted_before = count(&mut db, "SELECT total_deleted FROM retention_execute()");
    assert!(deleted_before > 0);

    db.batch_execute("ALTER EXTENSION pg_retention UPDATE TO '0.6.0'")
        .unwrap();
    // Every other row expired, spread over every page: a sweep.
    db.batch_execute(
        "CREATE TABLE spread (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO spread SELECT g, now() - (g % 2) * interval '10 days' FROM generate_series(1, 3000) g;
         ANALYZE spread;
         SELECT retention_add_policy('spread', 'ts', '5 days', 'spread');",
    )
    .unwrap();
    let (mut session, notices) = crate::common::connect_keeping_notices("it_upgrade_050");
    session
        .batch_execute("SET client_min_messages = debug1")
        .unwrap();
    session
        .batch_execute("CALL retention_run(1000, label => 'spread')")
        .unwrap();
    let notices = notices.lock().unwrap().clone();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("public.spread (expire): batches sweep its")),
        "{notices:?}"
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM spread"), 1500);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM spread WHERE ts < now() - interval '5 days'"
        ),
        0
    );

    let upgraded = extension_objects(&mut db);
    let mut fresh = empty_db("it_upgrade_050_fresh");
    fresh
        .batch_execute("CREATE EXTENSION pg_retention")
        .unwrap();
    assert_eq!(extension_objects(&mut fresh), upgraded);
}

/// A new session knows the settings only once the library is loaded;
/// preloaded, from its first statement (docs/operations.md).
#[test]
fn settings_are_known_from_the_first_statement_when_preloaded() {
    drop(crate::common::fresh_db("it_preload"));
    let mut db = connect("it_preload");
    assert_eq!(
        crate::common::sqlstate_of(&mut db, "SHOW pg_retention.lock_timeout"),
        "42704"
    );
    db.batch_execute("ALTER DATABASE it_preload SET session_preload_libraries = 'pg_retention'")
        .unwrap();
    let mut db = connect("it_preload");
    assert_eq!(strings(&mut db, "SHOW pg_retention.lock_timeout"), ["5s"]);
    assert_eq!(
        strings(&mut db, "SHOW pg_retention.history_retention"),
        ["90d"]
    );
}

/// Installed into a schema of its own that is not on the search_path
/// (docs/reference.md): every call, qualified, works.
#[test]
fn installed_in_its_own_schema_everything_works() {
    let mut db = empty_db("it_own_schema");
    db.batch_execute("CREATE SCHEMA retention; CREATE EXTENSION pg_retention SCHEMA retention;")
        .unwrap();
    db.batch_execute(TABLES).unwrap();
    db.batch_execute(&POLICIES.replace("SELECT retention_", "SELECT retention.retention_"))
        .unwrap();
    assert_eq!(
        strings(&mut db, "SELECT current_setting('search_path')"),
        ["\"$user\", public"]
    );
    let previewed = count(
        &mut db,
        "SELECT sum(rows_to_delete)::bigint FROM retention.retention_preview()",
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.retention_stats()"),
        3
    );
    db.batch_execute("CALL retention.retention_run(batch_size => 5)")
        .unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s', status, deleted) FROM retention.retention_history"
        ),
        [format!("succeeded {previewed}")]
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM pg_proc WHERE proname LIKE '%retention%' AND pronamespace = 'public'::regnamespace"
        ),
        0
    );
}

#[test]
fn dump_and_restore_bring_the_policies_back() {
    let mut source = empty_db("it_dump_source");
    source
        .batch_execute("CREATE EXTENSION pg_retention")
        .unwrap();
    source.batch_execute(TABLES).unwrap();
    source.batch_execute(POLICIES).unwrap();
    source
        .batch_execute("SELECT retention_pause('parts')")
        .unwrap();
    let dump = std::env::temp_dir().join("pg_retention_it_dump.custom");
    let dump = dump.to_str().unwrap();
    tool("pg_dump", &["-Fc", "-d", "it_dump_source", "-f", dump]);
    let mut target = empty_db("it_dump_target");
    drop(target);
    tool("pg_restore", &["-d", "it_dump_target", dump]);
    target = connect("it_dump_target");

    let listing = "SELECT format('%s %s %s %s %s %s %s', relation, kind, time_column, retain, label, batch_size, enabled)
                   FROM retention_policies ORDER BY relation::text, kind";
    assert_eq!(strings(&mut target, listing), strings(&mut source, listing));
    // History describes deletions in the source database: not dumped.
    source.batch_execute("SELECT retention_execute()").unwrap();
    assert_eq!(count(&mut target, "SELECT count(*) FROM cleanup_runs"), 0);
    // The restored policies run, and delete what they deleted in the source.
    let source_deleted = count(
        &mut source,
        "SELECT total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(
        count(&mut target, "SELECT total_deleted FROM retention_execute()"),
        source_deleted
    );
    for t in ["owners", "logs", "parts"] {
        let q = format!("SELECT count(*) FROM {t}");
        assert_eq!(count(&mut target, &q), count(&mut source, &q), "{t}");
    }
}

#[test]
fn dropping_a_table_or_its_time_column_removes_their_policies() {
    let mut db = empty_db("it_drop_trigger");
    db.batch_execute("CREATE EXTENSION pg_retention").unwrap();
    db.batch_execute(TABLES).unwrap();
    db.batch_execute(POLICIES).unwrap();
    db.batch_execute("ALTER TABLE parts DROP COLUMN ts")
        .unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT relation::text FROM retention_policies ORDER BY id"
        ),
        vec!["logs", "owners"]
    );
    db.batch_execute("DROP TABLE parts; DROP TABLE logs")
        .unwrap();
    assert_eq!(
        strings(&mut db, "SELECT relation::text FROM retention_policies"),
        vec!["owners"]
    );
    // A role that owns a table can drop it too (the trigger sees past row-level security).
    db.batch_execute(
        "DROP ROLE IF EXISTS it_dropper; CREATE ROLE it_dropper;
         CREATE TABLE mine (id int PRIMARY KEY, ts timestamptz NOT NULL);
         ALTER TABLE mine OWNER TO it_dropper;
         SET ROLE it_dropper;
         SELECT retention_add_policy('mine', 'ts', '1 day');
         DROP TABLE mine;
         RESET ROLE;",
    )
    .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_config"), 1);
    let status: String = db
        .query_one("SELECT status FROM retention_execute()", &[])
        .unwrap()
        .get(0);
    assert_eq!(status, "succeeded");
}

#[test]
fn monitoring_views_show_lag_and_last_run() {
    let mut db = odds_db("it_monitor", 1);
    db.batch_execute(
        "SELECT retention_add_policy('odds_snapshots', 'captured_at', '30 days', 'own');
         SELECT retention_add_policy('events', 'kickoff', '60 days', 'own');
         SELECT retention_add_policy('competitor_events', 'kickoff', '45 days', 'competitor');",
    )
    .unwrap();
    let waiting = count(
        &mut db,
        "SELECT count(*) FROM events WHERE kickoff < now() - interval '60 days'",
    );
    let row = db
        .query_one(
            "SELECT lag_rows, oldest_expired_age > interval '60 days', last_run_status IS NULL
             FROM retention_monitor WHERE relation = 'events'::regclass",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), waiting);
    assert!(row.get::<_, bool>(1));
    assert!(row.get::<_, bool>(2));
    db.batch_execute("SELECT retention_execute(500, 'own')")
        .unwrap();
    let row = db
        .query_one(
            "SELECT lag_rows, oldest_expired_age IS NULL, last_run_status, last_run_deleted
             FROM retention_monitor WHERE relation = 'events'::regclass",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
    assert!(row.get::<_, bool>(1));
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("succeeded")
    );
    assert_eq!(row.get::<_, Option<i64>>(3), Some(waiting));
    let labels = strings(
        &mut db,
        "SELECT format('%s %s %s %s', label, policies, lag_rows > 0, coalesce(all_last_runs_succeeded::text, 'never ran'))
         FROM retention_label_totals ORDER BY label",
    );
    assert_eq!(labels, vec!["competitor 1 t never ran", "own 2 f true"]);
}
