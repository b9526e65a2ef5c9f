//! Partitions that go whole (src/partitions.rs): a policy on a table
//! range-partitioned by its time column detaches and drops the partitions
//! whose whole range is older than its cutoff, deletes what references
//! their rows first, and deletes the other expired rows in batches. The
//! preview lists each such partition as a row of its own; the history
//! records it with its rows and size.

use std::time::Duration;

use crate::common::{connect, count, fresh_db, strings};

/// The preview as `relation: rows (reason)`, in run order.
fn preview(db: &mut postgres::Client) -> Vec<String> {
    strings(
        db,
        "SELECT format('%s: %s (%s)', relation, rows_to_delete, reason) FROM retention_preview() ORDER BY step",
    )
}

/// The last run's tables as `relation: deleted [partition]`, in order.
fn last_run(db: &mut postgres::Client) -> Vec<String> {
    strings(
        db,
        "SELECT format('%s: %s%s', t->>'relation', t->>'deleted', ' [' || (t->>'partition') || ']') \
         FROM (SELECT tables FROM cleanup_runs ORDER BY id DESC LIMIT 1) r, jsonb_array_elements(r.tables) t",
    )
}

/// The partitions of `table` with their row counts, by name.
fn partitions(db: &mut postgres::Client, table: &str) -> Vec<String> {
    let leaves = strings(
        db,
        &format!(
            "SELECT c.relname::text FROM pg_partition_tree('{table}') p JOIN pg_class c ON c.oid = p.relid \
             WHERE p.isleaf ORDER BY c.relname"
        ),
    );
    leaves
        .into_iter()
        .map(|leaf| {
            let rows = count(db, &format!("SELECT count(*) FROM {leaf}"));
            format!("{leaf}={rows}")
        })
        .collect()
}

/// `m`, by day relative to now: `m_open` (unbounded below, 322 rows from
/// 20 to 100 days old), `m_d1` (20-15 days, 120 rows), `m_d2` (15-10 days,
/// itself partitioned: `m_d2a` 72 rows, `m_d2b` 48), `m_cur` (10-5 days,
/// holds the 8-day cutoff, 120 rows of which 48 expired), `m_new` (5 days
/// old to 5 days ahead, 119 rows), `m_def` (default: one row 30 days
/// ahead); one row per hour, half past.
fn daily_db(name: &str) -> postgres::Client {
    let mut db = fresh_db(name);
    db.batch_execute(
        "CREATE TABLE m (id bigint, ts timestamptz NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
         CREATE TABLE m_open PARTITION OF m FOR VALUES FROM (MINVALUE) TO (now() - interval '20 days');
         CREATE TABLE m_d1 PARTITION OF m FOR VALUES FROM (now() - interval '20 days') TO (now() - interval '15 days');
         CREATE TABLE m_d2 PARTITION OF m FOR VALUES FROM (now() - interval '15 days') TO (now() - interval '10 days')
           PARTITION BY RANGE (ts);
         CREATE TABLE m_d2a PARTITION OF m_d2 FOR VALUES FROM (now() - interval '15 days') TO (now() - interval '12 days');
         CREATE TABLE m_d2b PARTITION OF m_d2 FOR VALUES FROM (now() - interval '12 days') TO (now() - interval '10 days');
         CREATE TABLE m_cur PARTITION OF m FOR VALUES FROM (now() - interval '10 days') TO (now() - interval '5 days');
         CREATE TABLE m_new PARTITION OF m FOR VALUES FROM (now() - interval '5 days') TO (now() + interval '5 days');
         CREATE TABLE m_def PARTITION OF m DEFAULT;
         INSERT INTO m SELECT g, now() - g * interval '1 hour' - interval '30 minutes' FROM generate_series(1, 800) g;
         INSERT INTO m VALUES (100000, now() + interval '30 days'), (100001, now() - interval '100 days');
         SELECT retention_add_policy('m', 'ts', '8 days');",
    )
    .unwrap();
    db
}

#[test]
fn partitions_older_than_the_cutoff_go_whole_and_the_rest_by_rows() {
    let mut db = daily_db("it_part_whole");
    assert_eq!(
        preview(&mut db),
        [
            "m_d1: 120 (partition older than cutoff: detached and dropped whole)",
            "m_d2: 120 (partition older than cutoff: detached and dropped whole)",
            "m: 370 (expired (ts older than cutoff))",
        ]
    );
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(
        last_run(&mut db),
        [
            "public.m_d1: 120 [dropped]",
            "public.m_d2: 120 [dropped]",
            "public.m: 370",
        ]
    );
    // The partition unbounded below, the one holding the cutoff and the
    // default one keep their young rows and lose their expired ones.
    assert_eq!(
        partitions(&mut db, "m"),
        ["m_cur=72", "m_def=1", "m_new=119", "m_open=0"]
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM pg_class WHERE relname IN ('m_d1', 'm_d2', 'm_d2a', 'm_d2b')"
        ),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM m WHERE ts < now() - interval '8 days'"
        ),
        0
    );
    // Sizes are recorded for what was dropped.
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM (SELECT tables FROM cleanup_runs ORDER BY id DESC LIMIT 1) r, jsonb_array_elements(r.tables) t \
             WHERE t->>'partition' = 'dropped' AND (t->>'bytes')::bigint > 0"
        ),
        2
    );
}

/// A table counting the rows a DELETE trigger (`count_delete()`) saw.
const AUDIT: &str = "CREATE TABLE audit (n int);
     CREATE FUNCTION count_delete() RETURNS trigger LANGUAGE plpgsql AS
       $$BEGIN INSERT INTO public.audit VALUES (1); RETURN OLD; END$$;";

#[test]
fn a_partition_that_would_skip_what_deleting_its_rows_does_keeps_its_rows_deleted() {
    let mut db = daily_db("it_part_kept");
    // A DELETE trigger on m_d1 (it would not fire for a dropped partition);
    // m_d2b owned by another role than m's owner.
    db.batch_execute(AUDIT).unwrap();
    db.batch_execute(
        "CREATE TRIGGER counted AFTER DELETE ON m_d1 FOR EACH ROW EXECUTE FUNCTION count_delete();
         DROP ROLE IF EXISTS it_part_other; CREATE ROLE it_part_other;
         ALTER TABLE m_d2b OWNER TO it_part_other;",
    )
    .unwrap();
    // m_d2 goes by rows, but m_d2a below it still goes whole.
    assert_eq!(
        preview(&mut db),
        [
            "m_d2a: 72 (partition older than cutoff: detached and dropped whole)",
            "m: 538 (expired (ts older than cutoff))"
        ]
    );
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(
        last_run(&mut db),
        ["public.m_d2a: 72 [dropped]", "public.m: 538"]
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM audit"), 120);
    assert_eq!(
        partitions(&mut db, "m"),
        [
            "m_cur=72",
            "m_d1=0",
            "m_d2b=0",
            "m_def=1",
            "m_new=119",
            "m_open=0"
        ]
    );
    db.batch_execute("DROP TABLE m; DROP ROLE it_part_other")
        .unwrap();
}

#[test]
fn with_drop_partitions_off_every_expired_row_is_deleted_in_batches() {
    let mut db = daily_db("it_part_off");
    db.batch_execute("SET pg_retention.drop_partitions = off")
        .unwrap();
    assert_eq!(
        preview(&mut db),
        ["m: 610 (expired (ts older than cutoff))"]
    );
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(last_run(&mut db), ["public.m: 610"]);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM pg_class WHERE relname = 'm_d1'"
        ),
        1
    );
}

/// `e` by month (January and February 2020, then on to 2100), 2,000 rows an
/// hour apart from 2020-01-01; children: two CASCADE rows per row, one NO
/// ACTION row with a CASCADE grandchild; the cutoff 2020-02-10.
fn referenced_db(name: &str) -> postgres::Client {
    let mut db = fresh_db(name);
    db.batch_execute(
        "CREATE TABLE e (id bigint, ts timestamptz NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
         CREATE TABLE e_1 PARTITION OF e FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
         CREATE TABLE e_2 PARTITION OF e FOR VALUES FROM ('2020-02-01') TO ('2020-03-01');
         CREATE TABLE e_3 PARTITION OF e FOR VALUES FROM ('2020-03-01') TO ('2100-01-01');
         CREATE SCHEMA other;
         CREATE TABLE c_cascade (id bigserial PRIMARY KEY, eid bigint, ets timestamptz,
           FOREIGN KEY (eid, ets) REFERENCES e ON DELETE CASCADE);
         CREATE TABLE other.c_noaction (id bigserial PRIMARY KEY, eid bigint, ets timestamptz,
           FOREIGN KEY (eid, ets) REFERENCES e);
         CREATE TABLE gc (id bigserial PRIMARY KEY, cid bigint REFERENCES other.c_noaction ON DELETE CASCADE);
         CREATE INDEX ON c_cascade (eid, ets); CREATE INDEX ON other.c_noaction (eid, ets); CREATE INDEX ON gc (cid);
         INSERT INTO e SELECT g, '2020-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 2000) g;
         INSERT INTO c_cascade (eid, ets) SELECT id, ts FROM e, generate_series(1, 2);
         INSERT INTO other.c_noaction (eid, ets) SELECT id, ts FROM e;
         INSERT INTO gc (cid) SELECT id FROM other.c_noaction;
         SELECT retention_add_policy('e', 'ts', (now() - '2020-02-10'::timestamptz)::text::interval);",
    )
    .unwrap();
    db
}

#[test]
fn a_referenced_partitioned_table_loses_what_references_a_partition_before_it() {
    let mut db = referenced_db("it_part_referenced");
    let expected_preview = [
        "c_cascade: 1920 (references an expiring row of public.e)",
        "gc: 960 (references an expiring row of other.c_noaction)",
        "other.c_noaction: 960 (references an expiring row of public.e)",
        "e_1: 743 (partition older than cutoff: detached and dropped whole)",
        "e: 217 (expired (ts older than cutoff))",
    ];
    assert_eq!(preview(&mut db), expected_preview);
    // Batches of 100: the partition's 743 rows and their dependents go in
    // one step all the same.
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(
        last_run(&mut db),
        [
            "public.c_cascade: 1920",
            "public.gc: 960",
            "other.c_noaction: 960",
            "public.e_1: 743 [dropped]",
            "public.e: 217",
        ]
    );
    for (table, left) in [
        ("e", 1040),
        ("c_cascade", 2080),
        ("other.c_noaction", 1040),
        ("gc", 1040),
    ] {
        assert_eq!(
            count(&mut db, &format!("SELECT count(*) FROM {table}")),
            left,
            "{table}"
        );
    }
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM other.c_noaction WHERE ets < '2020-02-10'"
        ),
        0
    );
}

#[test]
fn a_partitioned_child_on_aligned_ranges_loses_its_partitions_first() {
    let mut db = fresh_db("it_part_aligned");
    db.batch_execute(
        "CREATE TABLE p (id bigint, ts timestamptz NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
         CREATE TABLE p_1 PARTITION OF p FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
         CREATE TABLE p_2 PARTITION OF p FOR VALUES FROM ('2020-02-01') TO ('2100-01-01');
         CREATE TABLE c (id bigint, ts timestamptz NOT NULL, pid bigint NOT NULL, pts timestamptz NOT NULL,
           PRIMARY KEY (id, ts), FOREIGN KEY (pid, pts) REFERENCES p) PARTITION BY RANGE (ts);
         CREATE TABLE c_1 PARTITION OF c FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
         CREATE TABLE c_2 PARTITION OF c FOR VALUES FROM ('2020-02-01') TO ('2100-01-01');
         CREATE INDEX ON c (pid, pts);
         INSERT INTO p SELECT g, '2020-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 1000) g;
         -- The cutoff is 2020-02-01 plus the moments between here and the
         -- run: the row of 2020-02-01 00:00 in p_2 (and c_2) is expired.
         INSERT INTO c SELECT id, ts, id, ts FROM p;
         SELECT retention_add_policy('c', 'ts', (now() - '2020-02-01'::timestamptz)::text::interval);
         SELECT retention_add_policy('p', 'ts', (now() - '2020-02-01'::timestamptz)::text::interval);",
    )
    .unwrap();
    assert_eq!(
        preview(&mut db),
        [
            "c_1: 743 (partition older than cutoff: detached and dropped whole)",
            "c: 1 (expired (ts older than cutoff); references an expiring row of public.p)",
            "p_1: 743 (partition older than cutoff: detached and dropped whole)",
            "p: 1 (expired (ts older than cutoff))",
        ]
    );
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(
        last_run(&mut db),
        [
            "public.c_1: 743 [dropped]",
            "public.c: 1",
            "public.p_1: 743 [dropped]",
            "public.p: 1"
        ]
    );
    assert_eq!(partitions(&mut db, "p"), ["p_2=256"]);
    assert_eq!(partitions(&mut db, "c"), ["c_2=256"]);
}

/// A partitioned table busy past `partition_lock_timeout`: its partitions
/// are not detached this run, their expired rows are deleted in batches
/// (a table always busy still keeps its retention), and the next run drops
/// the empty partitions.
#[test]
fn a_partition_whose_table_is_busy_has_its_rows_deleted_in_batches() {
    let mut db = daily_db("it_part_busy");
    // A reader in an open transaction: detaching needs m's strongest lock.
    let mut reader = connect("it_part_busy");
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM m WHERE ts > now();")
        .unwrap();
    db.batch_execute("SET pg_retention.partition_lock_timeout = '200ms'")
        .unwrap();
    let started = std::time::Instant::now();
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        last_run(&mut db),
        [
            "public.m_d1: 0 [not removed whole, its rows are deleted in batches: canceling statement due to lock timeout (SQLSTATE 55P03)]",
            "public.m_d2: 0 [not removed whole, its rows are deleted in batches: canceling statement due to lock timeout (SQLSTATE 55P03)]",
            "public.m: 610",
        ]
    );
    assert_eq!(
        partitions(&mut db, "m"),
        [
            "m_cur=72",
            "m_d1=0",
            "m_d2a=0",
            "m_d2b=0",
            "m_def=1",
            "m_new=119",
            "m_open=0"
        ]
    );
    assert_eq!(
        strings(
            &mut db,
            "SELECT status FROM cleanup_runs ORDER BY id DESC LIMIT 1"
        ),
        ["succeeded"]
    );
    reader.batch_execute("COMMIT").unwrap();
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(
        last_run(&mut db),
        ["public.m_d1: 0 [dropped]", "public.m_d2: 0 [dropped]"]
    );
    assert_eq!(
        partitions(&mut db, "m"),
        ["m_cur=72", "m_def=1", "m_new=119", "m_open=0"]
    );
}

/// pg_partman (Debian's 4.7, for PostgreSQL 15; none is installed for the
/// other versions) creates the partitions ahead, pg_retention removes the
/// old ones: a daily `readings` table from ten days back, a 5-day policy.
#[test]
fn a_table_pg_partman_manages_loses_its_old_partitions_and_partman_goes_on() {
    let mut db = fresh_db("it_part_partman");
    let major = count(
        &mut db,
        "SELECT current_setting('server_version_num')::bigint / 10000",
    );
    if major != 15 {
        eprintln!("pg_partman is installed for PostgreSQL 15 only: skipped on {major}");
        return;
    }
    db.batch_execute(
        "CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman;
         CREATE TABLE readings (id bigint NOT NULL, ts timestamptz NOT NULL, v int, PRIMARY KEY (id, ts))
           PARTITION BY RANGE (ts);
         SELECT partman.create_parent('public.readings', 'ts', 'native', 'daily', p_premake := 3,
                                      p_start_partition := (now() - interval '10 days')::date::text);
         INSERT INTO readings SELECT g, now() - g * interval '1 hour' - interval '30 minutes', g
           FROM generate_series(0, 239) g;
         SELECT retention_add_policy('readings', 'ts', '5 days');",
    )
    .unwrap();
    let expired = count(
        &mut db,
        "SELECT count(*) FROM readings WHERE ts < now() - interval '5 days'",
    );
    // Every day wholly older than the cutoff goes whole: at least the four
    // days after the first (which holds rows from its middle on).
    let whole = strings(
        &mut db,
        "SELECT format('public.%s: %s [dropped]', relation, rows_to_delete) FROM retention_preview() \
         WHERE reason LIKE 'partition older than cutoff%' ORDER BY step",
    );
    assert!(whole.len() >= 4, "{whole:?}");
    assert_eq!(
        count(
            &mut db,
            "SELECT sum(rows_to_delete)::bigint FROM retention_preview()"
        ),
        expired
    );
    db.batch_execute("CALL retention_run(100)").unwrap();
    let run = last_run(&mut db);
    assert_eq!(run[..whole.len()], whole[..]);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM readings WHERE ts < now() - interval '5 days'"
        ),
        0
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM readings"),
        240 - expired
    );
    // partman's maintenance goes on over what is left: it lists none of
    // the partitions removed, and still creates those ahead.
    db.batch_execute("SELECT partman.run_maintenance('public.readings')")
        .unwrap();
    let listed = strings(
        &mut db,
        "SELECT format('public.%s', partition_tablename) FROM partman.show_partitions('public.readings')",
    );
    for removed in &whole {
        let name = removed.split(':').next().unwrap();
        assert!(!listed.iter().any(|l| l == name), "{name} in {listed:?}");
    }
    assert!(
        count(
            &mut db,
            "SELECT count(*) FROM partman.show_partitions('public.readings') s \
             WHERE s.partition_tablename >= 'readings_p' || to_char(now() + interval '3 days', 'YYYY_MM_DD')"
        ) >= 1
    );
}

/// A partition with an expire policy of its own (a longer one: a legal
/// hold) keeps its rows by that policy, as its batches do.
#[test]
fn a_partition_with_a_policy_of_its_own_is_never_dropped_by_its_tables() {
    let mut db = fresh_db("it_part_hold");
    db.batch_execute(
        "CREATE TABLE m (id bigint, ts timestamptz NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
         CREATE TABLE m_hold (id bigint, ts timestamptz NOT NULL, PRIMARY KEY (id, ts));
         SELECT retention_add_policy('m_hold', 'ts', '10 years');
         ALTER TABLE m ATTACH PARTITION m_hold FOR VALUES FROM (now() - interval '20 days') TO (now() - interval '15 days');
         CREATE TABLE m_d2 PARTITION OF m FOR VALUES FROM (now() - interval '15 days') TO (now() - interval '10 days');
         CREATE TABLE m_new PARTITION OF m FOR VALUES FROM (now() - interval '10 days') TO (now() + interval '5 days');
         INSERT INTO m SELECT g, now() - g * interval '1 hour' - interval '30 minutes' FROM generate_series(1, 479) g;
         SELECT retention_add_policy('m', 'ts', '8 days');",
    )
    .unwrap();
    let mut planned = preview(&mut db);
    planned.sort();
    assert_eq!(
        planned,
        [
            "m: 48 (expired (ts older than cutoff))",
            "m_d2: 120 (partition older than cutoff: detached and dropped whole)",
            "m_hold: 0 (expired (ts older than cutoff))",
        ]
    );
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(partitions(&mut db, "m"), ["m_hold=120", "m_new=191"]);
}

/// A publication of the table's deletes: a subscriber would keep the rows
/// of a dropped partition (no DELETE is published for them).
#[test]
fn a_table_whose_deletes_are_published_keeps_its_rows_deleted_in_batches() {
    let mut db = daily_db("it_part_published");
    db.batch_execute("SET client_min_messages = error; CREATE PUBLICATION it_part_pub FOR TABLE m")
        .unwrap();
    assert_eq!(
        preview(&mut db),
        ["m: 610 (expired (ts older than cutoff))"]
    );
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(last_run(&mut db), ["public.m: 610"]);
}

/// Between two steps of a `retention_run` a DELETE trigger appears under a
/// partition listed to go whole: under its lock the partition is checked
/// again, found changed, and its rows are deleted in batches (the trigger
/// fires for each).
#[test]
fn a_partition_that_changed_after_it_was_listed_keeps_its_rows_deleted() {
    let mut db = daily_db("it_part_changed");
    db.batch_execute(AUDIT).unwrap();
    let mut run = connect("it_part_changed");
    run.batch_execute("SET pg_retention.batch_pause = '3s'")
        .unwrap();
    let call = std::thread::spawn(move || run.batch_execute("CALL retention_run(100)"));
    // m_d1 goes first (partitions in name order); during the pause after
    // it, the trigger is added to m_d2b.
    crate::run::wait_for("m_d1 dropped", Duration::from_secs(30), || {
        count(
            &mut db,
            "SELECT count(*) FROM pg_class WHERE relname = 'm_d1'",
        ) == 0
    });
    db.batch_execute(
        "CREATE TRIGGER counted AFTER DELETE ON m_d2b FOR EACH ROW EXECUTE FUNCTION count_delete()",
    )
    .unwrap();
    call.join().unwrap().unwrap();
    assert_eq!(
        last_run(&mut db),
        [
            "public.m_d1: 120 [dropped]",
            "public.m_d2: 0 [not removed whole, its rows are deleted in batches: partition public.m_d2 changed since the run listed it (SQLSTATE 40001)]",
            "public.m: 490",
        ]
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM audit"), 48);
    assert_eq!(
        partitions(&mut db, "m"),
        [
            "m_cur=72",
            "m_d2a=0",
            "m_d2b=0",
            "m_def=1",
            "m_new=119",
            "m_open=0"
        ]
    );
}

/// A `timestamp` key compared with the cutoff in a zone with a daylight
/// saving gap: 02:00-03:00 on 2026-03-08 does not exist in New York, so
/// the partition [02:00, 03:00) ends at 07:00 UTC but its row "02:40"
/// stands for 07:40 UTC, after a 07:20 UTC cutoff. Its rows are checked
/// under the lock by the batches' own test, and it keeps them in batches.
#[test]
fn a_partition_holding_a_row_the_batches_would_keep_is_not_dropped() {
    let mut db = fresh_db("it_part_gap");
    db.batch_execute(
        "SET TimeZone = 'America/New_York';
         CREATE TABLE h (id int, ts timestamp NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
         CREATE TABLE h_01 PARTITION OF h FOR VALUES FROM ('2026-03-08 01:00') TO ('2026-03-08 02:00');
         CREATE TABLE h_02 PARTITION OF h FOR VALUES FROM ('2026-03-08 02:00') TO ('2026-03-08 03:00');
         CREATE TABLE h_03 PARTITION OF h FOR VALUES FROM ('2026-03-08 03:00') TO (MAXVALUE);
         INSERT INTO h VALUES (1, '2026-03-08 01:30'), (2, '2026-03-08 02:10'), (3, '2026-03-08 02:40'), (4, '2026-03-08 03:30');
         -- In seconds: days would be subtracted on New York's calendar.
         SELECT retention_add_policy('h', 'ts',
           make_interval(secs => extract(epoch FROM now() - '2026-03-08 07:20+00'::timestamptz)::float8));",
    )
    .unwrap();
    assert_eq!(
        preview(&mut db),
        [
            "h_01: 1 (partition older than cutoff: detached and dropped whole)",
            "h: 1 (expired (ts older than cutoff))",
        ]
    );
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(
        last_run(&mut db),
        [
            "public.h_01: 1 [dropped]",
            "public.h_02: 0 [not removed whole, its rows are deleted in batches: 1 rows of partition public.h_02 are not older than the cutoff (SQLSTATE 40001)]",
            "public.h: 1"
        ]
    );
    assert_eq!(
        strings(&mut db, "SELECT id::text FROM h ORDER BY id"),
        ["3", "4"]
    );
}

/// `retention_set_partition_action(..., 'detach', schema)`: the partitions
/// wholly older than the cutoff are detached and kept, moved to the schema
/// (pg_partman's `retention_keep_table` and `retention_schema`); the other
/// expired rows are deleted as before.
#[test]
fn partitions_to_keep_are_detached_and_moved_to_their_schema() {
    let mut db = daily_db("it_part_keep");
    db.batch_execute(
        "CREATE SCHEMA archive;
         SELECT retention_set_partition_action('m', 'detach', 'archive');",
    )
    .unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s', partition_action, partition_schema) FROM retention_policies"
        ),
        ["detach archive"]
    );
    assert_eq!(
        preview(&mut db),
        [
            "m_d1: 120 (partition older than cutoff: detached whole, kept as a table in schema archive)",
            "m_d2: 120 (partition older than cutoff: detached whole, kept as a table in schema archive)",
            "m: 370 (expired (ts older than cutoff))",
        ]
    );
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(
        last_run(&mut db),
        [
            "public.m_d1: 120 [detached, moved to schema archive]",
            "public.m_d2: 120 [detached, moved to schema archive]",
            "public.m: 370",
        ]
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM archive.m_d1"), 120);
    assert_eq!(count(&mut db, "SELECT count(*) FROM archive.m_d2"), 120);
    assert_eq!(
        partitions(&mut db, "m"),
        ["m_cur=72", "m_def=1", "m_new=119", "m_open=0"]
    );
    // Back to dropping; then arguments that make no sense are refused.
    db.batch_execute("SELECT retention_set_partition_action('m')")
        .unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s', partition_action, partition_schema) FROM retention_policies"
        ),
        ["drop "]
    );
    for (sql, state) in [
        (
            "SELECT retention_set_partition_action('m', 'keep')",
            "22023",
        ),
        (
            "SELECT retention_set_partition_action('m', 'drop', 'archive')",
            "22023",
        ),
        (
            "SELECT retention_set_partition_action('m', 'detach', 'no_such_schema')",
            "3F000",
        ),
        (
            "SELECT retention_set_partition_action('m', 'detach', 'pg_catalog')",
            "22023",
        ),
        ("SELECT retention_set_partition_action('m', NULL)", "22004"),
        (
            "SELECT retention_set_partition_action('archive.m_d1', 'detach')",
            "42704",
        ),
    ] {
        assert_eq!(crate::common::sqlstate_of(&mut db, sql), state, "{sql}");
    }
}

/// A partition to keep that cannot be moved (a table of its name is in the
/// schema already) is left whole for the next run: its rows are never
/// deleted instead.
#[test]
fn a_partition_to_keep_that_cannot_be_kept_is_left_whole() {
    let mut db = daily_db("it_part_keep_clash");
    db.batch_execute(
        "CREATE SCHEMA archive; CREATE TABLE archive.m_d1 (x int);
         SELECT retention_set_partition_action('m', 'detach', 'archive');",
    )
    .unwrap();
    db.batch_execute("CALL retention_run(100)").unwrap();
    assert_eq!(
        last_run(&mut db),
        [
            "public.m_d1: 0 [left whole for the next run: relation \"m_d1\" already exists in schema \"archive\" (SQLSTATE 42P07)]",
            "public.m_d2: 120 [detached, moved to schema archive]",
            "public.m: 370",
        ]
    );
    assert_eq!(
        partitions(&mut db, "m"),
        ["m_cur=72", "m_d1=120", "m_def=1", "m_new=119", "m_open=0"]
    );
}

/// `retention_partitions()`: every partition below a policy's table, its
/// bounds, and what the next run does with it.
#[test]
fn the_partitions_a_run_would_remove_are_listed_with_their_bounds() {
    let mut db = daily_db("it_part_list");
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s: %s', relation, partition, level, next_run) FROM retention_partitions()"
        ),
        [
            "m m_cur 1: its expired rows, if any, deleted in batches",
            "m m_d1 1: dropped whole",
            "m m_d2 1: dropped whole",
            "m m_def 1: its expired rows, if any, deleted in batches",
            "m m_new 1: its expired rows, if any, deleted in batches",
            "m m_open 1: its expired rows, if any, deleted in batches",
            "m m_d2a 2: goes with the partition above it",
            "m m_d2b 2: goes with the partition above it",
        ]
    );
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s', partition, left(bounds, 29)) FROM retention_partitions() \
             WHERE partition IN ('m_def'::regclass, 'm_open'::regclass) ORDER BY 1"
        ),
        ["m_def DEFAULT", "m_open FOR VALUES FROM (MINVALUE) TO"]
    );
    db.batch_execute("SELECT retention_set_partition_action('m', 'detach')")
        .unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention_partitions() WHERE next_run = 'detached whole'"
        ),
        2
    );
}
