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
    let command: String = cron_db
        .query_one(
            "SELECT command FROM cron.job WHERE jobname = 'pg_retention'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        command,
        "CALL public.retention_run(batch_size => 50, label => NULL, origin => 'pg_cron')"
    );

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
}
