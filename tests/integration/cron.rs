//! pg_cron really runs scheduled retention: in its own database through
//! `retention_schedule`, and in another database through
//! `cron.schedule_in_database` (the documented recipe).

use std::time::Duration;

use crate::common::{connect, count, fresh_db};
use crate::run::wait_for;

const SETUP: &str = "CREATE TABLE cron_logs (id int PRIMARY KEY, ts timestamptz NOT NULL);
     INSERT INTO cron_logs SELECT g, now() - interval '10 days' FROM generate_series(1, 300) g;
     INSERT INTO cron_logs SELECT g, now() FROM generate_series(301, 310) g;
     SELECT retention_add_policy('cron_logs', 'ts', '1 day');";

/// The command of the job `retention_schedule` writes for no label.
fn unlabelled_job_command(db: &mut postgres::Client) -> String {
    db.query_one(
        "SELECT command FROM cron.job WHERE jobname = 'pg_retention'",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn pg_cron_runs_scheduled_retention_here_and_in_another_database() {
    // pg_cron lives in cron.database_name = 'postgres' (scripts/cluster.sh).
    let mut cron_db = connect("postgres");
    cron_db
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pg_cron;
             SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE 'pg_retention%';
             DROP TABLE IF EXISTS cron_logs;
             DROP EXTENSION IF EXISTS pg_retention CASCADE;
             CREATE EXTENSION pg_retention;",
        )
        .unwrap();
    cron_db.batch_execute(SETUP).unwrap();
    let first: i64 = cron_db
        .query_one("SELECT retention_schedule('* * * * *', 100)", &[])
        .unwrap()
        .get(0);
    let again: i64 = cron_db
        .query_one("SELECT retention_schedule('* * * * *', 50)", &[])
        .unwrap()
        .get(0);
    assert_eq!(first, again, "scheduling twice updates the job");
    let command = unlabelled_job_command(&mut cron_db);
    assert_eq!(
        command,
        "CALL public.retention_run(batch_size => '50'::pg_catalog.int4, origin => 'pg_cron'::pg_catalog.text, label => NULL::pg_catalog.text)"
    );
    // Every cap of the run can be scheduled; scheduling the label again
    // keeps what is not given (batch_size 50 stays), and a new schedule alone
    // keeps the arguments.
    cron_db
        .batch_execute(
            "SELECT retention_schedule(max_rows => 100000, max_duration => '5 minutes',
                 batch_pause => '10ms', lock_timeout => '2s', yield_ratio => 0.5);
             SELECT retention_schedule('*/1 * * * *');",
        )
        .unwrap();
    let job = |db: &mut postgres::Client| {
        crate::common::strings(
            db,
            "SELECT format('%s %s', schedule, command) FROM cron.job WHERE jobname = 'pg_retention'",
        )
    };
    assert_eq!(
        job(&mut cron_db),
        ["*/1 * * * * CALL public.retention_run(batch_size => '50'::pg_catalog.int4, origin => 'pg_cron'::pg_catalog.text, \
          max_rows => '100000'::pg_catalog.int8, max_duration => '00:05:00'::pg_catalog.interval, \
          batch_pause => '00:00:00.01'::pg_catalog.interval, lock_timeout => '00:00:02'::pg_catalog.interval, \
          yield_ratio => '0.5'::pg_catalog.float4, label => NULL::pg_catalog.text)"]
    );
    assert_eq!(
        crate::common::sqlstate_of(
            &mut cron_db,
            "SELECT retention_schedule(label => 'no_such_label')"
        ),
        "42704"
    );
    assert_eq!(
        crate::common::sqlstate_of(
            &mut cron_db,
            "SELECT retention_schedule(batch_pause => '-1s')"
        ),
        "22023"
    );
    for bad in ["'NaN'", "'Infinity'", "1001"] {
        assert_eq!(
            crate::common::sqlstate_of(
                &mut cron_db,
                &format!("SELECT retention_schedule(yield_ratio => {bad})")
            ),
            "22023"
        );
    }
    // A label is read back as nothing but a label: "x, max_rows => '1'"
    // scheduled twice plants no argument.
    cron_db
        .batch_execute(
            "SELECT retention_alter_policy('cron_logs', label => 'x, max_rows => ''1''');
             SELECT retention_schedule('0 1 * * *', label => 'x, max_rows => ''1''');
             SELECT retention_schedule(label => 'x, max_rows => ''1''');",
        )
        .unwrap();
    assert_eq!(
        crate::common::strings(
            &mut cron_db,
            "SELECT command FROM cron.job WHERE jobname = 'pg_retention:x, max_rows => ''1'''"
        ),
        ["CALL public.retention_run(batch_size => '1000'::pg_catalog.int4, origin => 'pg_cron'::pg_catalog.text, \
          label => 'x, max_rows => ''1'''::pg_catalog.text)"]
    );
    cron_db
        .batch_execute(
            "SELECT retention_unschedule('x, max_rows => ''1''');
             SELECT retention_alter_policy('cron_logs', reset => '{label}');",
        )
        .unwrap();

    // Another database: the recipe from docs/scheduling.md.
    let mut other = fresh_db("it_cron_other");
    other.batch_execute(SETUP).unwrap();
    cron_db
        .batch_execute(
            "SELECT cron.schedule_in_database('pg_retention_it_cron_other', '* * * * *',
                 $$CALL retention_run(batch_size => 100, origin => 'pg_cron')$$, 'it_cron_other')",
        )
        .unwrap();

    let ran = |db: &mut postgres::Client| {
        count(
            db,
            "SELECT count(*) FROM cleanup_runs WHERE origin = 'pg_cron' AND status = 'succeeded'",
        ) > 0
    };
    wait_for(
        "pg_cron to run the job here",
        Duration::from_secs(150),
        || ran(&mut cron_db),
    );
    wait_for(
        "pg_cron to run the job in the other database",
        Duration::from_secs(150),
        || ran(&mut other),
    );
    for db in [&mut cron_db, &mut other] {
        assert_eq!(count(db, "SELECT count(*) FROM cron_logs"), 10);
        assert_eq!(
            count(db, "SELECT total_deleted FROM cleanup_runs WHERE origin = 'pg_cron' ORDER BY id LIMIT 1"),
            300
        );
    }

    // The job as a DBA reads it: pg_cron's schedule and word, and the runs
    // in the history (the other database's job is that database's).
    assert_eq!(
        crate::common::strings(
            &mut cron_db,
            "SELECT format('%s|%s|%s|%s|%s|%s|%s|%s', jobname, label, schedule, active, runs > 0, failures,
                           last_status, last_success_at IS NOT NULL)
             FROM retention_jobs()"
        ),
        ["pg_retention||*/1 * * * *|t|t|0|succeeded|t"]
    );
    // A role without USAGE on pg_cron's schema is told so.
    cron_db
        .batch_execute("DROP ROLE IF EXISTS it_cron_nobody; CREATE ROLE it_cron_nobody;")
        .unwrap();
    for call in [
        "SELECT * FROM retention_jobs()",
        "SELECT retention_schedule('0 2 * * *')",
        "SELECT retention_unschedule()",
    ] {
        assert_eq!(
            crate::common::sqlstate_of(&mut cron_db, &format!("SET ROLE it_cron_nobody; {call}")),
            "42501",
            "{call}"
        );
        cron_db.batch_execute("RESET ROLE").unwrap();
    }
    cron_db.batch_execute("DROP ROLE it_cron_nobody").unwrap();
    // Removing the last policy of a label the caller's job runs warns that
    // the job fails from now on.
    let (mut warned, notices) = crate::common::connect_keeping_notices("postgres");
    warned
        .batch_execute(
            "CREATE TABLE cron_solo (id int PRIMARY KEY, ts timestamptz NOT NULL);
             SELECT retention_add_policy('cron_solo', 'ts', '1 day', label => 'solo');
             SELECT retention_schedule('0 2 * * *', label => 'solo');
             SELECT retention_remove_policy('cron_solo');
             SELECT retention_unschedule('solo');
             DROP TABLE cron_solo;",
        )
        .unwrap();
    let warnings: Vec<String> = notices
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.starts_with("WARNING"))
        .cloned()
        .collect();
    assert_eq!(
        warnings,
        ["WARNING label \"solo\" has no policy left; its pg_cron job pg_retention:solo fails from now on"]
    );
    // The job runs as its scheduler (a superuser here): a role that may
    // create in the extension's schema adds a retention_run taking text,
    // a better match for untyped arguments. The job's command, run as pg_cron
    // runs it, still calls the extension's procedure.
    cron_db
        .batch_execute(
            "DROP ROLE IF EXISTS it_cron_planter; CREATE ROLE it_cron_planter;
             GRANT CREATE ON SCHEMA public TO it_cron_planter;
             SET ROLE it_cron_planter;
             CREATE PROCEDURE public.retention_run(batch_size text, origin text, max_rows text DEFAULT NULL,
                 max_duration text DEFAULT NULL, batch_pause text DEFAULT NULL, lock_timeout text DEFAULT NULL,
                 yield_ratio text DEFAULT NULL, label text DEFAULT NULL)
             LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'planted procedure ran as %', current_user; END $$;
             RESET ROLE;",
        )
        .unwrap();
    let command = unlabelled_job_command(&mut cron_db);
    let runs_before = count(&mut cron_db, "SELECT count(*) FROM cleanup_runs");
    cron_db.batch_execute(&command).unwrap();
    assert_eq!(
        count(&mut cron_db, "SELECT count(*) FROM cleanup_runs"),
        runs_before + 1
    );
    cron_db
        .batch_execute(
            "DROP PROCEDURE public.retention_run(text, text, text, text, text, text, text, text);
             REVOKE CREATE ON SCHEMA public FROM it_cron_planter; DROP ROLE it_cron_planter;",
        )
        .unwrap();
    let removed: bool = cron_db
        .query_one("SELECT retention_unschedule()", &[])
        .unwrap()
        .get(0);
    assert!(removed);
    let removed: bool = cron_db
        .query_one("SELECT retention_unschedule()", &[])
        .unwrap()
        .get(0);
    assert!(!removed);
    cron_db
        .batch_execute(
            "SELECT cron.unschedule('pg_retention_it_cron_other');
             DROP TABLE cron_logs; DROP EXTENSION pg_retention CASCADE;",
        )
        .unwrap();

    // In a schema whose name needs quotes, the job's command names it
    // quoted once, and runs.
    cron_db
        .batch_execute(
            "DROP SCHEMA IF EXISTS \"Retention Jobs\" CASCADE; CREATE SCHEMA \"Retention Jobs\";
             CREATE EXTENSION pg_retention SCHEMA \"Retention Jobs\";
             SELECT \"Retention Jobs\".retention_schedule('0 3 * * *', 10);",
        )
        .unwrap();
    let command = unlabelled_job_command(&mut cron_db);
    assert_eq!(
        command,
        "CALL \"Retention Jobs\".retention_run(batch_size => '10'::pg_catalog.int4, origin => 'pg_cron'::pg_catalog.text, label => NULL::pg_catalog.text)"
    );
    cron_db.batch_execute(&command).unwrap();
    assert_eq!(
        count(
            &mut cron_db,
            "SELECT count(*) FROM \"Retention Jobs\".cleanup_runs WHERE origin = 'pg_cron' AND status = 'succeeded'"
        ),
        1
    );
    cron_db
        .batch_execute(
            "SELECT \"Retention Jobs\".retention_unschedule();
             DROP EXTENSION pg_retention CASCADE; DROP SCHEMA \"Retention Jobs\";",
        )
        .unwrap();
}
