use postgres::{Client, NoTls};

pub fn conninfo(db: &str) -> String {
    let host = std::env::var("PGHOST")
        .expect("PGHOST is not set: run the integration tests through scripts/test.sh");
    let port = std::env::var("PGPORT")
        .expect("PGPORT is not set: run the integration tests through scripts/test.sh");
    format!("host={host} port={port} user=postgres dbname={db} application_name=pg_retention_it")
}

pub fn connect(db: &str) -> Client {
    Client::connect(&conninfo(db), NoTls).unwrap_or_else(|e| panic!("cannot connect to {db}: {e}"))
}

/// A new, empty database.
pub fn empty_db(name: &str) -> Client {
    let mut admin = connect("postgres");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    connect(name)
}

/// A new database with the extension installed.
pub fn fresh_db(name: &str) -> Client {
    let mut db = empty_db(name);
    db.batch_execute("CREATE EXTENSION pg_retention").unwrap();
    db
}

pub const ODDS_SCHEMA: &str = include_str!("../../bench/odds_schema.sql");

/// Both chains of the odds schema at the given scale.
pub fn odds_db(name: &str, scale: i32) -> Client {
    let mut db = fresh_db(name);
    db.batch_execute(ODDS_SCHEMA).unwrap();
    db.batch_execute(&format!(
        "SELECT odds_create_schema(); SELECT odds_create_schema('competitor_');
         SELECT odds_generate({scale}); SELECT odds_generate({scale}, 'competitor_');"
    ))
    .unwrap();
    db
}

/// Own chain: odds 30 days, matches 60 days, orphan tournaments after 1 day.
/// Competitor chain: odds 14 days, matches 45 days, orphans after 2 days.
pub fn add_odds_policies(db: &mut Client) {
    db.batch_execute(
        "SELECT retention_add_policy('odds_snapshots', 'captured_at', '30 days', 'own');
         SELECT retention_add_policy('events', 'kickoff', '60 days', 'own');
         SELECT retention_add_orphan_policy('tournaments', 'created_at', '1 day', 'own');
         SELECT retention_add_policy('competitor_odds_snapshots', 'captured_at', '14 days', 'competitor');
         SELECT retention_add_policy('competitor_events', 'kickoff', '45 days', 'competitor');
         SELECT retention_add_orphan_policy('competitor_tournaments', 'created_at', '2 days', 'competitor');",
    )
    .unwrap();
}

pub fn count(db: &mut Client, sql: &str) -> i64 {
    db.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The SQLSTATE of a statement that must fail.
pub fn sqlstate_of(db: &mut Client, sql: &str) -> String {
    match db.batch_execute(sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("no SQLSTATE for {sql}: {e}"))
            .code()
            .to_string(),
    }
}

pub fn error_message(db: &mut Client, sql: &str) -> String {
    match db.batch_execute(sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string()),
    }
}

/// The first column of every row, as text.
pub fn strings(db: &mut Client, sql: &str) -> Vec<String> {
    db.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The status and total of the history row a run statement returns
/// (`SELECT status, total_deleted FROM retention_execute(...)`).
pub fn status_and_deleted(db: &mut Client, sql: &str) -> (String, i64) {
    let row = db
        .query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    (row.get(0), row.get(1))
}

/// A connection that keeps every notice it receives, as "SEVERITY message".
pub fn connect_keeping_notices(
    db: &str,
) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&notices);
    let mut config: postgres::Config = conninfo(db).parse().unwrap();
    config.notice_callback(move |n| {
        sink.lock()
            .unwrap()
            .push(format!("{} {}", n.severity(), n.message()))
    });
    (config.connect(NoTls).unwrap(), notices)
}
