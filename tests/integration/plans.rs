//! The statements of a run reach rows through indexes: every plan that
//! auto_explain reports during `CALL retention_run()` on the odds schema is
//! checked for sequential scans of the large tables. A batch that scanned a
//! whole table would cost in proportion to the table, not to the batch.

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

    let plans = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&plans);
    let mut config: postgres::Config = conninfo("it_plans").parse().unwrap();
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
        return;
    }
    session
        .batch_execute(
            "SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_nested_statements = on;
             SET auto_explain.log_level = notice;",
        )
        .unwrap();
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
