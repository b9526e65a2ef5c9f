//! Keys keep their type from the row they were read from to the statement
//! that deletes by them, whatever the session's settings: every key type a
//! DBA uses, as a parent's key carried to its children and as the keyset a
//! batch continues from.

use crate::common::{connect, count, fresh_db, status_and_deleted, strings};

/// Output and input settings that change how values print and parse.
const HOSTILE_SETTINGS: &str = "SET extra_float_digits = -15;
     SET DateStyle = 'SQL, DMY';
     SET IntervalStyle = 'sql_standard';
     SET TimeZone = 'Pacific/Chatham';
     SET bytea_output = 'escape';
     SET lc_monetary = 'C';";

/// The reproduction: two float8 keys that print alike with
/// `extra_float_digits = 0`.
#[test]
fn float_keys_delete_exactly_the_expired_parent_and_its_child() {
    let mut db = fresh_db("it_keys_float");
    db.batch_execute(
        "CREATE TABLE fparent(id float8 PRIMARY KEY, ts timestamptz NOT NULL);
         CREATE TABLE fchild(id int PRIMARY KEY, pid float8 NOT NULL REFERENCES fparent);
         INSERT INTO fparent VALUES (0.3, now()), (0.1::float8 + 0.2, now() - '100 days'::interval);
         INSERT INTO fchild VALUES (1, 0.3), (2, 0.3), (3, 0.1::float8 + 0.2);
         SELECT retention_add_policy('fparent', 'ts', '30 days');
         SET extra_float_digits = 0;",
    )
    .unwrap();
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute()"
        ),
        ("succeeded".to_string(), 2)
    );
    assert_eq!(
        strings(&mut db, "SELECT id::text FROM fchild ORDER BY id"),
        vec!["1", "2"]
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM fparent WHERE id = 0.3::float8"
        ),
        1
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM fparent"), 1);
}

/// One parent table per key type; each parent has young and expired rows
/// whose keys lie as close together as the type allows, two NO ACTION
/// children each (so the keys are carried to the child statements), and
/// every run goes one row per batch (so every key is a keyset boundary).
#[test]
fn every_key_type_survives_hostile_session_settings() {
    let mut db = fresh_db("it_keys_types");
    db.batch_execute(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN posint AS int CHECK (VALUE > 0);",
    )
    .unwrap();
    // Text keys under a non-C collation: ICU's where the server has it (the
    // PostgreSQL 16 and 18 builds from PyPI are built without ICU).
    let icu = count(
        &mut db,
        "SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'",
    ) > 0;
    if icu {
        db.batch_execute("CREATE COLLATION text_keys (provider = icu, locale = 'und')")
            .unwrap();
    } else {
        eprintln!("keys: this server has no ICU; text keys use the libc collation C.utf8");
        db.batch_execute("CREATE COLLATION text_keys (provider = libc, locale = 'C.utf8')")
            .unwrap();
    }
    // (type, expired key expressions, young key expressions)
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        ("int2", "smallint", &["-32768", "1"], &["2", "32767"]),
        ("int4", "int", &["-2147483648", "7"], &["8", "2147483647"]),
        (
            "int8",
            "bigint",
            &["-9223372036854775808", "41"],
            &["42", "9223372036854775807"],
        ),
        (
            "numeric",
            "numeric",
            &["1.00000000000000000000000000001", "-0.5"],
            &["1", "1.0000000000000000000000000001"],
        ),
        (
            "float4",
            "real",
            &["0.1::real", "'NaN'"],
            &["0.10000001::real", "'Infinity'"],
        ),
        (
            "float8",
            "float8",
            &["0.1::float8 + 0.2", "'-Infinity'"],
            &["0.3", "5e-324"],
        ),
        (
            "text_icu",
            "text COLLATE text_keys",
            &["'a'", "'ä'"],
            &["'A'", "'b'"],
        ),
        (
            "varchar",
            "varchar(10)",
            &["'x '", "'Ω'"],
            &["'x'", "'x  '"],
        ),
        (
            "uuid",
            "uuid",
            &["'00000000-0000-0000-0000-000000000001'"],
            &["'00000000-0000-0000-0000-000000000002'"],
        ),
        (
            "date",
            "date",
            &["'2020-01-02'", "'-infinity'"],
            &["'2020-02-01'", "'infinity'"],
        ),
        (
            "ts",
            "timestamp",
            &["'2020-01-01 00:00:00.000001'"],
            &["'2020-01-01 00:00:00.000002'"],
        ),
        (
            "tstz",
            "timestamptz",
            &["'2020-03-29 02:30:00.5+02'"],
            &["'2020-03-29 02:30:00.500001+02'"],
        ),
        (
            "bytea",
            "bytea",
            &["'\\x00'::bytea", "'\\x5c'::bytea"],
            &["'\\x0000'::bytea", "'\\x'::bytea"],
        ),
        ("enum", "mood", &["'sad'"], &["'ok'", "'happy'"]),
        ("domain", "posint", &["1"], &["2"]),
    ];
    let mut setup = String::new();
    for (name, ty, expired, young) in cases {
        setup.push_str(&format!(
            "CREATE TABLE k_{name} (id {ty} PRIMARY KEY, ts timestamptz NOT NULL);
             CREATE TABLE k_{name}_child (id serial PRIMARY KEY, pid {ty} NOT NULL REFERENCES k_{name});
             CREATE TABLE k_{name}_other (id serial PRIMARY KEY, pid {ty} NOT NULL REFERENCES k_{name});
             SELECT retention_add_policy('k_{name}', 'ts', '30 days', batch_size => 1);"
        ));
        for (i, k) in expired.iter().enumerate() {
            setup.push_str(&format!(
                "INSERT INTO k_{name} VALUES ({k}, now() - interval '100 days' + {i} * interval '1 second');
                 INSERT INTO k_{name}_child (pid) VALUES ({k}), ({k});
                 INSERT INTO k_{name}_other (pid) VALUES ({k});"
            ));
        }
        for k in young.iter() {
            setup.push_str(&format!(
                "INSERT INTO k_{name} VALUES ({k}, now());
                 INSERT INTO k_{name}_child (pid) VALUES ({k}), ({k});
                 INSERT INTO k_{name}_other (pid) VALUES ({k});"
            ));
        }
    }
    // A composite key mixing them, its expired and young rows differing in
    // one column only.
    setup.push_str(
        "CREATE TABLE k_mix (f float8, t text COLLATE text_keys, d date, m mood, ts timestamptz NOT NULL,
                             PRIMARY KEY (f, t, d, m));
         CREATE TABLE k_mix_child (id serial PRIMARY KEY, f float8, t text COLLATE text_keys, d date, m mood,
                                   FOREIGN KEY (f, t, d, m) REFERENCES k_mix);
         INSERT INTO k_mix VALUES (0.1::float8 + 0.2, 'a', '2020-01-02', 'sad', now() - interval '100 days'),
                                  (0.3, 'a', '2020-01-02', 'sad', now()),
                                  (0.1::float8 + 0.2, 'A', '2020-01-02', 'sad', now()),
                                  (0.1::float8 + 0.2, 'a', '2020-01-02', 'ok', now());
         INSERT INTO k_mix_child (f, t, d, m) SELECT f, t, d, m FROM k_mix, generate_series(1, 2);
         SELECT retention_add_policy('k_mix', 'ts', '30 days', batch_size => 1);",
    );
    db.batch_execute(&setup).unwrap();

    let expected_left = |db: &mut postgres::Client| -> Vec<String> {
        let mut left = Vec::new();
        for (name, _, _, _) in cases {
            left.push(format!(
                "{name} {} {} {}",
                count(db, &format!("SELECT count(*) FROM k_{name}")),
                count(db, &format!("SELECT count(*) FROM k_{name}_child")),
                count(db, &format!("SELECT count(*) FROM k_{name}_other")),
            ));
            assert_eq!(
                count(
                    db,
                    &format!("SELECT count(*) FROM k_{name} WHERE ts < now() - interval '30 days'")
                ),
                0,
                "{name}: an expired row is left"
            );
        }
        left
    };
    let want: Vec<String> = cases
        .iter()
        .map(|(name, _, _, young)| {
            format!("{name} {} {} {}", young.len(), 2 * young.len(), young.len())
        })
        .collect();

    // One transaction, then commit-per-batch, both under hostile settings.
    let mut hostile = connect("it_keys_types");
    hostile.batch_execute(HOSTILE_SETTINGS).unwrap();
    let run = hostile
        .query_one(
            "SELECT status, error FROM retention_execute(batch_size => 1)",
            &[],
        )
        .unwrap();
    assert_eq!(
        run.get::<_, String>(0),
        "succeeded",
        "{:?}",
        run.get::<_, Option<String>>(1)
    );
    assert_eq!(expected_left(&mut db), want);
    assert_eq!(count(&mut db, "SELECT count(*) FROM k_mix"), 3);
    assert_eq!(count(&mut db, "SELECT count(*) FROM k_mix_child"), 6);

    // The same rows again, deleted by CALL retention_run.
    let mut again = String::new();
    for (name, _, expired, _) in cases {
        for (i, k) in expired.iter().enumerate() {
            again.push_str(&format!(
                "INSERT INTO k_{name} VALUES ({k}, now() - interval '100 days' + {i} * interval '1 second');
                 INSERT INTO k_{name}_child (pid) VALUES ({k}), ({k});
                 INSERT INTO k_{name}_other (pid) VALUES ({k});"
            ));
        }
    }
    again.push_str(
        "INSERT INTO k_mix VALUES (0.1::float8 + 0.2, 'a', '2020-01-02', 'sad', now() - interval '100 days');
         INSERT INTO k_mix_child (f, t, d, m) VALUES (0.1::float8 + 0.2, 'a', '2020-01-02', 'sad');",
    );
    db.batch_execute(&again).unwrap();
    hostile
        .batch_execute("CALL retention_run(batch_size => 1)")
        .unwrap();
    assert_eq!(expected_left(&mut db), want);
    assert_eq!(count(&mut db, "SELECT count(*) FROM k_mix"), 3);
    assert_eq!(count(&mut db, "SELECT count(*) FROM k_mix_child"), 6);
}

/// `-infinity` is older than any cutoff, `infinity` never expires, in every
/// time column type, for stats, preview, runs, history and the monitor.
#[test]
fn infinite_times_expire_or_never_do() {
    let mut db = fresh_db("it_keys_infinity");
    let mut setup = String::new();
    for ty in ["timestamptz", "timestamp", "date"] {
        setup.push_str(&format!(
            "CREATE TABLE inf_{ty} (id int PRIMARY KEY, ts {ty} NOT NULL);
             CREATE TABLE inf_{ty}_child (id int PRIMARY KEY, pid int NOT NULL REFERENCES inf_{ty});
             INSERT INTO inf_{ty} VALUES (1, '-infinity'), (2, now() - interval '10 days'), (3, now()), (4, 'infinity');
             INSERT INTO inf_{ty}_child SELECT id, id FROM inf_{ty};
             SELECT retention_add_policy('inf_{ty}', 'ts', '2 days');"
        ));
    }
    db.batch_execute(&setup).unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s', relation, expired_rows, oldest) FROM retention_stats(exact => true) ORDER BY 1"
        ),
        vec![
            "inf_date 2 -infinity",
            "inf_timestamp 2 -infinity",
            "inf_timestamptz 2 -infinity"
        ]
    );
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s', relation, rows_to_delete, oldest) FROM retention_preview() ORDER BY 1"
        ),
        vec![
            "inf_date 2 -infinity",
            "inf_date_child 2 ",
            "inf_timestamp 2 -infinity",
            "inf_timestamp_child 2 ",
            "inf_timestamptz 2 -infinity",
            "inf_timestamptz_child 2 "
        ]
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention_monitor WHERE oldest_expired_age IS NULL"
        ),
        3
    );
    assert_eq!(
        status_and_deleted(
            &mut db,
            "SELECT status, total_deleted FROM retention_execute()"
        ),
        ("succeeded".to_string(), 12)
    );
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s', t->>'relation', t->>'deleted', t->>'oldest')
             FROM cleanup_runs, jsonb_array_elements(tables) t WHERE (t->>'relation') NOT LIKE '%child' ORDER BY 1"
        ),
        vec![
            "public.inf_date 2 -infinity",
            "public.inf_timestamp 2 -infinity",
            "public.inf_timestamptz 2 -infinity"
        ]
    );
    for ty in ["timestamptz", "timestamp", "date"] {
        assert_eq!(
            strings(
                &mut db,
                &format!("SELECT id::text FROM inf_{ty} ORDER BY id")
            ),
            vec!["3", "4"]
        );
        db.batch_execute(&format!(
            "INSERT INTO inf_{ty} VALUES (5, '-infinity'); INSERT INTO inf_{ty}_child VALUES (5, 5);"
        ))
        .unwrap();
    }
    db.batch_execute("CALL retention_run()").unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1"
        ),
        6
    );
}
