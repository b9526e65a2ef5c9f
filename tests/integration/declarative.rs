//! Policies as code: `retention_export()` and `retention_apply()`.

use crate::common::{count, fresh_db, sqlstate_of, strings};

const TABLES: &str = "CREATE SCHEMA app;
     CREATE TABLE app.logs (id int PRIMARY KEY, ts timestamptz NOT NULL, created timestamptz NOT NULL DEFAULT now());
     CREATE TABLE app.\"Owners\" (id int PRIMARY KEY, created timestamptz NOT NULL);
     CREATE TABLE app.jobs (id int PRIMARY KEY, ts timestamptz NOT NULL);";

fn apply(db: &mut postgres::Client, declaration: &str, dry_run: bool, prune: bool) -> Vec<String> {
    strings(
        db,
        &format!(
            "SELECT concat_ws(' ', action, relation, kind, changes)
             FROM retention_apply('{declaration}', dry_run => {dry_run}, prune => {prune})"
        ),
    )
}

fn export(db: &mut postgres::Client) -> String {
    strings(db, "SELECT retention_export()::text").remove(0)
}

#[test]
fn a_declaration_is_applied_idempotently_and_exported_back() {
    let mut source = fresh_db("it_declared_source");
    source.batch_execute(TABLES).unwrap();
    source
        .batch_execute(
            "SELECT retention_add_policy('app.logs', 'ts', '30 days', label => 'nightly', batch_size => 500);
             SELECT retention_add_orphan_policy('app.\"Owners\"', 'created', '1 day');
             SELECT retention_set_partition_action('app.logs', 'detach');",
        )
        .unwrap();
    let declaration = export(&mut source);
    assert_eq!(
        declaration,
        r#"{"version": 1, "policies": [{"kind": "orphan", "label": null, "table": "app.\"Owners\"", "retain": "1 day", "enabled": true, "batch_size": null, "time_column": "created", "partition_action": null, "partition_schema": null}, {"kind": "expire", "label": "nightly", "table": "app.logs", "retain": "30 days", "enabled": true, "batch_size": 500, "time_column": "ts", "partition_action": "detach", "partition_schema": null}]}"#
    );

    // Another database, same tables: the dry run (the default) says what
    // applying adds and changes nothing.
    let mut target = fresh_db("it_declared_target");
    target.batch_execute(TABLES).unwrap();
    assert_eq!(
        strings(
            &mut target,
            &format!("SELECT concat_ws(' ', action, relation, kind) FROM retention_apply('{declaration}')")
        ),
        ["add app.\"Owners\" orphan", "add app.logs expire"]
    );
    assert_eq!(
        count(&mut target, "SELECT count(*) FROM retention_config"),
        0
    );
    apply(&mut target, &declaration, false, false);
    assert_eq!(export(&mut target), declaration);
    // Applied again: nothing to do.
    assert_eq!(
        apply(&mut target, &declaration, false, false),
        [
            "unchanged app.\"Owners\" orphan",
            "unchanged app.logs expire"
        ]
    );

    // A changed declaration: each difference named; a new time column
    // replaces the policy; with prune, what is not declared goes.
    let changed = r#"{"policies": [
        {"table": "app.logs", "time_column": "ts", "retain": "720:00:00", "label": null, "batch_size": 200, "enabled": false},
        {"table": "app.jobs", "time_column": "ts", "retain": "7 days"}]}"#;
    assert_eq!(
        apply(&mut target, changed, true, true),
        [
            "alter app.logs expire retain 30 days -> 720:00:00; label nightly -> NULL; batch_size 500 -> 200; enabled true -> false",
            "add app.jobs expire",
            "remove app.\"Owners\" orphan"
        ]
    );
    apply(&mut target, changed, false, true);
    assert_eq!(
        strings(
            &mut target,
            "SELECT format('%s %s %s %s %s %s %s', relation, kind, time_column, retain, label, batch_size, enabled)
             FROM retention_policies ORDER BY id"
        ),
        [
            "app.logs expire ts 720:00:00  200 f",
            "app.jobs expire ts 7 days   t"
        ]
    );
    assert_eq!(
        apply(
            &mut target,
            r#"{"policies": [{"table": "app.logs", "time_column": "created", "retain": "720:00:00", "batch_size": 200, "enabled": false}]}"#,
            false,
            false
        ),
        [
            "replace app.logs expire time_column changes",
            "keep app.jobs expire not declared; prune removes it"
        ]
    );
    assert_eq!(
        strings(&mut target, "SELECT time_column::text FROM retention_policies WHERE relation = 'app.logs'::regclass"),
        ["created"]
    );
}

#[test]
fn a_bad_declaration_is_refused_whole() {
    let mut db = fresh_db("it_declared_bad");
    db.batch_execute(TABLES).unwrap();
    db.batch_execute(
        "DROP ROLE IF EXISTS it_declared_owner; DROP ROLE IF EXISTS it_declared_stranger;
         CREATE ROLE it_declared_owner; CREATE ROLE it_declared_stranger;
         GRANT USAGE ON SCHEMA app TO it_declared_owner;
         ALTER TABLE app.jobs OWNER TO it_declared_owner;
         CREATE TABLE app.theirs (id int PRIMARY KEY, ts timestamptz NOT NULL);
         ALTER TABLE app.theirs OWNER TO it_declared_stranger;",
    )
    .unwrap();
    let good = r#"{"table": "app.jobs", "time_column": "ts", "retain": "7 days"}"#;
    let cases = [
        (r#"{"policies": [{"table": "app.jobs", "time_column": "ts", "retian": "7 days"}]}"#.to_string(), "22023"),
        (r#"{"policies": [{"table": "app.jobs", "time_column": "ts"}]}"#.to_string(), "22023"),
        (r#"{"version": 2, "policies": []}"#.to_string(), "22023"),
        (format!(r#"{{"policies": [{good}, {good}]}}"#), "22023"),
        (r#"{"policies": [{"table": "app.nope", "time_column": "ts", "retain": "7 days"}]}"#.to_string(), "42P01"),
        (r#"{"policies": [{"table": "app.jobs", "time_column": "ts", "retain": "7 dayz"}]}"#.to_string(), "22007"),
        (r#"{"policies": [{"table": "app.jobs", "time_column": "nope", "retain": "7 days"}]}"#.to_string(), "42703"),
        (r#"{"policies": [{"table": "app.jobs", "kind": "orphan", "time_column": "ts", "retain": "7 days", "partition_action": "drop"}]}"#.to_string(), "22023"),
        // Everything or nothing: the first policy would be added, the second
        // is another role's table.
        (
            format!(r#"{{"policies": [{good}, {{"table": "app.theirs", "time_column": "ts", "retain": "1 day"}}]}}"#),
            "42501",
        ),
    ];
    for (declaration, expected) in cases {
        let got = sqlstate_of(
            &mut db,
            &format!("SET ROLE it_declared_owner; SELECT * FROM retention_apply('{declaration}', dry_run => false)"),
        );
        db.batch_execute("RESET ROLE").unwrap();
        assert_eq!(got, expected, "{declaration}");
        assert_eq!(
            count(&mut db, "SELECT count(*) FROM retention_config"),
            0,
            "{declaration}"
        );
    }
    let message = crate::common::error_message(
        &mut db,
        r#"SELECT * FROM retention_apply('{"policies": [{"table": "app.jobs", "time_column": "ts", "retian": "7 days"}]}')"#,
    );
    assert!(message.contains("unknown field `retian`"), "{message}");
}

/// A table named without its schema is found on the caller's search_path,
/// as `retention_add_policy('logs', ...)` finds it; an orphan policy's
/// window may be called `grace`, as `retention_add_orphan_policy` calls it.
#[test]
fn names_are_found_on_the_search_path_and_grace_is_an_orphan_window() {
    let mut db = fresh_db("it_declared_search_path");
    db.batch_execute(TABLES).unwrap();
    db.batch_execute("SET search_path = app, public").unwrap();
    assert_eq!(
        apply(
            &mut db,
            r#"{"policies": [{"table": "logs", "time_column": "ts", "retain": "30 days"},
                             {"table": "\"Owners\"", "kind": "orphan", "time_column": "created", "grace": "1 day"}]}"#,
            false,
            false
        ),
        ["add app.logs expire", "add app.\"Owners\" orphan"]
    );
    db.batch_execute("RESET search_path").unwrap();
    assert_eq!(
        strings(
            &mut db,
            "SELECT format('%s %s %s', relation, kind, retain) FROM retention_policies ORDER BY id"
        ),
        ["app.logs expire 30 days", "app.\"Owners\" orphan 1 day"]
    );
}
