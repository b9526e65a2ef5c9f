//! Attacks on a run by hostile roles (issue "Security: a run acts as each
//! table's owner"). The runs here are a superuser's, as pg_cron's usually
//! are; each test reproduces one attack and asserts what the run did, row
//! by row. docs/security.md states the model these check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{connect, conninfo, count, fresh_db, sqlstate_of, status_and_deleted, strings};

/// Recreates roles (after `fresh_db` dropped the database that held their
/// objects) and lets each create tables in `public`.
fn roles(db: &mut postgres::Client, names: &[&str]) {
    for name in names {
        db.batch_execute(&format!(
            "DROP ROLE IF EXISTS {name}; CREATE ROLE {name}; GRANT CREATE ON SCHEMA public TO {name};"
        ))
        .unwrap();
    }
}

/// The superuser's `CALL retention_run()` (autocommit: the procedure commits).
fn call_run(db: &mut postgres::Client) -> Result<(), postgres::Error> {
    db.batch_execute("CALL retention_run()")
}

fn last_run(db: &mut postgres::Client) -> (String, Option<String>, i64, Option<String>) {
    let r = db
        .query_one(
            "SELECT status, sqlstate, total_deleted, error FROM cleanup_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

#[test]
fn a_superuser_run_fires_a_table_owners_trigger_as_that_owner() {
    let mut db = fresh_db("it_sec_trigger");
    roles(&mut db, &["sec_trig_owner"]);
    db.batch_execute(
        "SET ROLE sec_trig_owner;
         CREATE TABLE t_logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE t_seen (who name, authid_readable boolean, path text);
         CREATE FUNCTION t_spy() RETURNS trigger LANGUAGE plpgsql AS $$
         DECLARE readable boolean := true;
         BEGIN
           BEGIN
             PERFORM pg_catalog.count(*) FROM pg_catalog.pg_authid;
           EXCEPTION WHEN insufficient_privilege THEN readable := false;
           END;
           INSERT INTO public.t_seen VALUES (current_user, readable, pg_catalog.current_setting('search_path'));
           RETURN OLD;
         END $$;
         CREATE TRIGGER t_spy BEFORE DELETE ON t_logs FOR EACH ROW EXECUTE FUNCTION t_spy();
         INSERT INTO t_logs SELECT g, now() - interval '10 days' FROM generate_series(1, 5) g;
         SELECT retention_add_policy('t_logs', 'ts', '1 day');
         RESET ROLE;",
    )
    .unwrap();

    call_run(&mut db).unwrap();
    assert_eq!(last_run(&mut db).0, "succeeded");
    db.batch_execute(
        "INSERT INTO t_logs SELECT g, now() - interval '10 days' FROM generate_series(6, 8) g",
    )
    .unwrap();
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute()"
        ),
        ("succeeded".to_string(), 3)
    );

    assert_eq!(count(&mut db, "SELECT count(*) FROM t_logs"), 0);
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s', who, authid_readable, path) FROM t_seen"
        ),
        vec!["sec_trig_owner f pg_catalog, pg_temp"; 8]
    );
}

#[test]
fn a_child_tables_cascade_trigger_never_runs_as_the_superuser() {
    let mut db = fresh_db("it_sec_cascade");
    roles(&mut db, &["sec_casc_parent", "sec_casc_child"]);
    db.batch_execute(
        "SET ROLE sec_casc_parent;
         CREATE TABLE p (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO p SELECT g, now() - interval '10 days' FROM generate_series(1, 4) g;
         SELECT retention_add_policy('p', 'ts', '1 day');
         GRANT REFERENCES ON p TO sec_casc_child;
         SET ROLE sec_casc_child;
         CREATE TABLE c (id int PRIMARY KEY, p_id int NOT NULL REFERENCES p ON DELETE CASCADE);
         CREATE INDEX ON c (p_id);
         CREATE TABLE c_seen (who name);
         GRANT INSERT ON c_seen TO PUBLIC;
         CREATE FUNCTION c_spy() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.c_seen VALUES (current_user); RETURN OLD; END $$;
         CREATE TRIGGER c_spy BEFORE DELETE ON c FOR EACH ROW EXECUTE FUNCTION c_spy();
         INSERT INTO c SELECT g, g FROM generate_series(1, 4) g;
         RESET ROLE;",
    )
    .unwrap();

    // The child's owner does not hold the parent owner's privileges: a run,
    // which acts as the parent's owner on every table the policy reaches,
    // would run the child owner's trigger with them. Refused, even with
    // DELETE granted.
    db.batch_execute("GRANT SELECT, UPDATE, DELETE ON c TO sec_casc_parent")
        .unwrap();
    let err = call_run(&mut db).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42501"));
    let (status, sqlstate, deleted, error) = last_run(&mut db);
    assert_eq!(
        (status.as_str(), sqlstate.as_deref(), deleted),
        ("failed", Some("42501"), 0)
    );
    let error = error.unwrap();
    assert!(
        error.contains("public.c (owned by sec_casc_child)") && error.contains("sec_casc_parent"),
        "{error}"
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM p"), 4);
    assert_eq!(count(&mut db, "SELECT count(*) FROM c"), 4);
    assert_eq!(count(&mut db, "SELECT count(*) FROM c_seen"), 0);

    // Once the child's owner holds the parent owner's privileges anyway, the
    // run deletes the children as the parent's owner.
    db.batch_execute("GRANT sec_casc_parent TO sec_casc_child")
        .unwrap();
    call_run(&mut db).unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM p"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM c"), 0);
    // Each child's trigger fired once, as the parent's owner (the walk) or
    // as the child's owner (PostgreSQL runs a cascade as the child table's
    // owner), never as the superuser.
    assert_eq!(count(&mut db, "SELECT count(*) FROM c_seen"), 4);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM c_seen WHERE who NOT IN ('sec_casc_parent', 'sec_casc_child')"
        ),
        0
    );
}

#[test]
fn a_superuser_run_never_deletes_rows_the_owner_could_not() {
    for action in ["RESTRICT", "NO ACTION"] {
        let mut db = fresh_db("it_sec_restrict");
        roles(&mut db, &["sec_rows_owner", "sec_rows_other"]);
        db.batch_execute(&format!(
            "SET ROLE sec_rows_owner;
             CREATE TABLE parent (id int PRIMARY KEY, ts timestamptz NOT NULL);
             INSERT INTO parent SELECT g, now() - interval '10 days' FROM generate_series(1, 10) g;
             SELECT retention_add_policy('parent', 'ts', '1 day');
             GRANT REFERENCES ON parent TO sec_rows_other;
             SET ROLE sec_rows_other;
             CREATE TABLE theirs (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent ON DELETE {action});
             INSERT INTO theirs SELECT g, g % 10 + 1 FROM generate_series(1, 71) g;
             RESET ROLE;"
        ))
        .unwrap();
        // By hand, the owner cannot delete them either (RESTRICT says so with
        // 23001 from PostgreSQL 18 on).
        db.batch_execute("SET ROLE sec_rows_owner").unwrap();
        let by_hand = sqlstate_of(&mut db, "DELETE FROM parent");
        assert!(
            by_hand == "23503" || (action == "RESTRICT" && by_hand == "23001"),
            "{action}: {by_hand}"
        );
        db.batch_execute("RESET ROLE").unwrap();

        let err = call_run(&mut db).unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{action}");
        let (status, sqlstate, deleted, _) = last_run(&mut db);
        assert_eq!(
            (status.as_str(), sqlstate.as_deref(), deleted),
            ("failed", Some("42501"), 0),
            "{action}"
        );
        let run = db
            .query_one("SELECT status, sqlstate FROM retention_execute()", &[])
            .unwrap();
        assert_eq!(run.get::<_, String>(0), "failed", "{action}");
        assert_eq!(
            count(&mut db, "SELECT count(*) FROM theirs"),
            71,
            "{action}"
        );
        assert_eq!(
            count(&mut db, "SELECT count(*) FROM parent"),
            10,
            "{action}"
        );
    }
}

/// Operators a role that may create in `public` planted before the
/// extension was installed, for type pairs pg_catalog matches only with a
/// cast (numeric = integer, bigint > integer, ...): an install resolves its
/// views' and functions' operators then, and a reader (a superuser) would
/// run them. None may be called: by the views of the history and of runs
/// in progress (read while a run goes), the monitoring views, the export and
/// a dry-run apply.
#[test]
fn operators_planted_before_the_install_are_never_called() {
    let mut db = crate::common::empty_db("it_sec_install_operators");
    roles(&mut db, &["sec_planter"]);
    let mut plant = String::from(
        "SET ROLE sec_planter;
         CREATE TABLE public.planted_calls (op text);
         GRANT INSERT ON public.planted_calls TO PUBLIC;
         CREATE FUNCTION public.planted(op text) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.planted_calls VALUES (op); RETURN NULL; END $$;",
    );
    let pairs = [
        ("numeric", "integer", "numeric_int"),
        ("bigint", "integer", "int8_int4"),
        ("integer", "bigint", "int4_int8"),
        ("numeric", "bigint", "numeric_int8"),
        ("real", "integer", "float4_int4"),
        ("text", "name", "text_name"),
        ("name", "text", "name_text"),
        ("interval", "text", "interval_text"),
    ];
    for (left, right, slug) in pairs {
        for (op, name) in [
            ("=", "eq"),
            ("<", "lt"),
            (">", "gt"),
            ("<=", "le"),
            (">=", "ge"),
            ("<>", "ne"),
        ] {
            plant.push_str(&format!(
                "CREATE FUNCTION public.{name}_{slug}(a {left}, b {right}) RETURNS boolean LANGUAGE sql AS
                   $$ SELECT public.planted('{left} {op} {right}') $$;
                 CREATE OPERATOR public.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = public.{name}_{slug});"
            ));
        }
    }
    plant.push_str("RESET ROLE;");
    db.batch_execute(&plant).unwrap();
    db.batch_execute(
        "CREATE EXTENSION pg_retention;
         CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO logs SELECT g, now() - interval '40 days' FROM generate_series(1, 400) g;
         ANALYZE logs;
         SELECT retention_add_policy('logs', 'ts', '30 days');",
    )
    .unwrap();
    let mut runner = connect("it_sec_install_operators");
    let run = std::thread::spawn(move || {
        runner
            .batch_execute("CALL retention_run(batch_size => 20, batch_pause => '50ms')")
            .unwrap();
    });
    crate::run::wait_for(
        "the run to commit a batch",
        std::time::Duration::from_secs(30),
        || {
            count(
                &mut db,
                "SELECT count(*) FROM retention_progress WHERE deleted > 0",
            ) > 0
        },
    );
    db.batch_execute(
        "SELECT * FROM retention_progress; SELECT * FROM retention_history; SELECT * FROM retention_history_tables;",
    )
    .unwrap();
    run.join().unwrap();
    db.batch_execute(
        "SELECT * FROM retention_history; SELECT * FROM retention_history_tables;
         SELECT * FROM retention_monitor; SELECT * FROM retention_label_totals; SELECT * FROM retention_policies;
         SELECT * FROM retention_apply(retention_export());
         SELECT retention_add_policy('logs', 'ts', '30 days', if_not_exists => true);
         SELECT retention_pause('logs', if_exists => true);",
    )
    .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM logs"), 0);
    assert_eq!(
        strings(&mut db, "SELECT DISTINCT op FROM planted_calls"),
        Vec::<String>::new()
    );
}

/// Key types for which pg_catalog has no exact `=` (varchar, a domain), and
/// types it has (char(n), numeric, uuid, date): a hostile `public` operator
/// must be called by none of a superuser's runs, previews or stats.
#[test]
fn operators_in_public_cannot_hijack_a_run() {
    let mut db = fresh_db("it_sec_operators");
    roles(&mut db, &["sec_hijacker", "sec_key_owner"]);
    let mut hijack = String::from(
        "SET ROLE sec_hijacker;
         CREATE TABLE public.hijack_calls (op text);
         GRANT INSERT ON public.hijack_calls TO PUBLIC;
         CREATE DOMAIN public.code AS text;
         CREATE FUNCTION public.hijacked(op text) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.hijack_calls VALUES (op); RETURN NULL; END $$;",
    );
    for (ty, slug) in [
        ("varchar", "varchar"),
        ("public.code", "code"),
        ("bpchar", "bpchar"),
        ("numeric", "numeric"),
        ("uuid", "uuid"),
        ("date", "date"),
    ] {
        for (op, name) in [("=", "eq"), ("<", "lt"), (">", "gt")] {
            hijack.push_str(&format!(
                "CREATE FUNCTION public.{name}_{slug}(a {ty}, b {ty}) RETURNS boolean LANGUAGE sql AS
                   $$ SELECT public.hijacked('{op} {slug}') $$;
                 CREATE OPERATOR public.{op} (LEFTARG = {ty}, RIGHTARG = {ty}, FUNCTION = public.{name}_{slug});"
            ));
        }
    }
    hijack.push_str("RESET ROLE;");
    db.batch_execute(&hijack).unwrap();
    db.batch_execute(
        "SET ROLE sec_key_owner;
         CREATE TABLE k_varchar (id varchar(20) PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE k_varchar_child (id int PRIMARY KEY, k varchar(20) NOT NULL REFERENCES k_varchar);
         CREATE TABLE k_mixed (a public.code, b char(4), c numeric, d uuid, e date, ts timestamptz NOT NULL,
                               PRIMARY KEY (a, b, c, d, e));
         CREATE TABLE k_mixed_child (id int PRIMARY KEY, a public.code, b char(4), c numeric, d uuid, e date,
                                     FOREIGN KEY (a, b, c, d, e) REFERENCES k_mixed);
         INSERT INTO k_varchar SELECT 'v' || g, now() - (g % 3) * interval '10 days' FROM generate_series(1, 30) g;
         INSERT INTO k_varchar_child SELECT g, 'v' || g FROM generate_series(1, 30) g;
         INSERT INTO k_mixed SELECT 'c' || g, 'b' || g % 5, g / 3.0, md5(g::text)::uuid, date '2020-01-01' + g,
                                    now() - (g % 3) * interval '10 days' FROM generate_series(1, 30) g;
         INSERT INTO k_mixed_child SELECT row_number() OVER (), a, b, c, d, e FROM k_mixed;
         SELECT retention_add_policy('k_varchar', 'ts', '5 days', batch_size => 4);
         SELECT retention_add_policy('k_mixed', 'ts', '5 days', batch_size => 4);
         RESET ROLE;",
    )
    .unwrap();
    // The superuser's search_path is the default, "$user", public.
    db.batch_execute("RESET search_path").unwrap();
    let preview = strings(
        &mut db,
        "SELECT format('%s %s', relation, rows_to_delete) FROM retention_preview() ORDER BY 1",
    );
    db.batch_execute("SELECT * FROM retention_stats(exact => true)")
        .unwrap();
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute(batch_size => 4)"
        ),
        ("succeeded".to_string(), 80)
    );
    assert_eq!(
        preview,
        vec![
            "k_mixed 20",
            "k_mixed_child 20",
            "k_varchar 20",
            "k_varchar_child 20"
        ]
    );
    // CALL retention_run on fresh expired rows.
    db.batch_execute(
        "INSERT INTO k_varchar VALUES ('late', now() - interval '9 days');
         INSERT INTO k_varchar_child VALUES (100, 'late');",
    )
    .unwrap();
    call_run(&mut db).unwrap();
    assert_eq!(last_run(&mut db).2, 2);
    assert_eq!(count(&mut db, "SELECT count(*) FROM hijack_calls"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM k_varchar"), 10);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM k_mixed WHERE ts < now() - interval '5 days'"
        ),
        0
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM k_mixed"), 10);
}

#[test]
fn an_orphan_is_never_decided_on_rows_hidden_by_row_level_security() {
    let mut db = fresh_db("it_sec_rls");
    roles(&mut db, &["sec_rls_tourn", "sec_rls_events"]);
    db.batch_execute(
        "SET ROLE sec_rls_tourn;
         CREATE TABLE tourn (id int PRIMARY KEY, created timestamptz NOT NULL);
         INSERT INTO tourn SELECT g, now() - interval '10 days' FROM generate_series(1, 6) g;
         SELECT retention_add_orphan_policy('tourn', 'created', '1 day');
         GRANT REFERENCES ON tourn TO sec_rls_events;
         SET ROLE sec_rls_events;
         CREATE TABLE events (id int PRIMARY KEY, tourn_id int NOT NULL REFERENCES tourn ON DELETE CASCADE,
                              public boolean NOT NULL);
         INSERT INTO events SELECT g, g, g % 2 = 0 FROM generate_series(1, 4) g;
         ALTER TABLE events ENABLE ROW LEVEL SECURITY;
         CREATE POLICY only_public ON events FOR SELECT USING (public);
         GRANT SELECT ON events TO sec_rls_tourn;
         RESET ROLE;
         -- The events' owner holds the tournaments owner's privileges (else
         -- the policy is refused for reaching another owner's table).
         GRANT sec_rls_tourn TO sec_rls_events;",
    )
    .unwrap();
    // The tournaments' owner sees 2 of the 4 events: 4 tournaments look unreferenced.
    db.batch_execute("SET ROLE sec_rls_tourn").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM events"), 2);
    db.batch_execute("RESET ROLE").unwrap();

    let err = call_run(&mut db).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42501"));
    let (status, _, deleted, error) = last_run(&mut db);
    assert_eq!((status.as_str(), deleted), ("failed", 0));
    let error = error.unwrap();
    assert!(
        error.contains("row-level security on public.events") && error.contains("sec_rls_tourn"),
        "{error}"
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM tourn"), 6);
    assert_eq!(count(&mut db, "SELECT count(*) FROM events"), 4);

    // Without row security the two unreferenced tournaments go, nothing else.
    db.batch_execute("ALTER TABLE events DISABLE ROW LEVEL SECURITY")
        .unwrap();
    call_run(&mut db).unwrap();
    assert_eq!(
        strings(&mut db, "SELECT id::text FROM tourn ORDER BY id"),
        vec!["1", "2", "3", "4"]
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM events"), 4);
}

#[test]
fn no_role_can_hold_the_run_lock_or_lock_the_extensions_tables() {
    let mut db = fresh_db("it_sec_lock");
    roles(&mut db, &["sec_locker"]);
    db.batch_execute(
        "CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO logs SELECT g, now() - interval '10 days' FROM generate_series(1, 10) g;
         SELECT retention_add_policy('logs', 'ts', '1 day');",
    )
    .unwrap();
    let mut locker = connect("it_sec_lock");
    locker
        .batch_execute(
            "SET ROLE sec_locker;
             SELECT pg_advisory_lock(x'726574656e74696f'::bigint);
             SELECT pg_advisory_lock(0, x'726574'::int);
             SELECT pg_advisory_lock(x'726574'::bigint);",
        )
        .unwrap();
    for table in ["retention_config", "cleanup_runs"] {
        locker.batch_execute("BEGIN").unwrap();
        assert_eq!(
            sqlstate_of(
                &mut locker,
                &format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            ),
            "42501"
        );
        locker.batch_execute("ROLLBACK").unwrap();
    }
    // A role's own run, left open, holds only the policies it runs: none
    // here, then its own table's.
    let mut idle = connect("it_sec_lock");
    idle.batch_execute(
        "CREATE TABLE lockers (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO lockers VALUES (1, now() - interval '10 days');
         ALTER TABLE lockers OWNER TO sec_locker;",
    )
    .unwrap();
    idle.batch_execute("SET ROLE sec_locker").unwrap();
    idle.batch_execute("BEGIN; SELECT retention_execute();")
        .unwrap();
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute()"
        ),
        ("succeeded".to_string(), 10)
    );
    idle.batch_execute("ROLLBACK").unwrap();
    idle.batch_execute("SELECT retention_add_policy('lockers', 'ts', '1 day')")
        .unwrap();
    idle.batch_execute("BEGIN; SELECT retention_execute();")
        .unwrap();
    db.batch_execute("INSERT INTO logs VALUES (11, now() - interval '10 days')")
        .unwrap();
    call_run(&mut db).unwrap();
    let (status, _, deleted, _) = last_run(&mut db);
    assert_eq!((status.as_str(), deleted), ("succeeded", 1));
    assert_eq!(count(&mut db, "SELECT count(*) FROM logs"), 0);
    assert_eq!(
        strings(
            &mut db,
            "SELECT stop_reason FROM cleanup_runs ORDER BY id DESC LIMIT 1"
        ),
        vec!["left to the run already running them: public.lockers (expire policy 2)"]
    );
    idle.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn only_the_extension_writes_policies_and_history() {
    let mut db = fresh_db("it_sec_forge");
    roles(&mut db, &["sec_forger"]);
    db.batch_execute(
        "CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         SELECT retention_add_policy('logs', 'ts', '1 day');
         SELECT retention_execute();
         SET ROLE sec_forger;
         CREATE TABLE mine (id int PRIMARY KEY, ts timestamptz NOT NULL);",
    )
    .unwrap();
    for sql in [
        "INSERT INTO cleanup_runs (status, origin, total_deleted, started_by) VALUES ('failed', 'x', 999999, 'postgres')",
        "INSERT INTO cleanup_runs (status, origin) VALUES ('failed', 'x')",
        "UPDATE cleanup_runs SET total_deleted = 999999",
        "DELETE FROM cleanup_runs",
        "INSERT INTO retention_config (relid, kind, time_column, retain) VALUES ('mine', 'expire', 'ts', '1 day')",
        "UPDATE retention_config SET retain = '1 second'",
        "DELETE FROM retention_config",
    ] {
        assert_eq!(sqlstate_of(&mut db, sql), "42501", "{sql}");
    }
    // Through the functions, a role manages the policies of its own tables,
    // and its runs are recorded under its name; it reads its own runs only.
    db.batch_execute(
        "SELECT retention_add_policy('mine', 'ts', '1 day', label => 'forger');
         SELECT retention_execute(label => 'forger');",
    )
    .unwrap();
    assert_eq!(
        strings(&mut db, "SELECT started_by::text FROM cleanup_runs"),
        vec!["sec_forger"]
    );
    db.batch_execute("RESET ROLE").unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s', started_by, status, total_deleted) FROM cleanup_runs ORDER BY id"
        ),
        vec!["postgres succeeded 0", "sec_forger succeeded 0"]
    );
}

#[test]
fn nothing_leaks_other_roles_policies_errors_or_rust_internals() {
    let mut db = fresh_db("it_sec_leak");
    roles(&mut db, &["sec_leak_owner", "sec_leak_spy"]);
    db.batch_execute(
        "SET ROLE sec_leak_owner;
         CREATE TABLE secret_logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO secret_logs VALUES (1, now() - interval '10 days');
         CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'refused' USING DETAIL = 'card 4111-1111'; END $$;
         CREATE TRIGGER boom BEFORE DELETE ON secret_logs FOR EACH ROW EXECUTE FUNCTION boom();
         SELECT retention_add_policy('secret_logs', 'ts', '1 day', label => 'hush');
         RESET ROLE;",
    )
    .unwrap();

    // A cheap function in the spy's WHERE sees no row the view hides.
    let notices = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&notices);
    let mut config: postgres::Config = conninfo("it_sec_leak").parse().unwrap();
    config.notice_callback(move |n| seen.lock().unwrap().push(n.message().to_string()));
    let mut spy = config.connect(postgres::NoTls).unwrap();
    spy.batch_execute(
        "SET ROLE sec_leak_spy;
         CREATE FUNCTION pg_temp.peek(r regclass, l text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
         BEGIN RAISE NOTICE 'saw % %', r, l; RETURN true; END $$;",
    )
    .unwrap();
    let visible = spy
        .query(
            "SELECT * FROM retention_policies WHERE pg_temp.peek(relation, label)",
            &[],
        )
        .unwrap();
    assert_eq!(visible.len(), 0);
    assert_eq!(*notices.lock().unwrap(), Vec::<String>::new());

    // A failing run keeps the DETAIL out of the history every role reads.
    let run = db
        .query_one("SELECT status, error FROM retention_execute()", &[])
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "failed");
    let error: String = run.get(1);
    assert!(error.contains("refused"), "{error}");
    assert!(!error.contains("4111"), "{error}");

    // An error raised by PostgreSQL through the extension's Rust code (a run
    // in a read-only transaction cannot write its history) carries no Rust
    // backtrace, though the test cluster runs with RUST_BACKTRACE=1
    // (scripts/test.sh); nor does a preview row that could not count.
    let e = db
        .batch_execute("BEGIN READ ONLY; SELECT * FROM retention_execute();")
        .unwrap_err();
    let d = e.as_db_error().expect("a server error");
    assert_eq!(d.code().code(), "25006", "{d:?}");
    assert_eq!(d.detail(), None, "{d:?}");
    db.batch_execute("ROLLBACK").unwrap();
    db.batch_execute(
        "DROP TRIGGER boom ON secret_logs;
         CREATE TABLE notes (id int PRIMARY KEY, log_id int REFERENCES secret_logs);
         REVOKE ALL ON notes FROM sec_leak_owner;",
    )
    .unwrap();
    assert_eq!(
        strings(&mut db, "SELECT relation || ': ' || reason FROM retention_preview() ORDER BY step"),
        vec![
            "notes: references an expiring row of public.secret_logs; cannot count: permission denied for table notes (SQLSTATE 42501)",
            "secret_logs: expired (ts older than cutoff)"
        ]
    );
}

#[test]
fn policies_on_the_extensions_own_tables_are_refused() {
    let mut db = fresh_db("it_sec_own_tables");
    for table in ["retention_config", "cleanup_runs"] {
        assert_eq!(
            sqlstate_of(
                &mut db,
                &format!("SELECT retention_add_policy('{table}', 'created_at', '1 day')")
            ),
            "42809",
            "{table}"
        );
    }
    assert_eq!(
        sqlstate_of(
            &mut db,
            "SELECT retention_add_policy('cleanup_runs', 'started_at', '1 day')"
        ),
        "42809"
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention_config"), 0);
}

#[test]
fn reports_plan_their_queries_as_the_table_owner() {
    let mut db = fresh_db("it_sec_reports");
    roles(&mut db, &["sec_rep_owner"]);
    db.batch_execute(
        "CREATE TABLE planned_by (who name);
         GRANT INSERT ON planned_by TO PUBLIC;
         SET ROLE sec_rep_owner;
         CREATE TABLE ev (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO ev SELECT g, now() - interval '10 days' FROM generate_series(1, 3) g;
         CREATE FUNCTION note_planner() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
         BEGIN INSERT INTO public.planned_by VALUES (current_user); RETURN true; END $$;
         CREATE FUNCTION folded() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
         BEGIN RETURN public.note_planner(); END $$;
         SELECT retention_add_policy('ev', 'ts', '1 day');
         CREATE INDEX ev_partial ON ev (ts) WHERE public.folded();
         RESET ROLE;
         TRUNCATE planned_by;",
    )
    .unwrap();
    // Each report in a new session: the planner folds an index predicate
    // once per session, when it first plans a query on the table.
    for report in [
        "SELECT * FROM retention_stats()",
        "SELECT * FROM retention_stats(exact => true)",
        "SELECT * FROM retention_preview()",
        "SELECT * FROM retention_monitor",
        "SELECT * FROM retention_label_totals",
    ] {
        connect("it_sec_reports").batch_execute(report).unwrap();
    }
    assert_eq!(
        strings(&mut db, "SELECT DISTINCT who::text FROM planned_by"),
        vec!["sec_rep_owner"]
    );
}

#[test]
fn a_table_owners_settings_never_reach_other_policies() {
    let mut db = fresh_db("it_sec_settings");
    roles(&mut db, &["sec_set_mallory", "sec_set_alice"]);
    db.batch_execute(
        "SET ROLE sec_set_mallory;
         CREATE TABLE m_ev (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE FUNCTION shift() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           PERFORM pg_catalog.set_config('TimeZone', '<+167>-167', false);
           PERFORM pg_catalog.set_config('statement_timeout', '1ms', false);
           RETURN NULL;
         END $$;
         CREATE TRIGGER shift AFTER DELETE ON m_ev FOR EACH STATEMENT EXECUTE FUNCTION shift();
         INSERT INTO m_ev SELECT g, now() - interval '10 days' FROM generate_series(1, 5) g;
         SELECT retention_add_policy('m_ev', 'ts', '1 day');
         SET ROLE sec_set_alice;
         CREATE TABLE a_ts (id bigint PRIMARY KEY, ts timestamp NOT NULL);
         INSERT INTO a_ts SELECT g, localtimestamp - interval '3 days' FROM generate_series(1, 5) g;
         INSERT INTO a_ts VALUES (6, localtimestamp - interval '8 days');
         SELECT retention_add_policy('a_ts', 'ts', '7 days');
         RESET ROLE;",
    )
    .unwrap();
    let zone: String = db.query_one("SHOW TimeZone", &[]).unwrap().get(0);
    call_run(&mut db).unwrap();
    assert_eq!(last_run(&mut db).0, "succeeded");
    assert_eq!(
        strings(&mut db, "SELECT id::text FROM a_ts ORDER BY id"),
        vec!["1", "2", "3", "4", "5"]
    );
    db.batch_execute("INSERT INTO m_ev VALUES (6, now() - interval '10 days')")
        .unwrap();
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute()"
        ),
        ("succeeded".to_string(), 1)
    );
    let after: String = db.query_one("SHOW TimeZone", &[]).unwrap().get(0);
    assert_eq!(after, zone);
    let timeout: String = db.query_one("SHOW statement_timeout", &[]).unwrap().get(0);
    assert_eq!(timeout, "0");
    assert_eq!(count(&mut db, "SELECT count(*) FROM a_ts"), 5);
}

#[test]
fn a_fake_cancel_fails_only_its_own_policy() {
    let mut db = fresh_db("it_sec_fake_cancel");
    roles(&mut db, &["sec_fc_mallory", "sec_fc_alice"]);
    db.batch_execute(
        "SET ROLE sec_fc_mallory;
         CREATE TABLE m_ev (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE FUNCTION fake_cancel() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'canceling statement due to user request' USING ERRCODE = 'query_canceled'; END $$;
         CREATE TRIGGER fake_cancel BEFORE DELETE ON m_ev FOR EACH STATEMENT EXECUTE FUNCTION fake_cancel();
         INSERT INTO m_ev SELECT g, now() - interval '10 days' FROM generate_series(1, 5) g;
         SELECT retention_add_policy('m_ev', 'ts', '1 day');
         SET ROLE sec_fc_alice;
         CREATE TABLE a_ev (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO a_ev SELECT g, now() - interval '10 days' FROM generate_series(1, 5) g;
         SELECT retention_add_policy('a_ev', 'ts', '1 day');
         RESET ROLE;",
    )
    .unwrap();
    let run = db
        .query_one(
            "SELECT status, sqlstate, total_deleted FROM retention_execute()",
            &[],
        )
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "failed");
    assert_eq!(run.get::<_, String>(1), "57014");
    assert_eq!(run.get::<_, i64>(2), 5);
    db.batch_execute(
        "INSERT INTO a_ev SELECT g, now() - interval '10 days' FROM generate_series(6, 8) g",
    )
    .unwrap();
    let err = call_run(&mut db).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"));
    let (status, _, deleted, _) = last_run(&mut db);
    assert_eq!((status.as_str(), deleted), ("failed", 3));
    assert_eq!(count(&mut db, "SELECT count(*) FROM a_ev"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM m_ev"), 5);
}

/// A role runs the policies of tables whose owning role it belongs to (as
/// that owner); DELETE granted on another role's table does not make that
/// table's policies its own.
#[test]
fn a_role_runs_only_the_policies_of_tables_its_roles_own() {
    let mut db = fresh_db("it_sec_who_runs");
    roles(
        &mut db,
        &["sec_who_owner", "sec_who_member", "sec_who_granted"],
    );
    db.batch_execute(
        "GRANT sec_who_owner TO sec_who_member;
         SET ROLE sec_who_owner;
         CREATE TABLE owned (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO owned SELECT g, now() - interval '10 days' FROM generate_series(1, 4) g;
         SELECT retention_add_policy('owned', 'ts', '1 day');
         GRANT ALL ON owned TO sec_who_granted;
         RESET ROLE;",
    )
    .unwrap();
    db.batch_execute("SET ROLE sec_who_granted").unwrap();
    let run = db
        .query_one(
            "SELECT status, total_deleted, policies::text FROM retention_execute()",
            &[],
        )
        .unwrap();
    assert_eq!(
        (
            run.get::<_, String>(0),
            run.get::<_, i64>(1),
            run.get::<_, String>(2)
        ),
        ("succeeded".to_string(), 0, "[]".to_string())
    );
    db.batch_execute("RESET ROLE; SET ROLE sec_who_member")
        .unwrap();
    let run = db
        .query_one("SELECT status, total_deleted FROM retention_execute()", &[])
        .unwrap();
    assert_eq!(
        (run.get::<_, String>(0), run.get::<_, i64>(1)),
        ("succeeded".to_string(), 4)
    );
    db.batch_execute("RESET ROLE").unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT started_by::text FROM cleanup_runs ORDER BY id"
        ),
        vec!["sec_who_granted", "sec_who_member"]
    );
}

/// A role with REFERENCES on a superuser's table makes a child table with a
/// trigger and an index predicate that act when run as the superuser: the
/// policy is refused before any statement touches the child, in runs,
/// stats and preview alike, and the other policies run.
#[test]
fn a_child_owned_by_another_role_never_runs_code_as_the_policys_owner() {
    let mut db = fresh_db("it_sec_foreign_child");
    roles(&mut db, &["sec_fc_attacker"]);
    db.batch_execute(
        "CREATE TABLE acted_as (who name, is_super boolean);
         GRANT INSERT ON acted_as TO PUBLIC;
         CREATE TABLE sevents (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO sevents SELECT g, now() - interval '100 days' FROM generate_series(1, 3) g;
         GRANT REFERENCES ON sevents TO sec_fc_attacker;
         SELECT retention_add_policy('sevents', 'ts', '30 days');
         CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO logs SELECT g, now() - interval '100 days' FROM generate_series(1, 5) g;
         SELECT retention_add_policy('logs', 'ts', '30 days');
         SET ROLE sec_fc_attacker;
         CREATE FUNCTION public.note() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
         BEGIN
           INSERT INTO public.acted_as SELECT current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
           RETURN true;
         END $$;
         CREATE FUNCTION public.folded() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN public.note(); END $$;
         CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM public.note(); RETURN OLD; END $$;
         CREATE TABLE evil (id int PRIMARY KEY, ev int REFERENCES sevents);
         INSERT INTO evil VALUES (1, 1);
         GRANT SELECT, UPDATE, DELETE ON evil TO PUBLIC;
         CREATE TRIGGER spy BEFORE DELETE ON evil FOR EACH ROW EXECUTE FUNCTION public.spy();
         CREATE INDEX evil_partial ON evil (ev) WHERE public.folded();
         RESET ROLE;
         DELETE FROM acted_as;",
    )
    .unwrap();
    for report in [
        "SELECT * FROM retention_stats(exact => true)",
        "SELECT * FROM retention_preview()",
        "SELECT * FROM retention_monitor",
    ] {
        connect("it_sec_foreign_child")
            .batch_execute(report)
            .unwrap();
    }
    let err = call_run(&mut db).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42501"));
    let (status, sqlstate, deleted, error) = last_run(&mut db);
    assert_eq!(
        (status.as_str(), sqlstate.as_deref(), deleted),
        ("failed", Some("42501"), 5)
    );
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .contains("public.evil (owned by sec_fc_attacker)"),
        "{error:?}"
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM acted_as"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM logs"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM sevents"), 3);
    assert_eq!(
        strings(
            &mut db,
            "SELECT relation::text FROM retention_stats() WHERE error LIKE '%owned by sec_fc_attacker%'"
        ),
        vec!["sevents"]
    );
}

/// A table owner's trigger that sets every constraint DEFERRED again does
/// not stop the policies after its own.
#[test]
fn a_trigger_deferring_constraints_stops_no_other_policy() {
    let mut db = fresh_db("it_sec_defer");
    roles(&mut db, &["sec_df_mallory", "sec_df_victim"]);
    db.batch_execute(
        "SET ROLE sec_df_mallory;
         CREATE TABLE m (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO m SELECT g, now() - interval '100 days' FROM generate_series(1, 3) g;
         CREATE FUNCTION defer_all() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN SET CONSTRAINTS ALL DEFERRED; RETURN OLD; END $$;
         CREATE TRIGGER defer_all BEFORE DELETE ON m FOR EACH ROW EXECUTE FUNCTION defer_all();
         SELECT retention_add_policy('m', 'ts', '30 days');
         SET ROLE sec_df_victim;
         CREATE TABLE orders (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE lines (id int PRIMARY KEY, o int NOT NULL REFERENCES orders DEFERRABLE INITIALLY DEFERRED);
         INSERT INTO orders SELECT g, now() - interval '100 days' FROM generate_series(1, 3) g;
         INSERT INTO lines SELECT g, g FROM generate_series(1, 3) g;
         SELECT retention_add_policy('orders', 'ts', '30 days');
         RESET ROLE;",
    )
    .unwrap();
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute()"
        ),
        ("succeeded".to_string(), 9)
    );
}

/// A table owner whose own table's code raises in a report breaks only its
/// own row of stats and preview, not everyone's dashboards.
#[test]
fn one_owners_failing_table_breaks_only_its_own_report_rows() {
    let mut db = fresh_db("it_sec_report_rows");
    roles(&mut db, &["sec_rr_mallory"]);
    db.batch_execute(
        "CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO logs SELECT g, now() - interval '100 days' FROM generate_series(1, 5) g;
         SELECT retention_add_policy('logs', 'ts', '30 days');
         SET ROLE sec_rr_mallory;
         CREATE TABLE m (id int PRIMARY KEY, ts timestamptz NOT NULL);
         SELECT retention_add_policy('m', 'ts', '30 days');
         CREATE TABLE armed (on_ boolean);
         CREATE FUNCTION boom(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
         BEGIN
           IF EXISTS (SELECT FROM public.armed) THEN
             RAISE EXCEPTION 'no stats for you';
           END IF;
           RETURN true;
         END $$;
         CREATE INDEX ON m (ts) WHERE public.boom(1);
         INSERT INTO armed VALUES (true);
         RESET ROLE;",
    )
    .unwrap();
    let mut fresh = connect("it_sec_report_rows");
    assert_eq!(
        strings(
            &mut fresh,
            "SELECT format('%s %s %s', relation, expired_rows, error) FROM retention_stats() ORDER BY policy_id"
        ),
        vec!["logs 5 ", "m  no stats for you (SQLSTATE P0001)"]
    );
    let mut fresh = connect("it_sec_report_rows");
    assert_eq!(
        strings(
            &mut fresh,
            "SELECT format('%s %s %s', relation, rows_to_delete, reason) FROM retention_preview() ORDER BY step"
        ),
        vec![
            "logs 5 expired (ts older than cutoff)",
            "m  expired (ts older than cutoff); cannot count: no stats for you (SQLSTATE P0001)"
        ]
    );
    let mut fresh = connect("it_sec_report_rows");
    assert_eq!(
        count(&mut fresh, "SELECT count(*) FROM retention_label_totals"),
        1
    );
}

/// A role that owns the extension's schema could rename it and put tables
/// and functions of its own under the extension's names, which the
/// extension would then use as its owner (a superuser); so could any code
/// that runs as that role (a trigger of its tables, during a run). So the
/// schema's owner must be a superuser or the extension's owner: `public` of
/// a database another role owns (`pg_database_owner`'s) is refused at
/// install, and a schema given to another role (one that can log in or not)
/// since is refused at every entry point, and at the next step of a run in
/// progress, before anything more is read or written through it.
#[test]
fn the_extension_refuses_a_schema_owned_by_a_role_other_than_a_superuser() {
    let name = "it_sec_schema";
    let mut admin = connect("postgres");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(
            "DROP ROLE IF EXISTS it_sec_schema_app; DROP ROLE IF EXISTS it_sec_schema_group;
             CREATE ROLE it_sec_schema_app LOGIN; CREATE ROLE it_sec_schema_group;",
        )
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name} OWNER it_sec_schema_app"))
        .unwrap();
    let mut db = connect(name);
    let refused = |db: &mut postgres::Client, sql: &str, message: &str| match db.batch_execute(sql)
    {
        Ok(()) => panic!("{sql} ran"),
        Err(e) => {
            let e = e.as_db_error().unwrap();
            assert_eq!(e.code().code(), "42501", "{sql}");
            assert!(e.message().starts_with(message), "{sql}: {}", e.message());
        }
    };
    refused(
        &mut db,
        "CREATE EXTENSION pg_retention",
        "pg_retention's schema public is owned by pg_database_owner, that is by the database's owner it_sec_schema_app, who is not a superuser",
    );
    // 0.5.0 did not check: its update to 0.6.0 is refused the same way.
    db.batch_execute("CREATE EXTENSION pg_retention VERSION '0.5.0'")
        .unwrap();
    refused(
        &mut db,
        "ALTER EXTENSION pg_retention UPDATE TO '0.6.0'",
        "pg_retention's schema public is owned by pg_database_owner, that is by the database's owner it_sec_schema_app, who is not a superuser",
    );
    db.batch_execute("DROP EXTENSION pg_retention").unwrap();
    db.batch_execute("CREATE SCHEMA app_owned AUTHORIZATION it_sec_schema_app")
        .unwrap();
    refused(
        &mut db,
        "CREATE EXTENSION pg_retention SCHEMA app_owned",
        "pg_retention's schema app_owned is owned by it_sec_schema_app, who is not a superuser",
    );
    db.batch_execute("DROP SCHEMA app_owned").unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM pg_extension WHERE extname = 'pg_retention'"
        ),
        0
    );

    db.batch_execute(
        "CREATE SCHEMA retention; CREATE EXTENSION pg_retention SCHEMA retention;
         CREATE TABLE log (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO log SELECT g, now() - g * interval '1 day' FROM generate_series(1, 10) g;
         SELECT retention.retention_add_policy('log', 'ts', '5 days');",
    )
    .unwrap();
    db.batch_execute("CALL retention.retention_run()").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM log"), 4);
    db.batch_execute(
        "INSERT INTO log SELECT g, now() - g * interval '1 day' FROM generate_series(5, 10) g",
    )
    .unwrap();

    // Given to a login role, to a role that cannot log in, to
    // pg_database_owner (here the login role): refused everywhere, nothing
    // deleted or written.
    let entry_points = [
        "CALL retention.retention_run()",
        "SELECT retention.retention_execute()",
        "SELECT * FROM retention.retention_stats()",
        "SELECT * FROM retention.retention_preview()",
        "SELECT retention.retention_add_policy('log', 'id', '1 day')",
    ];
    for (owner, said) in [
        ("it_sec_schema_app", "it_sec_schema_app"),
        ("it_sec_schema_group", "it_sec_schema_group"),
        (
            "pg_database_owner",
            "pg_database_owner, that is by the database's owner it_sec_schema_app",
        ),
    ] {
        db.batch_execute(&format!("ALTER SCHEMA retention OWNER TO {owner}"))
            .unwrap();
        for sql in entry_points {
            refused(
                &mut db,
                sql,
                &format!(
                    "pg_retention's schema retention is owned by {said}, who is neither a superuser nor the extension's owner"
                ),
            );
        }
        assert_eq!(count(&mut db, "SELECT count(*) FROM log"), 10);
        assert_eq!(
            count(&mut db, "SELECT count(*) FROM retention.cleanup_runs"),
            1
        );
    }
    // The event trigger that forgets dropped tables' policies deletes them
    // through the schema's name, as the extension's owner: while the schema
    // is not a superuser's it keeps them and warns; and once a superuser has
    // renamed the schema, a role that puts a schema of its own under the
    // old name, with a table and a trigger, gets nothing run.
    let (mut dropper, notices) = crate::common::connect_keeping_notices(name);
    dropper
        .batch_execute(
            "CREATE TABLE marker (who name); GRANT INSERT ON marker TO PUBLIC;
             CREATE TABLE dropme (id int PRIMARY KEY, ts timestamptz NOT NULL);
             ALTER SCHEMA retention OWNER TO postgres;
             SELECT retention.retention_add_policy('dropme', 'ts', '1 day');
             ALTER SCHEMA retention OWNER TO pg_database_owner;
             DROP TABLE dropme;",
        )
        .unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.retention_config"),
        2
    );
    dropper
        .batch_execute(
            "ALTER SCHEMA retention OWNER TO postgres; ALTER SCHEMA retention RENAME TO retention_real;
             SET ROLE it_sec_schema_app; CREATE SCHEMA retention;
             CREATE TABLE retention.retention_config (id bigint, kind text, relid oid, time_column name);
             CREATE FUNCTION retention.planted() RETURNS trigger LANGUAGE plpgsql
               AS $$ BEGIN INSERT INTO public.marker VALUES (current_user); RETURN NULL; END $$;
             CREATE TRIGGER planted BEFORE DELETE ON retention.retention_config
               FOR EACH STATEMENT EXECUTE FUNCTION retention.planted();
             CREATE TABLE app_table (id int); DROP TABLE app_table;
             RESET ROLE;
             DROP SCHEMA retention CASCADE; ALTER SCHEMA retention_real RENAME TO retention;
             ALTER SCHEMA retention OWNER TO pg_database_owner;",
        )
        .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM marker"), 0);
    let warned = notices
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.starts_with("WARNING pg_retention: the policies of dropped objects are kept"))
        .count();
    // The DROPs of dropme, of app_table and of the planted schema.
    assert_eq!(warned, 3);
    db.batch_execute(
        "DELETE FROM retention.retention_config WHERE relid::oid NOT IN (SELECT oid FROM pg_class)",
    )
    .unwrap();

    // pg_database_owner's schema in a database a superuser owns: accepted.
    admin
        .batch_execute(&format!("ALTER DATABASE {name} OWNER TO postgres"))
        .unwrap();
    db.batch_execute("CALL retention.retention_run()").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM log"), 4);

    // Given away during a run: its next step fails, and the run writes
    // nothing more (its row stays 'running' until a later run, once the
    // schema is a superuser's again, marks it abandoned and finishes).
    db.batch_execute(
        "INSERT INTO log SELECT g, now() - interval '30 days' FROM generate_series(100, 159) g;",
    )
    .unwrap();
    let (_, running) = crate::run::spawn_call(
        name,
        "CALL retention.retention_run(batch_size => 1, batch_pause => '50 milliseconds')",
    );
    crate::run::wait_for(
        "the run to delete some rows",
        Duration::from_secs(20),
        || count(&mut db, "SELECT count(*) FROM log") < 60,
    );
    db.batch_execute("ALTER SCHEMA retention OWNER TO it_sec_schema_group")
        .unwrap();
    let failed = running.join().unwrap().unwrap_err();
    assert_eq!(failed.code().unwrap().code(), "42501", "{failed}");
    let left = count(&mut db, "SELECT count(*) FROM log");
    assert!(left > 4 && left < 64, "{left}");
    db.batch_execute("ALTER SCHEMA retention OWNER TO postgres")
        .unwrap();
    let (status, deleted) = (
        strings(
            &mut db,
            "SELECT status FROM retention.cleanup_runs ORDER BY id DESC LIMIT 1",
        ),
        count(
            &mut db,
            "SELECT total_deleted FROM retention.cleanup_runs ORDER BY id DESC LIMIT 1",
        ),
    );
    assert_eq!(status, vec!["running"]);
    assert_eq!(deleted, 64 - left);
    db.batch_execute("CALL retention.retention_run()").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM log"), 4);
    assert_eq!(
        strings(
            &mut db,
            "SELECT status FROM retention.cleanup_runs ORDER BY id DESC LIMIT 2"
        ),
        vec!["succeeded", "abandoned"]
    );
    drop(db);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute("DROP ROLE it_sec_schema_group; DROP ROLE it_sec_schema_app;")
        .unwrap();
}
