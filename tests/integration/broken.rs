//! One broken policy never stops the others: each way a policy can stop
//! being runnable after it was added fails that policy alone, in runs (with
//! its SQLSTATE and its table's name in the history), stats and preview.

use crate::common::{connect, count, fresh_db, sqlstate_of, status_and_deleted, strings};

#[test]
fn a_policy_that_cannot_run_fails_alone_and_says_why() {
    let mut db = fresh_db("it_broken");
    db.batch_execute(
        "DROP ROLE IF EXISTS it_broken_other; CREATE ROLE it_broken_other;
         GRANT CREATE ON SCHEMA public TO it_broken_other;
         CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO logs SELECT g, now() - interval '10 days' FROM generate_series(1, 7) g;
         SELECT retention_add_policy('logs', 'ts', '1 day');
         CREATE TABLE renamed (id int PRIMARY KEY, ts timestamptz NOT NULL);
         SELECT retention_add_policy('renamed', 'ts', '1 day');
         ALTER TABLE renamed RENAME COLUMN ts TO created;
         CREATE TABLE unkeyed (id int PRIMARY KEY, ts timestamptz NOT NULL);
         SELECT retention_add_policy('unkeyed', 'ts', '1 day');
         ALTER TABLE unkeyed DROP CONSTRAINT unkeyed_pkey;
         CREATE TABLE selfref (id int PRIMARY KEY, ts timestamptz NOT NULL);
         SELECT retention_add_policy('selfref', 'ts', '1 day');
         ALTER TABLE selfref ADD COLUMN parent_id int REFERENCES selfref;
         CREATE TABLE parented (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO parented SELECT g, now() - interval '10 days' FROM generate_series(1, 3) g;
         SELECT retention_add_policy('parented', 'ts', '1 day');
         GRANT REFERENCES ON parented TO it_broken_other;
         SET ROLE it_broken_other;
         CREATE TABLE keyless_child (parent_id int REFERENCES parented);
         RESET ROLE;
         CREATE TABLE ancient (id int PRIMARY KEY, ts timestamptz NOT NULL);
         -- Stored by hand (retention_add_policy refuses it, below), as an
         -- earlier version could have.
         INSERT INTO retention_config (relid, kind, time_column, retain) VALUES ('ancient', 'expire', 'ts', '10000 years');",
    )
    .unwrap();
    assert_eq!(
        sqlstate_of(
            &mut db,
            "SELECT retention_add_policy('logs', 'ts', '10000 years')"
        ),
        "22023"
    );

    let want_errors = vec![
        "renamed time column \"ts\" of table public.renamed no longer exists; alter or remove policy 2 (SQLSTATE 42703)",
        "unkeyed table public.unkeyed has no primary key or unique index over NOT NULL columns; pg_retention deletes in batches by key and needs one (ALTER TABLE public.unkeyed ADD PRIMARY KEY (...)) (SQLSTATE 0A000)",
        "selfref cannot plan the deletion order for public.selfref: foreign key public.selfref_parent_id_fkey references its own table (SQLSTATE 0A000)",
        "parented table public.keyless_child has no primary key or unique index over NOT NULL columns; pg_retention deletes in batches by key and needs one (ALTER TABLE public.keyless_child ADD PRIMARY KEY (...)) (SQLSTATE 0A000)",
        "ancient its cutoff, now() - retain, is out of range: timestamp out of range (SQLSTATE 22008)",
    ];
    let stats = strings(
        &mut db,
        "SELECT format('%s %s', relation, error) FROM retention_stats() WHERE error IS NOT NULL ORDER BY policy_id",
    );
    assert_eq!(stats, want_errors);
    assert_eq!(
        count(
            &mut db,
            "SELECT expired_rows FROM retention_stats() WHERE relation = 'logs'::regclass"
        ),
        7
    );
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s', relation, cutoff IS NULL) FROM retention_policies ORDER BY id"
        ),
        vec![
            "logs f",
            "renamed f",
            "unkeyed f",
            "selfref f",
            "parented f",
            "ancient t"
        ]
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention_monitor WHERE error IS NOT NULL"
        ),
        5
    );
    let preview = strings(
        &mut db,
        "SELECT format('%s %s %s', relation, rows_to_delete, reason) FROM retention_preview() ORDER BY step",
    );
    assert_eq!(preview[0], "logs 7 expired (ts older than cutoff)");
    assert_eq!(preview.len(), 6, "{preview:?}");
    assert!(
        preview[1].starts_with(
            "renamed 0 expire policy 2 cannot run: time column \"ts\" of table public.renamed"
        ),
        "{preview:?}"
    );

    let run = db
        .query_one(
            "SELECT status, sqlstate, total_deleted, error FROM retention_execute()",
            &[],
        )
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "failed");
    assert_eq!(run.get::<_, String>(1), "42703");
    assert_eq!(run.get::<_, i64>(2), 7);
    let error: String = run.get(3);
    for table in [
        "public.renamed",
        "public.unkeyed",
        "public.selfref",
        "public.parented",
        "public.ancient",
    ] {
        assert!(
            error.contains(&format!("{table} (expire policy")),
            "{table}: {error}"
        );
    }
    assert!(!error.contains("relation 2"), "{error}");
    assert_eq!(count(&mut db, "SELECT count(*) FROM logs"), 0);

    // CALL retention_run deletes the good policy's rows, then fails its CALL
    // (pg_cron shows the job failed).
    db.batch_execute("INSERT INTO logs VALUES (100, now() - interval '10 days')")
        .unwrap();
    assert_eq!(sqlstate_of(&mut db, "CALL retention_run()"), "42703");
    assert_eq!(count(&mut db, "SELECT count(*) FROM logs"), 0);

    // Mended, each policy runs again.
    db.batch_execute(
        "ALTER TABLE renamed RENAME COLUMN created TO ts;
         ALTER TABLE unkeyed ADD PRIMARY KEY (id);
         ALTER TABLE selfref DROP COLUMN parent_id;
         DROP TABLE keyless_child;
         DELETE FROM retention_config WHERE relid = 'ancient'::regclass;",
    )
    .unwrap();
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute()"
        ),
        ("succeeded".to_string(), 3)
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention_stats() WHERE error IS NOT NULL"
        ),
        0
    );
}

/// An error that escapes `CALL retention_run` outside its batches (a
/// cancel landing at a COMMIT or in the procedure's loop; a CALL from a
/// function, refused at its first COMMIT) ends the run: the session lives
/// on holding no run lock, and the next run says what happened.
#[test]
fn an_error_outside_the_batches_leaves_no_lock_and_the_next_run_says_so() {
    let mut db = fresh_db("it_commit_error");
    db.batch_execute(
        "CREATE TABLE logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         INSERT INTO logs SELECT g, now() - interval '10 days' FROM generate_series(1, 3000) g;
         SELECT retention_add_policy('logs', 'ts', '1 day');
         CREATE FUNCTION call_it() RETURNS void LANGUAGE plpgsql AS $$ BEGIN CALL retention_run(); END $$;",
    )
    .unwrap();
    let mut first = connect("it_commit_error");
    let pid: i32 = first
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let held = format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid IN (4, 5) AND pid = {pid}"
    );
    assert_eq!(sqlstate_of(&mut first, "SELECT call_it()"), "2D000");
    // The client has the error before the backend has aborted: a round trip
    // on the session waits for the abort.
    first.batch_execute("SELECT 1").unwrap();
    assert_eq!(count(&mut db, &held), 0);

    // Cancels swept over the run: wherever one lands, the session keeps no
    // run lock.
    for ms in 1..=40 {
        first
            .batch_execute(&format!("SET statement_timeout = '{ms}ms'"))
            .unwrap();
        let _ = first.batch_execute("CALL retention_run(5, batch_pause => '1ms')");
        first.batch_execute("SELECT 1").unwrap();
        assert_eq!(count(&mut db, &held), 0, "statement_timeout {ms}ms");
    }
    first.batch_execute("RESET statement_timeout").unwrap();
    db.batch_execute("CALL retention_run()").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM logs"), 0);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM cleanup_runs WHERE status = 'running'"
        ),
        0
    );
    assert_eq!(
        count(
            &mut db,
            &format!(
                "SELECT count(*) FROM cleanup_runs WHERE status = 'abandoned'
                   AND error <> 'an error ended the run outside its batches; backend {pid} lives on'"
            )
        ),
        0
    );
    // The first session runs again as if nothing happened.
    first
        .batch_execute("INSERT INTO logs VALUES (9, now() - interval '10 days')")
        .unwrap();
    first.batch_execute("CALL retention_run()").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM logs"), 0);
}

/// `DEFERRABLE INITIALLY DEFERRED` foreign keys (Django makes every foreign
/// key so) are checked at the end of each statement inside a run: a run
/// works in a security-restricted context, where PostgreSQL refuses to
/// queue deferred triggers.
#[test]
fn deferred_foreign_keys_do_not_stop_a_run() {
    let mut db = fresh_db("it_deferred_fks");
    db.batch_execute(
        "CREATE TABLE p (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE c (id int PRIMARY KEY, p_id int NOT NULL REFERENCES p DEFERRABLE INITIALLY DEFERRED);
         CREATE TABLE c2 (id int PRIMARY KEY, p_id int NOT NULL REFERENCES p ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);
         CREATE FUNCTION refuse_young() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF OLD.ts > now() - interval '5 days' THEN RAISE EXCEPTION 'young row %', OLD.id; END IF; RETURN OLD; END $$;
         CREATE CONSTRAINT TRIGGER refuse_young AFTER DELETE ON p DEFERRABLE INITIALLY DEFERRED
             FOR EACH ROW EXECUTE FUNCTION refuse_young();
         INSERT INTO p SELECT g, now() - interval '10 days' FROM generate_series(1, 6) g;
         INSERT INTO c SELECT g, g FROM generate_series(1, 6) g;
         INSERT INTO c2 SELECT g, g FROM generate_series(1, 6) g;
         SELECT retention_add_policy('p', 'ts', '1 day', batch_size => 2);",
    )
    .unwrap();
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute(batch_size => 4)"
        ),
        ("succeeded".to_string(), 18)
    );
    db.batch_execute(
        "INSERT INTO p SELECT g, now() - interval '10 days' FROM generate_series(7, 9) g;
         INSERT INTO c SELECT g, g FROM generate_series(7, 9) g;
         INSERT INTO p VALUES (10, now() - interval '2 days');",
    )
    .unwrap();
    // The deferred trigger refuses the 2-day-old row: it fires inside its
    // batch, which fails alone; the three rows before it stay deleted.
    assert_eq!(sqlstate_of(&mut db, "CALL retention_run(1)"), "P0001");
    assert_eq!(
        strings(&mut db, "SELECT id::text FROM p ORDER BY id"),
        vec!["10"]
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM c"), 0);
}
