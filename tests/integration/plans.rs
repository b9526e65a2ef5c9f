//! The statements of a run reach rows through indexes: every plan that
//! auto_explain reports during `CALL retention_run()` on the odds schema is
//! checked for sequential scans of the large tables, and on a log table no
//! plan node of a run reads more than a few batches' worth of rows. A batch
//! that scanned a whole table (or hashed every expired row to join its
//! batch) would cost in proportion to the table, not to the batch.

use std::sync::{Arc, Mutex};

use crate::common::{conninfo, count, odds_db};

/// At scale 6 these span over 100 pages each. The events tables (1,800 rows,
/// 20 pages) are left out: for a table that small the planner rightly reads
/// it whole and sorts rather than walk an index.
const LARGE_TABLES: [&str; 4] = [
    "market_odds",
    "odds_snapshots",
    "competitor_market_odds",
    "competitor_odds_snapshots",
];

/// A session that collects the plans auto_explain reports, or None when
/// this PostgreSQL build has no auto_explain.
fn explaining_session(
    db: &str,
    settings: &str,
) -> Option<(postgres::Client, Arc<Mutex<Vec<String>>>)> {
    let plans = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&plans);
    let mut config: postgres::Config = conninfo(db).parse().unwrap();
    config.notice_callback(move |notice| {
        if notice.message().contains("plan:") {
            sink.lock().unwrap().push(notice.message().to_string());
        }
    });
    let mut session = config.connect(postgres::NoTls).unwrap();
    // auto_explain is a contrib module: the PostgreSQL 16 and 18 builds from
    // PyPI have none.
    if let Err(e) = session.batch_execute("LOAD 'auto_explain'") {
        assert_eq!(e.code().map(|c| c.code()), Some("58P01"), "{e}");
        eprintln!("plans: skipped, this PostgreSQL build has no auto_explain module");
        return None;
    }
    session
        .batch_execute(&format!(
            "SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_nested_statements = on;
             SET auto_explain.log_level = notice;
             {settings}"
        ))
        .unwrap();
    Some((session, plans))
}

/// The most rows one node of the plan produced (`actual ... rows=N loops=M`
/// counts N per loop: N times M in all).
fn most_rows_of_a_node(plan: &str) -> u64 {
    plan.split("(actual ")
        .skip(1)
        .filter_map(|node| {
            let rows = node.split("rows=").nth(1)?;
            let (rows, rest) = rows.split_once(' ')?;
            let loops = rest.strip_prefix("loops=")?;
            let loops: String = loops.chars().take_while(char::is_ascii_digit).collect();
            Some(rows.parse::<u64>().ok()? * loops.parse::<u64>().ok()?)
        })
        .max()
        .unwrap_or(0)
}

/// 60,000 log lines, 40,000 expired, ids not in time order, times in groups
/// of identical values (a job stamping a whole import with one now()), an
/// index on the time column: under generic plans the delete hashed all
/// 40,000 expired rows at every batch to join the 500 it deleted.
#[test]
fn no_batch_reads_more_than_its_rows_on_a_log_table() {
    let mut db = crate::common::fresh_db("it_plans_log");
    db.batch_execute(
        "CREATE TABLE import_log (id bigint PRIMARY KEY, stamped timestamptz NOT NULL, line text NOT NULL);
         CREATE INDEX ON import_log (stamped);
         INSERT INTO import_log
           SELECT (g * 7919) % 60013, now() - interval '89 days 12 hours' + ((g - 1) / 2000) * interval '3 days', 'line ' || g
           FROM generate_series(1, 60000) g;
         SELECT retention_add_policy('import_log', 'stamped', '30 days');
         ANALYZE import_log;",
    )
    .unwrap();
    let expired = count(
        &mut db,
        "SELECT count(*) FROM import_log WHERE stamped < now() - interval '30 days'",
    );
    assert_eq!(expired, 40_000);
    let Some((mut session, plans)) = explaining_session(
        "it_plans_log",
        "SET auto_explain.log_analyze = on; SET auto_explain.log_timing = off;",
    ) else {
        return;
    };
    session.batch_execute("CALL retention_run(500)").unwrap();
    session.close().unwrap();

    assert_eq!(count(&mut db, "SELECT count(*) FROM import_log"), 20_000);
    let plans = plans.lock().unwrap();
    let batches: Vec<&String> = plans.iter().filter(|p| p.contains("import_log")).collect();
    assert!(
        batches.len() >= 80,
        "only {} plans read import_log",
        batches.len()
    );
    // A batch of 500 rows at one time may read its whole group (2,000 rows)
    // once; nothing reads the 40,000 expired rows.
    let bound = 4 * 2_000;
    if let Some(plan) = batches.iter().find(|p| most_rows_of_a_node(p) > bound) {
        panic!(
            "a statement of the run read {} rows in one plan node:\n{plan}",
            most_rows_of_a_node(plan)
        );
    }
}

#[test]
fn run_batches_use_indexes() {
    // scale 6: per chain 1,800 events, 18,000 snapshots, 144,000 market odds.
    let mut db = odds_db("it_plans", 6);
    db.batch_execute(
        "SELECT retention_add_policy('odds_snapshots', 'captured_at', '60 days', 'own');
         SELECT retention_add_policy('events', 'kickoff', '60 days', 'own');
         SELECT retention_add_orphan_policy('tournaments', 'created_at', '1 day', 'own');
         SELECT retention_add_policy('competitor_odds_snapshots', 'captured_at', '60 days', 'competitor');
         SELECT retention_add_policy('competitor_events', 'kickoff', '60 days', 'competitor');
         SELECT retention_add_orphan_policy('competitor_tournaments', 'created_at', '1 day', 'competitor');
         ANALYZE;",
    )
    .unwrap();

    let Some((mut session, plans)) = explaining_session("it_plans", "") else {
        return;
    };
    session.batch_execute("CALL retention_run(1000)").unwrap();
    session.close().unwrap();

    let plans = plans.lock().unwrap();
    // The check cannot pass vacuously: the run deleted, and its plans were seen.
    assert!(count(&mut db, "SELECT total_deleted FROM cleanup_runs") > 100_000);
    for table in LARGE_TABLES {
        assert!(
            count(
                &mut db,
                &format!("SELECT relpages::bigint FROM pg_class WHERE relname = '{table}'")
            ) >= 100
        );
        let on_table = format!(" on {table} ");
        let touching = plans.iter().filter(|p| p.contains(&on_table)).count();
        assert!(
            touching > 50,
            "only {touching} plans read {table}; was auto_explain loaded?"
        );
        let seq = format!("Seq Scan on {table} ");
        if let Some(plan) = plans.iter().find(|p| p.contains(&seq)) {
            panic!("a statement of the run scans all of {table}:\n{plan}");
        }
    }
}
