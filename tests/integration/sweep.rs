//! Heap sweeps (src/strategy.rs): a policy whose expired rows PostgreSQL
//! would read in physical order deletes them range of pages by range of
//! pages. One-statement batches (a sweep's or a keyset's) delete without
//! row locks, waiting only briefly for a row another session holds.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::common::{connect, conninfo, count, fresh_db, strings};
use crate::run::wait_for;

/// Runs `CALL retention_run(batch_size)` after `setting`, on its own
/// connection in a thread; returns the backend pid.
fn spawn_run(
    db: &str,
    setting: &str,
    batch_size: i32,
) -> (i32, thread::JoinHandle<Result<(), postgres::Error>>) {
    let mut c = connect(db);
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    c.batch_execute(setting).unwrap();
    let call = format!("CALL retention_run({batch_size})");
    (pid, thread::spawn(move || c.batch_execute(&call)))
}

/// `spread`: 20,000 rows whose times are spread over the heap (70% expired
/// for a 30-day policy, none within 12 hours of the cutoff), an index on time.
fn spread_db(name: &str) -> postgres::Client {
    let mut db = fresh_db(name);
    db.batch_execute(
        "CREATE TABLE spread (id int PRIMARY KEY, ts timestamptz NOT NULL, pad text NOT NULL DEFAULT 'x');
         CREATE INDEX ON spread (ts);
         INSERT INTO spread (id, ts)
           SELECT g, now() - ((g * 7919) % 100) * interval '1 day' - interval '12 hours' FROM generate_series(1, 20000) g;
         ANALYZE spread;
         SELECT retention_add_policy('spread', 'ts', '30 days');",
    )
    .unwrap();
    db
}

const EXPIRED: &str = "SELECT count(*) FROM spread WHERE ts < now() - interval '30 days'";

/// Runs `sql` after `SET client_min_messages = debug1` and returns its
/// messages.
fn messages_of(db: &str, sql: &str) -> Vec<String> {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let mut config: postgres::Config = conninfo(db).parse().unwrap();
    config.notice_callback(move |notice| sink.lock().unwrap().push(notice.message().to_string()));
    let mut session = config.connect(postgres::NoTls).unwrap();
    session
        .batch_execute("SET client_min_messages = debug1")
        .unwrap();
    session.batch_execute(sql).unwrap();
    session.close().unwrap();
    let lines = lines.lock().unwrap();
    lines.clone()
}

#[test]
fn rows_expired_all_over_the_heap_are_swept_exactly_and_a_held_row_is_left() {
    let mut db = spread_db("it_sweep_exact");
    let expired = count(&mut db, EXPIRED);
    assert_eq!(expired, 14000);
    let young = count(&mut db, "SELECT count(*) FROM spread") - expired;
    let mut holder = connect("it_sweep_exact");
    holder
        .batch_execute("BEGIN; SELECT * FROM spread WHERE id = 5003 FOR UPDATE;")
        .unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM spread WHERE id = 5003 AND ts < now() - interval '30 days'"
        ),
        1
    );
    let messages = messages_of("it_sweep_exact", "CALL retention_run(500)");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("public.spread (expire): batches sweep its")),
        "{messages:?}"
    );
    // Every expired row but the held one; no young row.
    assert_eq!(count(&mut db, EXPIRED), 1);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM spread WHERE id = 5003"),
        1
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM spread"), young + 1);
    let run = db
        .query_one(
            "SELECT status, total_deleted, (tables->0->>'deleted')::int8, lock_timeouts FROM cleanup_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "succeeded");
    assert_eq!(run.get::<_, i64>(1), expired - 1);
    assert_eq!(run.get::<_, i64>(2), expired - 1);
    assert_eq!(run.get::<_, i32>(3), 0);
    holder.batch_execute("COMMIT").unwrap();
    db.batch_execute("CALL retention_run(500)").unwrap();
    assert_eq!(count(&mut db, EXPIRED), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM spread"), young);
}

/// `spread` laid out for each way a policy's batches find their rows.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Times spread over the heap, 70% expired: the policy sweeps.
    Spread,
    /// Times in insertion order, the oldest 2,000 (10%) expired: the index
    /// finds them, the policy takes a keyset.
    Daily,
}

impl Layout {
    fn db(self, name: &str) -> postgres::Client {
        match self {
            Layout::Spread => spread_db(name),
            Layout::Daily => {
                let mut db = fresh_db(name);
                db.batch_execute(
                    "CREATE TABLE spread (id int PRIMARY KEY, ts timestamptz NOT NULL, pad text NOT NULL DEFAULT 'x');
                     CREATE INDEX ON spread (ts);
                     INSERT INTO spread (id, ts)
                       SELECT g, now() - (20001 - g) * interval '1 day' / 600
                                 - CASE WHEN g <= 2000 THEN interval '12 hours' ELSE interval '-12 hours' END
                       FROM generate_series(1, 20000) g;
                     ANALYZE spread;
                     SELECT retention_add_policy('spread', 'ts', '30 days');",
                )
                .unwrap();
                db
            }
        }
    }

    /// How its run says its batches find their rows (DEBUG1).
    fn strategy(self) -> &'static str {
        match self {
            Layout::Spread => "public.spread (expire): batches sweep its",
            Layout::Daily => "public.spread (expire): batches take the oldest rows first",
        }
    }

    /// Expired rows, the first before the second in the heap and in time,
    /// both in the first batch of 500.
    fn expired_ids(self) -> (i32, i32) {
        match self {
            Layout::Spread => (10, 402),
            Layout::Daily => (10, 402),
        }
    }
}

/// Waits until the backend `pid` waits for a lock `holder` holds (any
/// other lock wait of the run, however brief, would let the test go on
/// too early: it did once, with the whole suite running).
fn wait_for_a_row_lock(db: &mut postgres::Client, pid: i32, holder: &mut postgres::Client) {
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    wait_for(
        "the run to wait for a held row",
        Duration::from_secs(30),
        || {
            count(
                db,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND wait_event_type = 'Lock' \
                     AND {holder_pid} = ANY (pg_blocking_pids({pid}))"
                ),
            ) == 1
        },
    );
}

/// An expired row that the run's batch waiting for `held` deleted, without
/// committing: `first` if it is one, else one of the expired rows just
/// before `held` in heap or time order. Probed in `writer`'s transaction,
/// each in a savepoint: `FOR UPDATE NOWAIT` fails on such a row.
fn deleted_by_the_waiting_batch(writer: &mut postgres::Client, first: i32, held: i32) -> i32 {
    let mut candidates = vec![first];
    for order in ["ctid", "ts"] {
        let before: Vec<i32> = writer
            .query(
                &format!(
                    "SELECT id FROM spread WHERE ts < now() - interval '30 days' \
                       AND {order} < (SELECT {order} FROM spread WHERE id = $1) ORDER BY {order} DESC LIMIT 200"
                ),
                &[&held],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        candidates.extend(before);
    }
    for id in candidates {
        writer.batch_execute("SAVEPOINT probe").unwrap();
        let free = writer
            .query(
                "SELECT id FROM spread WHERE id = $1 FOR UPDATE NOWAIT",
                &[&id],
            )
            .map(|rows| !rows.is_empty());
        writer.batch_execute("ROLLBACK TO SAVEPOINT probe").unwrap();
        match free {
            Err(e) if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                return id
            }
            Err(e) => panic!("probing row {id}: {e}"),
            Ok(_) => {}
        }
    }
    panic!("no row deleted by the waiting batch among the candidates");
}

/// The layout's run, rolled back, says how its batches find their rows.
fn assert_strategy(db: &str, layout: Layout) {
    let messages = messages_of(db, "BEGIN; SELECT retention_execute(500); ROLLBACK;");
    assert!(
        messages.iter().any(|m| m.contains(layout.strategy())),
        "{layout:?}: {messages:?}"
    );
}

/// A one-statement batch deletes without row locks: it waits for a row
/// another session holds (the locked form never waits: it skips), and then
/// never deletes a row that session made young (a sweep's range, a
/// keyset's batch alike).
#[test]
fn a_row_changed_while_a_batch_waits_for_it_is_deleted_only_if_still_expired() {
    for (layout, name) in [
        (Layout::Spread, "it_sweep_changed"),
        (Layout::Daily, "it_keyset_changed"),
    ] {
        let mut db = layout.db(name);
        assert_strategy(name, layout);
        let expired = count(&mut db, EXPIRED);
        let young = count(&mut db, "SELECT count(*) FROM spread") - expired;
        let (made_young, changed) = layout.expired_ids();
        // One made young, the other changed otherwise: uncommitted.
        let mut holder = connect(name);
        holder
            .batch_execute(&format!(
                "BEGIN; UPDATE spread SET ts = now() WHERE id = {made_young}; UPDATE spread SET pad = 'changed' WHERE id = {changed};"
            ))
            .unwrap();
        // The run waits for the held rows long enough (a tenth of
        // deadlock_timeout) for the holder to commit meanwhile.
        let (pid, run) = spawn_run(name, "SET deadlock_timeout = '100s'", 500);
        wait_for_a_row_lock(&mut db, pid, &mut holder);
        holder.batch_execute("COMMIT").unwrap();
        run.join().unwrap().unwrap();
        // The row made young stays. The one changed otherwise is deleted by
        // its new version, or (PostgreSQL releases whose TID scans re-check
        // the new version's ctid against the batch's) left for the next run,
        // still expired; nothing else expired is left, no young row went,
        // and the history counts what went.
        assert_eq!(
            count(
                &mut db,
                &format!("SELECT count(*) FROM spread WHERE id = {made_young}")
            ),
            1
        );
        let left = count(&mut db, EXPIRED);
        assert_eq!(
            count(
                &mut db,
                &format!("SELECT count(*) FROM spread WHERE id = {changed}")
            ),
            left,
            "{layout:?}"
        );
        assert!(left <= 1, "{layout:?}");
        assert_eq!(
            count(&mut db, "SELECT count(*) FROM spread"),
            young + 1 + left
        );
        assert_eq!(
            count(&mut db, "SELECT total_deleted FROM cleanup_runs WHERE origin = 'retention_run' ORDER BY id DESC LIMIT 1"),
            expired - 1 - left,
            "{layout:?}"
        );
    }
}

/// A writer holding an expired row, then asking for one the batch has
/// deleted before reaching the first, would deadlock with the batch: the
/// batch gives up waiting long before the writer's deadlock check, and is
/// taken again with row locks that skip the held row. The writer never
/// fails.
#[test]
fn a_writer_waiting_for_a_row_a_batch_deleted_never_fails_on_a_deadlock() {
    for (layout, name) in [
        (Layout::Spread, "it_sweep_deadlock"),
        (Layout::Daily, "it_keyset_deadlock"),
    ] {
        let mut db = layout.db(name);
        assert_strategy(name, layout);
        let young = count(&mut db, "SELECT count(*) FROM spread") - count(&mut db, EXPIRED);
        let (first, held) = layout.expired_ids();
        // The writer's deadlock check comes 10 s after it starts to wait;
        // the run's batch waits for a held row 5 s at most (a tenth of its
        // own deadlock_timeout, capped by the run's lock_timeout): long
        // enough for the writer to come and wait on a busy machine (2 s was
        // not, once, with the whole suite running), short enough to give up
        // first.
        let mut writer = connect(name);
        writer
            .batch_execute(&format!(
                "SET deadlock_timeout = '10s'; BEGIN; UPDATE spread SET pad = 'w' WHERE id = {held};"
            ))
            .unwrap();
        let (pid, run) = spawn_run(name, "SET deadlock_timeout = '60s'", 1000);
        wait_for_a_row_lock(&mut db, pid, &mut writer);
        // A row the waiting batch deleted: `first` is in it when the batch
        // starts where the layout says; with the whole suite running, its
        // first range once ended before `held`, and a batch before had
        // deleted and committed `first`. So it is looked for: a row the
        // batch deleted, uncommitted, cannot be locked without waiting.
        let first = deleted_by_the_waiting_batch(&mut writer, first, held);
        // Waits for the run's batch, which deleted `first`, until it gives
        // up; it does not fail (no 40P01). When the batch gives up, its
        // retry (skipping the held row) and the woken writer race for
        // `first`: the writer updates it, or finds it deleted by the retry
        // when the run's backend got there first, which a busy machine makes
        // likely (seen with the whole suite on two cores). Either way it
        // must not fail.
        writer
            .execute(
                &format!("UPDATE spread SET pad = 'w' WHERE id = {first}"),
                &[],
            )
            .unwrap_or_else(|e| panic!("{layout:?}: the writer failed: {e}"));
        writer.batch_execute("COMMIT").unwrap();
        run.join().unwrap().unwrap();
        db.batch_execute("CALL retention_run(1000)").unwrap();
        assert_eq!(count(&mut db, EXPIRED), 0, "{layout:?}");
        assert_eq!(count(&mut db, "SELECT count(*) FROM spread"), young);
    }
}

/// A sweep deletes in physical order: with `pg_retention.heap_sweep = off`,
/// a run stopped by a cap has deleted the oldest rows.
#[test]
fn with_heap_sweep_off_a_capped_run_deletes_the_oldest_rows() {
    let mut db = spread_db("it_sweep_off");
    let total = count(&mut db, "SELECT count(*) FROM spread");
    // 200 rows per day of age: the 1,000 oldest are 95.5 to 99.5 days old.
    let oldest_five_days = "SELECT count(*) FROM spread WHERE ts < now() - interval '95 days'";
    assert_eq!(count(&mut db, oldest_five_days), 1000);
    let mut session = connect("it_sweep_off");
    session
        .batch_execute("SET pg_retention.heap_sweep = off")
        .unwrap();
    session
        .batch_execute("CALL retention_run(200, max_rows => 1000)")
        .unwrap();
    assert_eq!(count(&mut db, oldest_five_days), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM spread"), total - 1000);
    // The same cap with sweeps deletes rows of every age: the 1,000 oldest
    // left (90.5 to 94.5 days old) are not all gone.
    let next_oldest = "SELECT count(*) FROM spread WHERE ts < now() - interval '90 days'";
    assert_eq!(count(&mut db, next_oldest), 1000);
    db.batch_execute("CALL retention_run(200, max_rows => 1000)")
        .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM spread"), total - 2000);
    assert!(count(&mut db, next_oldest) > 0);
}

/// A leaf child updated by a writer while the batch's delete waits for it:
/// the delete's re-check may keep the new version (a TID scan re-checks its
/// ctid on some releases), which still references the parent. The batch
/// then deletes the chunk's children by foreign key, so the parent's NO
/// ACTION check finds none, and the history counts every row.
#[test]
fn a_child_updated_while_its_delete_waits_still_goes_before_its_parent() {
    let name = "it_leaf_changed";
    let mut db = fresh_db(name);
    db.batch_execute(
        "CREATE TABLE parent (id int PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, note text);
         CREATE INDEX ON child (parent_id);
         INSERT INTO parent SELECT g, now() - g * interval '10 days' + interval '12 hours' FROM generate_series(1, 20) g;
         INSERT INTO child SELECT g, 1 + g % 20, 'x' FROM generate_series(1, 60) g;
         SELECT retention_add_policy('parent', 'ts', '100 days');",
    )
    .unwrap();
    // Parents 11-20 are expired, with 3 children each; child 15 is parent 16's.
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM parent WHERE ts < now() - interval '100 days'"
        ),
        10
    );
    let mut holder = connect(name);
    holder
        .batch_execute("BEGIN; UPDATE child SET note = 'changed' WHERE id = 15")
        .unwrap();
    let (pid, run) = spawn_run(
        name,
        "SET pg_retention.yield_ratio = 0; SET pg_retention.lock_timeout = '60s'",
        500,
    );
    wait_for_a_row_lock(&mut db, pid, &mut holder);
    holder.batch_execute("COMMIT").unwrap();
    run.join().unwrap().unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM parent"), 10);
    assert_eq!(count(&mut db, "SELECT count(*) FROM child"), 30);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM child WHERE parent_id NOT IN (SELECT id FROM parent)"
        ),
        0
    );
    let (status, total): (String, i64) = {
        let row = db
            .query_one(
                "SELECT status, total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((status.as_str(), total), ("succeeded", 10 + 30));
}

/// `hashed`: 20,000 rows hash-partitioned by id over three partitions, their
/// times spread as in `spread` (70% expired for a 30-day policy), an index
/// on time; owned, partitions too, by `owner` (a role without superuser),
/// who gets `setup` run as it after the table is made.
fn hashed_db(name: &str, owner: &str, setup: &str) -> postgres::Client {
    let mut db = fresh_db(name);
    db.batch_execute(&format!(
        "DROP ROLE IF EXISTS {owner}; CREATE ROLE {owner};
         GRANT CREATE ON SCHEMA public TO {owner};
         CREATE TABLE hashed (id int PRIMARY KEY, ts timestamptz NOT NULL, pad text NOT NULL DEFAULT 'x') PARTITION BY HASH (id);
         CREATE TABLE hashed_0 PARTITION OF hashed FOR VALUES WITH (modulus 3, remainder 0);
         CREATE TABLE hashed_1 PARTITION OF hashed FOR VALUES WITH (modulus 3, remainder 1);
         CREATE TABLE hashed_2 PARTITION OF hashed FOR VALUES WITH (modulus 3, remainder 2);
         CREATE INDEX ON hashed (ts);
         INSERT INTO hashed (id, ts)
           SELECT g, now() - ((g * 7919) % 100) * interval '1 day' - interval '12 hours' FROM generate_series(1, 20000) g;
         ANALYZE hashed;
         ALTER TABLE hashed OWNER TO {owner};
         ALTER TABLE hashed_0 OWNER TO {owner};
         ALTER TABLE hashed_1 OWNER TO {owner};
         ALTER TABLE hashed_2 OWNER TO {owner};
         SET ROLE {owner}; {setup} RESET ROLE;
         SELECT retention_add_policy('hashed', 'ts', '30 days');"
    ))
    .unwrap();
    db
}

const HASHED_EXPIRED: &str = "SELECT count(*) FROM hashed WHERE ts < now() - interval '30 days'";

/// A row trigger on `hashed_0` (one fires on the partition either way, and
/// does not keep the table from a sweep) that runs `body` for every row a
/// run deletes there: something happening during a run.
fn during_the_first_partitions_deletes(body: &str) -> String {
    format!(
        "CREATE FUNCTION during_run() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN {body} RETURN NULL; END $$;
         CREATE TRIGGER during_run AFTER DELETE ON hashed_0 FOR EACH ROW EXECUTE FUNCTION during_run();"
    )
}

/// Asserts that one of a run's `messages` contains `said`.
fn assert_said(messages: &[String], said: &str) {
    assert!(
        messages.iter().any(|m| m.contains(said)),
        "{said}: {messages:?}"
    );
}

const SWEEPS_HASHED: &str = "public.hashed (expire): batches sweep 3 of its partitions";
const KEYSET_HASHED: &str = "public.hashed (expire): batches take the oldest rows first, by keyset";

#[test]
fn a_partitioned_table_is_swept_partition_by_partition_exactly() {
    let name = "it_sweep_hashed";
    // A row trigger fires on the partition either way: no reason not to sweep.
    let mut db = hashed_db(
        name,
        "it_sweep_hashed_owner",
        "CREATE TABLE gone (id int);
         CREATE FUNCTION note_gone() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.gone VALUES (OLD.id); RETURN NULL; END $$;
         CREATE TRIGGER note_gone AFTER DELETE ON hashed FOR EACH ROW EXECUTE FUNCTION note_gone();",
    );
    let expired = count(&mut db, HASHED_EXPIRED);
    let total = count(&mut db, "SELECT count(*) FROM hashed");
    assert_eq!(expired, 14000);
    let messages = messages_of(name, "CALL retention_run(1000)");
    assert_said(&messages, SWEEPS_HASHED);
    assert_eq!(count(&mut db, HASHED_EXPIRED), 0);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM hashed"),
        total - expired
    );
    // Each row deleted once, by the trigger's count; the history names the
    // partitioned table.
    assert_eq!(
        count(&mut db, "SELECT count(DISTINCT id) FROM gone"),
        expired
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM gone"), expired);
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s: %s', status, t->>'relation', t->>'deleted') \
             FROM (SELECT * FROM cleanup_runs ORDER BY id DESC LIMIT 1) r, jsonb_array_elements(r.tables) t"
        ),
        ["succeeded public.hashed: 14000"]
    );
}

#[test]
fn a_partition_deleted_from_otherwise_than_through_its_table_is_not_swept() {
    // Each makes deleting from a partition directly differ from deleting
    // through the table; a sweep would then delete other rows, fail, or skip
    // what the table's owner set up. Through the table, every expired row goes.
    let cases = [
        (
            "owner",
            "SELECT 1;",
            "ALTER TABLE hashed_1 OWNER TO it_sweep_owner_other",
        ),
        (
            "rls",
            "ALTER TABLE hashed_1 ENABLE ROW LEVEL SECURITY; ALTER TABLE hashed_1 FORCE ROW LEVEL SECURITY;
             CREATE POLICY evens ON hashed_1 USING (id % 2 = 0);",
            "SELECT 1",
        ),
        (
            "statement_trigger",
            "CREATE TABLE fired (n int);
             CREATE FUNCTION note_fired() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.fired VALUES (1); RETURN NULL; END $$;
             CREATE TRIGGER note_fired AFTER DELETE ON hashed FOR EACH STATEMENT EXECUTE FUNCTION note_fired();",
            "SELECT 1",
        ),
        (
            "rule",
            "CREATE RULE keep AS ON DELETE TO hashed_2 DO INSTEAD NOTHING;",
            "SELECT 1",
        ),
        (
            // A schema another login role owns: it could rename the schema
            // and put another table under the partition's name.
            "schema",
            "SELECT 1;",
            "CREATE SCHEMA parts AUTHORIZATION it_sweep_schema_other; ALTER TABLE hashed_1 SET SCHEMA parts;
             GRANT USAGE ON SCHEMA parts TO it_sweep_schema_owner",
        ),
    ];
    for (case, as_owner, as_superuser) in cases {
        let name = format!("it_sweep_not_{case}");
        let mut db = hashed_db(&name, &format!("it_sweep_{case}_owner"), as_owner);
        db.batch_execute(&format!(
            "DROP ROLE IF EXISTS it_sweep_{case}_other; CREATE ROLE it_sweep_{case}_other LOGIN; {as_superuser}"
        ))
        .unwrap();
        let total = count(&mut db, "SELECT count(*) FROM hashed");
        let messages = messages_of(&name, "CALL retention_run(1000)");
        assert_said(&messages, KEYSET_HASHED);
        assert_eq!(count(&mut db, HASHED_EXPIRED), 0, "{case}");
        assert_eq!(
            count(&mut db, "SELECT count(*) FROM hashed"),
            total - 14000,
            "{case}"
        );
        if case == "statement_trigger" {
            assert!(count(&mut db, "SELECT count(*) FROM fired") > 0);
        }
    }
}

#[test]
fn a_partition_detached_during_a_run_keeps_its_rows() {
    let name = "it_sweep_detached";
    // The first row deleted from the first partition detaches the last.
    let mut db = hashed_db(
        name,
        "it_sweep_detached_owner",
        &during_the_first_partitions_deletes(
            "IF EXISTS (SELECT FROM pg_inherits WHERE inhrelid = 'public.hashed_2'::regclass) THEN
               ALTER TABLE public.hashed DETACH PARTITION public.hashed_2;
             END IF;",
        ),
    );
    let kept = count(
        &mut db,
        "SELECT count(*) FROM hashed_2 WHERE ts < now() - interval '30 days'",
    );
    assert!(kept > 4000, "{kept}");
    let messages = messages_of(name, "CALL retention_run(1000)");
    assert_said(&messages, SWEEPS_HASHED);
    assert_said(
        &messages,
        "partition \"public\".\"hashed_2\" can no longer be swept; the rest goes by keyset",
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM pg_inherits WHERE inhrelid = 'hashed_2'::regclass"
        ),
        0
    );
    assert_eq!(count(&mut db, HASHED_EXPIRED), 0);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM hashed_2 WHERE ts < now() - interval '30 days'"
        ),
        kept
    );
}

#[test]
fn partitions_left_to_the_index_are_done_by_keyset_after_the_sweep() {
    // An old partition all expired (no index: read in order), one at the
    // cutoff with about 60 expired rows among 40,000 in time order (its index finds
    // them), a young one the plan prunes. Whole partitions are not dropped
    // here.
    let name = "it_sweep_then_keyset";
    let mut db = fresh_db(name);
    db.batch_execute(
        "CREATE TABLE monthly (id int, ts timestamptz NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
         CREATE TABLE monthly_old PARTITION OF monthly FOR VALUES FROM (MINVALUE) TO (now() - interval '40 days');
         CREATE TABLE monthly_cut PARTITION OF monthly FOR VALUES FROM (now() - interval '40 days') TO (now() - interval '10 days');
         CREATE TABLE monthly_new PARTITION OF monthly FOR VALUES FROM (now() - interval '10 days') TO (MAXVALUE);
         CREATE INDEX ON monthly_cut (ts);
         CREATE INDEX ON monthly_new (ts);
         INSERT INTO monthly SELECT g, now() - interval '50 days' - g * interval '1 minute' FROM generate_series(1, 5000) g;
         INSERT INTO monthly SELECT g, now() - interval '38 days' - interval '1 hour' + g * interval '1 minute' FROM generate_series(1, 40000) g;
         INSERT INTO monthly SELECT g, now() - (g % 9) * interval '1 day' FROM generate_series(1, 5000) g;
         ANALYZE monthly;
         SELECT retention_add_policy('monthly', 'ts', '38 days');
         ALTER DATABASE it_sweep_then_keyset SET pg_retention.drop_partitions = off;",
    )
    .unwrap();
    let expired = "SELECT count(*) FROM monthly WHERE ts < now() - interval '38 days'";
    let before = count(&mut db, expired);
    let in_cut = count(
        &mut db,
        "SELECT count(*) FROM monthly_cut WHERE ts < now() - interval '38 days'",
    );
    // 59 or 60: the rows' times and the cutoff come from different now()s.
    assert!((59..=60).contains(&in_cut), "{in_cut}");
    let total = count(&mut db, "SELECT count(*) FROM monthly");
    let messages = messages_of(name, "CALL retention_run(1000)");
    assert!(
        messages.iter().any(|m| m
            .contains("public.monthly (expire): batches sweep 1 of its partitions,")
            && m.ends_with("in physical order, then take what is left oldest first, by keyset")),
        "{messages:?}"
    );
    assert_eq!(count(&mut db, expired), 0);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM monthly"),
        total - before
    );
}

#[test]
fn a_table_taking_a_swept_partitions_name_during_a_run_keeps_its_rows() {
    let name = "it_sweep_renamed";
    // The first row deleted from the first partition renames the last and
    // creates a table of the same shape and rows under its name.
    let mut db = hashed_db(
        name,
        "it_sweep_renamed_owner",
        &during_the_first_partitions_deletes(
            "IF NOT EXISTS (SELECT FROM pg_class WHERE relname = 'hashed_2_old') THEN
               ALTER TABLE public.hashed_2 RENAME TO hashed_2_old;
               CREATE TABLE public.hashed_2 AS SELECT * FROM public.hashed_2_old;
             END IF;",
        ),
    );
    let in_last = count(&mut db, "SELECT count(*) FROM hashed_2");
    let messages = messages_of(name, "CALL retention_run(1000)");
    assert_said(&messages, SWEEPS_HASHED);
    // The newcomer is untouched; the renamed partition, swept by its new
    // name, lost its expired rows like the others.
    assert_eq!(count(&mut db, "SELECT count(*) FROM hashed_2"), in_last);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM pg_inherits WHERE inhrelid = 'hashed_2_old'::regclass"
        ),
        1
    );
    assert_eq!(count(&mut db, HASHED_EXPIRED), 0);
}

#[test]
fn in_a_repeatable_read_transaction_a_partitioned_table_is_not_swept() {
    // Every statement would see the transaction's first snapshot: a
    // partition detached meanwhile would still look attached.
    let name = "it_sweep_repeatable";
    let mut db = hashed_db(name, "it_sweep_repeatable_owner", "SELECT 1;");
    let messages = messages_of(
        name,
        "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT retention_execute(1000); COMMIT;",
    );
    assert_said(&messages, KEYSET_HASHED);
    assert_eq!(count(&mut db, HASHED_EXPIRED), 0);
}

/// The sizes of a run's batches, from its DEBUG1 messages.
fn batch_sizes(messages: &[String]) -> Vec<i64> {
    messages
        .iter()
        .filter_map(|m| {
            let rest = m.split(" deleted ").nth(1)?;
            m.contains("batch ")
                .then(|| rest.split(' ').next()?.parse().ok())
                .flatten()
        })
        .collect()
}

/// Asserts that the one run in `cleanup_runs` deleted `deleted` rows from
/// its one table, whose oldest and newest are those of table `expected`.
fn assert_history_matches_expected(db: &mut postgres::Client, deleted: i64) {
    assert_eq!(
        strings(
            db,
            "SELECT format('%s %s %s', r.total_deleted,
                           (r.tables->0->>'oldest')::timestamptz = e.oldest,
                           (r.tables->0->>'newest')::timestamptz = e.newest)
             FROM cleanup_runs r, expected e"
        ),
        [format!("{deleted} t t")]
    );
}

/// A swept batch is one DELETE whose row budget admits `batch_size` rows
/// (src/sweep_budget.rs): no batch deletes more, the run deletes every
/// expired row and no other, and the history's oldest and newest are those
/// of the expired rows, whatever the time column's type. The first half of
/// the heap holds few expired rows (one in 50), the second only expired ones.
#[test]
fn a_swept_batch_deletes_at_most_its_batch_size_and_records_the_expired_times() {
    for ty in ["timestamptz", "timestamp", "date"] {
        let name = format!("it_sweep_budget_{ty}");
        let mut db = fresh_db(&name);
        db.batch_execute(&format!(
            "CREATE TABLE typed (id int PRIMARY KEY, ts {ty} NOT NULL, pad text NOT NULL DEFAULT 'x');
             INSERT INTO typed (id, ts)
               SELECT g, (now() - CASE WHEN g > 2500 OR g % 50 = 0 THEN 31 + g % 60 ELSE g % 29 END * interval '1 day'
                               - interval '12 hours')::{ty}
               FROM generate_series(1, 5000) g;
             ANALYZE typed;
             SELECT retention_add_policy('typed', 'ts', '30 days');
             CREATE TABLE expected AS
               SELECT count(*) AS n, min(ts)::timestamptz AS oldest, max(ts)::timestamptz AS newest
               FROM typed WHERE ts < now() - interval '30 days';"
        ))
        .unwrap();
        let expired = count(&mut db, "SELECT n FROM expected");
        let total = count(&mut db, "SELECT count(*) FROM typed");
        assert_eq!(expired, 2550, "{ty}");
        let messages = messages_of(&name, "CALL retention_run(300)");
        assert_said(&messages, "public.typed (expire): batches sweep its");
        let sizes = batch_sizes(&messages);
        assert_eq!(sizes.iter().sum::<i64>(), expired, "{ty}: {sizes:?}");
        // The ranges grow over the sparse first half; the first one into
        // the dense second half holds far more than a batch.
        assert_eq!(sizes.iter().max(), Some(&300), "{ty}: {sizes:?}");
        assert_eq!(
            count(
                &mut db,
                "SELECT count(*) FROM typed WHERE ts < now() - interval '30 days'"
            ),
            0,
            "{ty}"
        );
        assert_eq!(
            count(&mut db, "SELECT count(*) FROM typed"),
            total - expired,
            "{ty}"
        );
        assert_history_matches_expected(&mut db, expired);
    }
}

/// The sweep's DELETE calls the budget function in `pg_catalog` with its
/// arguments cast to that function's exact types: functions a role with
/// CREATE on the extension's schema puts there under the same name
/// (polymorphic, or with a default argument, which would make a call by
/// that schema ambiguous) are never called and fail nothing.
#[test]
fn functions_planted_beside_the_sweep_budget_are_not_called() {
    let mut db = spread_db("it_sweep_planted");
    db.batch_execute(
        "DROP ROLE IF EXISTS it_sweep_planter; CREATE ROLE it_sweep_planter;
         GRANT CREATE ON SCHEMA public TO it_sweep_planter;
         CREATE TABLE called (who text); GRANT INSERT ON called TO PUBLIC;
         SET ROLE it_sweep_planter;
         CREATE FUNCTION public._retention_sweep_take(tid, anyelement) RETURNS bool LANGUAGE plpgsql
           AS $$ BEGIN INSERT INTO public.called VALUES (current_user); RETURN true; END $$;
         CREATE FUNCTION public._retention_sweep_take(tid, timestamptz, int DEFAULT 0) RETURNS bool LANGUAGE plpgsql
           AS $$ BEGIN INSERT INTO public.called VALUES (current_user); RETURN true; END $$;
         CREATE FUNCTION public._retention_sweep_take(tid, anycompatible) RETURNS bool LANGUAGE plpgsql
           AS $$ BEGIN INSERT INTO public.called VALUES (current_user); RETURN true; END $$;
         RESET ROLE;",
    )
    .unwrap();
    let total = count(&mut db, "SELECT count(*) FROM spread");
    let messages = messages_of("it_sweep_planted", "CALL retention_run(1000)");
    assert_said(&messages, "public.spread (expire): batches sweep its");
    assert_eq!(count(&mut db, EXPIRED), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM spread"), total - 14000);
    assert_eq!(count(&mut db, "SELECT count(*) FROM called"), 0);
}

/// The budget function is in `pg_catalog`: a table's owner without USAGE on
/// the extension's schema is swept all the same; with EXECUTE on the
/// function revoked, its policy takes the keyset. Every expired row goes.
#[test]
fn an_owner_who_cannot_call_the_sweep_budget_gets_the_keyset() {
    for (case, revoke, strategy) in [
        (
            "revoked",
            "REVOKE EXECUTE ON FUNCTION pg_catalog._retention_sweep_take(tid, timestamptz) FROM PUBLIC",
            "batches take the oldest rows first, by keyset",
        ),
        ("no_usage", "SELECT 1", "batches sweep its"),
    ] {
        let name = format!("it_sweep_ext_{case}");
        let mut db = crate::common::empty_db(&name);
        db.batch_execute(&format!(
            "CREATE SCHEMA ext; CREATE EXTENSION pg_retention SCHEMA ext;
             DROP ROLE IF EXISTS it_sweep_ext_{case}_owner; CREATE ROLE it_sweep_ext_{case}_owner;
             CREATE TABLE spread (id int PRIMARY KEY, ts timestamptz NOT NULL, pad text NOT NULL DEFAULT 'x');
             INSERT INTO spread (id, ts)
               SELECT g, now() - ((g * 7919) % 100) * interval '1 day' - interval '12 hours' FROM generate_series(1, 20000) g;
             ANALYZE spread;
             ALTER TABLE spread OWNER TO it_sweep_ext_{case}_owner;
             SELECT ext.retention_add_policy('spread', 'ts', '30 days');
             {revoke};"
        ))
        .unwrap();
        let messages = messages_of(&name, "CALL ext.retention_run(1000)");
        assert_said(&messages, &format!("public.spread (expire): {strategy}"));
        assert_eq!(count(&mut db, EXPIRED), 0, "{case}");
        assert_eq!(count(&mut db, "SELECT count(*) FROM spread"), 6000, "{case}");
        assert_eq!(
            strings(&mut db, "SELECT status FROM ext.cleanup_runs"),
            ["succeeded"],
            "{case}"
        );
    }
}

/// A table owner's trigger that spends the budget of the statement that
/// deletes from its table (calling the function itself) cannot make the
/// sweep skip rows: a batch whose first refused row is the range's first
/// ends the sweep, and the keyset deletes the rest. Every expired row goes,
/// and no other.
#[test]
fn a_trigger_spending_the_sweep_budget_leaves_the_rest_to_the_keyset() {
    let mut db = spread_db("it_sweep_spent");
    db.batch_execute(
        "CREATE FUNCTION spend() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           FOR i IN 1..1000 LOOP PERFORM pg_catalog._retention_sweep_take('(0,1)', OLD.ts); END LOOP;
           RETURN OLD;
         END $$;
         CREATE TRIGGER spend BEFORE DELETE ON spread FOR EACH ROW EXECUTE FUNCTION spend();",
    )
    .unwrap();
    let total = count(&mut db, "SELECT count(*) FROM spread");
    let messages = messages_of("it_sweep_spent", "CALL retention_run(1000)");
    assert_said(&messages, "public.spread (expire): batches sweep its");
    assert_said(
        &messages,
        "the sweep of \"public\".\"spread\" stopped moving; the rest goes by keyset",
    );
    assert_eq!(count(&mut db, EXPIRED), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM spread"), total - 14000);
}

/// A BEFORE DELETE row trigger that keeps some expired rows (the oldest and
/// the newest among them): the sweep deletes the others, and the history's
/// oldest and newest are those of the rows it deleted, not of the rows the
/// budget admitted.
#[test]
fn rows_a_before_trigger_keeps_are_not_in_the_historys_times() {
    let mut db = spread_db("it_sweep_kept");
    db.batch_execute(
        "CREATE TABLE kept AS
           (SELECT id FROM spread WHERE ts < now() - interval '30 days' ORDER BY ts, id LIMIT 3)
           UNION ALL (SELECT id FROM spread WHERE ts < now() - interval '30 days' ORDER BY ts DESC, id LIMIT 3)
           UNION ALL (SELECT id FROM spread WHERE id % 10 = 0);
         CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF EXISTS (SELECT FROM public.kept k WHERE k.id = OLD.id) THEN RETURN NULL; END IF; RETURN OLD; END $$;
         CREATE TRIGGER keep BEFORE DELETE ON spread FOR EACH ROW EXECUTE FUNCTION keep();
         CREATE TABLE expected AS
           SELECT count(*) AS n, min(ts) AS oldest, max(ts) AS newest FROM spread
           WHERE ts < now() - interval '30 days' AND id NOT IN (SELECT id FROM kept);",
    )
    .unwrap();
    let expected = count(&mut db, "SELECT n FROM expected");
    let kept = count(
        &mut db,
        "SELECT count(*) FROM spread WHERE ts < now() - interval '30 days' AND id IN (SELECT id FROM kept)",
    );
    let messages = messages_of("it_sweep_kept", "CALL retention_run(1000)");
    assert_said(&messages, "public.spread (expire): batches sweep its");
    assert_eq!(count(&mut db, EXPIRED), kept);
    assert_history_matches_expected(&mut db, expected);
}
