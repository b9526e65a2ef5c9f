//! kill -9 of the postmaster in the middle of a run, on a cluster of its own
//! (the other tests share theirs): after the restart the next run marks the
//! dead run 'abandoned' and finishes the work, with no FK violation.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use crate::common::strings;
use crate::run::{spawn_call_with, wait_for};

const PORT: &str = "55434";

fn run_root() -> PathBuf {
    PathBuf::from(
        std::env::var("PG_RETENTION_RUN_DIR").unwrap_or_else(|_| "/var/tmp/pg_retention".into()),
    )
}

fn cluster(args: &[&str]) -> bool {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
    Command::new("bash")
        .arg(script)
        .args(args)
        .status()
        .expect("run scripts/cluster.sh")
        .success()
}

fn conninfo(db: &str) -> String {
    format!(
        "host={} port={PORT} user=postgres dbname={db}",
        run_root().join("crash").display()
    )
}

fn connect(db: &str) -> Client {
    Client::connect(&conninfo(db), NoTls).unwrap_or_else(|e| panic!("crash cluster {db}: {e:?}"))
}

fn count(db: &mut Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn postmaster_killed_mid_run_then_restarted() {
    assert!(cluster(&["start", "crash", PORT]));
    let mut admin = connect("postgres");
    admin
        .batch_execute("DROP DATABASE IF EXISTS it_crash WITH (FORCE)")
        .unwrap();
    admin.batch_execute("CREATE DATABASE it_crash").unwrap();
    let mut db = connect("it_crash");
    db.batch_execute(
        "CREATE EXTENSION pg_retention;
         CREATE TABLE items (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE item_parts (id int PRIMARY KEY, item_id int NOT NULL REFERENCES items);
         CREATE INDEX ON item_parts (item_id);
         INSERT INTO items SELECT g, now() - interval '100 days' + g * interval '1 minute' FROM generate_series(1, 2000) g;
         INSERT INTO item_parts SELECT g, (g % 2000) + 1 FROM generate_series(1, 4000) g;
         SELECT retention_add_policy('items', 'ts', '30 days');",
    )
    .unwrap();
    drop(admin);
    let (_, call) = spawn_call_with(
        conninfo("it_crash"),
        "CALL retention_run(100, batch_pause => '100ms')",
    );
    // Several batches in: some items (not only parts) are gone.
    wait_for("progress", Duration::from_secs(60), || {
        count(&mut db, "SELECT count(*) FROM items") < 1900
    });
    drop(db);

    let pid_file = std::fs::read_to_string(run_root().join("crash/data/postmaster.pid")).unwrap();
    let postmaster = pid_file.lines().next().unwrap().trim().to_string();
    assert!(Command::new("kill")
        .args(["-9", &postmaster])
        .status()
        .unwrap()
        .success());
    assert!(
        call.join().unwrap().is_err(),
        "the run's connection dies with the server"
    );

    // Backends notice the postmaster is gone and exit; until they have, the
    // old shared memory blocks a restart.
    let start = Instant::now();
    while !cluster(&["start", "crash", PORT]) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "crash cluster did not restart"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut db = connect("it_crash");
    // Batches commit without waiting for the WAL flush: the last few may be
    // lost with the crash. Whatever survived is consistent.
    let left_before = count(&mut db, "SELECT count(*) FROM items");
    assert!(left_before > 0 && left_before <= 2000, "{left_before}");
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM item_parts p WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.id = p.item_id)"),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM cleanup_runs WHERE status = 'running'"
        ),
        1
    );
    let committed = 2000 - left_before + 4000 - count(&mut db, "SELECT count(*) FROM item_parts");
    db.batch_execute("CALL retention_run(100)").unwrap();
    let statuses = strings(&mut db, "SELECT status FROM cleanup_runs ORDER BY id");
    assert_eq!(statuses, vec!["abandoned", "succeeded"]);
    // The counts were written with the batches they count: whatever the
    // crash kept of one, it kept of the other.
    assert_eq!(
        count(
            &mut db,
            "SELECT total_deleted FROM cleanup_runs WHERE status = 'abandoned'"
        ),
        committed
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM items"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM item_parts"), 0);
    drop(db);
    assert!(cluster(&["stop", "crash"]));
}
