//! Randomized differential test: random FK graphs (depth up to 4, several
//! parents per table, composite keys, NO ACTION / RESTRICT / CASCADE / SET
//! NULL, two schemas, nullable FK columns), random data, random expire and
//! orphan policies and batch sizes. The rows that must remain are computed
//! in plain SQL (a fixpoint over the generated FKs, not the extension's
//! planner) before the run; every table is compared after it.
//!
//! Seeded: `PG_RETENTION_DIFF_SEED` (default below) and
//! `PG_RETENTION_DIFF_CASES` (default 300). A failure prints the seed of the
//! case and the command that replays it alone.

use postgres::Client;

use crate::common::{count, fresh_db};

/// xorshift64*: small, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum OnDelete {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
}

impl OnDelete {
    fn sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
        }
    }
}

struct Fk {
    parent: usize,
    columns: Vec<String>,
    action: OnDelete,
}

struct Table {
    name: String,
    key: Vec<String>,
    ts_nullable: bool,
    fks: Vec<Fk>,
    depth: usize,
    expire_days: Option<u64>,
    orphan_days: Option<u64>,
}

fn list(cols: &[String], alias: &str) -> String {
    cols.iter()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn generate(rng: &mut Rng, case: u64) -> Vec<Table> {
    let n = rng.range(2, 7) as usize;
    let mut tables: Vec<Table> = Vec::new();
    for i in 0..n {
        let schema = if rng.chance(50) { "a" } else { "b" };
        let key = if rng.chance(30) {
            vec!["k1".to_string(), "k2".to_string()]
        } else {
            vec!["id".to_string()]
        };
        let mut fks = Vec::new();
        let mut depth = 0;
        if i > 0 {
            for _ in 0..rng.range(0, 2) {
                let parent = rng.below(i as u64) as usize;
                if fks.iter().any(|f: &Fk| f.parent == parent) || tables[parent].depth >= 4 {
                    continue;
                }
                let action = match rng.below(4) {
                    0 => OnDelete::NoAction,
                    1 => OnDelete::Restrict,
                    2 => OnDelete::Cascade,
                    _ => OnDelete::SetNull,
                };
                let columns = tables[parent]
                    .key
                    .iter()
                    .map(|k| format!("p{parent}_{k}"))
                    .collect();
                depth = depth.max(tables[parent].depth + 1);
                fks.push(Fk {
                    parent,
                    columns,
                    action,
                });
            }
        }
        tables.push(Table {
            name: format!("d{case}_{schema}.t{i}"),
            key,
            ts_nullable: rng.chance(20),
            fks,
            depth,
            expire_days: rng.chance(40).then(|| rng.range(5, 50)),
            orphan_days: None,
        });
    }
    for i in 0..n {
        let referenced = tables.iter().any(|t| t.fks.iter().any(|f| f.parent == i));
        if referenced && rng.chance(40) {
            tables[i].orphan_days = Some(rng.range(1, 40));
        }
    }
    if tables
        .iter()
        .all(|t| t.expire_days.is_none() && t.orphan_days.is_none())
    {
        tables[0].expire_days = Some(rng.range(5, 50));
    }
    tables
}

fn create_and_fill(db: &mut Client, rng: &mut Rng, case: u64, tables: &[Table]) {
    let mut sql =
        format!("CREATE SCHEMA d{case}_a; CREATE SCHEMA d{case}_b; CREATE SCHEMA d{case}_ref;\n");
    for t in tables {
        let mut cols: Vec<String> = t.key.iter().map(|k| format!("{k} int NOT NULL")).collect();
        cols.push(format!(
            "ts timestamptz{}",
            if t.ts_nullable { "" } else { " NOT NULL" }
        ));
        for fk in &t.fks {
            for c in &fk.columns {
                cols.push(format!("{c} int"));
            }
        }
        cols.push(format!("PRIMARY KEY ({})", t.key.join(", ")));
        for fk in &t.fks {
            cols.push(format!(
                "FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}",
                fk.columns.join(", "),
                tables[fk.parent].name,
                tables[fk.parent].key.join(", "),
                fk.action.sql()
            ));
        }
        sql.push_str(&format!("CREATE TABLE {} ({});\n", t.name, cols.join(", ")));
        for fk in &t.fks {
            if rng.chance(70) {
                sql.push_str(&format!(
                    "CREATE INDEX ON {} ({});\n",
                    t.name,
                    fk.columns.join(", ")
                ));
            }
        }
    }
    db.batch_execute(&sql).unwrap();

    // Rows, parents first so children can reference them.
    let mut keys: Vec<Vec<Vec<i64>>> = Vec::new();
    for t in tables {
        let rows = rng.range(5, 40);
        let mut table_keys = Vec::new();
        let mut values = Vec::new();
        for r in 0..rows {
            let key: Vec<i64> = if t.key.len() == 2 {
                vec![(r / 3) as i64, (r % 3) as i64]
            } else {
                vec![r as i64]
            };
            let ts = if t.ts_nullable && rng.chance(10) {
                "NULL".to_string()
            } else {
                format!("now() - interval '{} days 12 hours'", rng.range(0, 60))
            };
            let mut v: Vec<String> = key.iter().map(|k| k.to_string()).collect();
            v.push(ts);
            for fk in &t.fks {
                let parent_keys: &Vec<Vec<i64>> = &keys[fk.parent];
                if parent_keys.is_empty() || rng.chance(15) {
                    v.extend(fk.columns.iter().map(|_| "NULL".to_string()));
                } else {
                    let pk = &parent_keys[rng.below(parent_keys.len() as u64) as usize];
                    v.extend(pk.iter().map(|k| k.to_string()));
                }
            }
            values.push(format!("({})", v.join(", ")));
            table_keys.push(key);
        }
        db.batch_execute(&format!(
            "INSERT INTO {} VALUES {};",
            t.name,
            values.join(", ")
        ))
        .unwrap();
        keys.push(table_keys);
    }
}

/// The reference: `d{case}_ref.del{i}` holds the keys of table i that must
/// go, `d{case}_ref.exp{i}` the rows that must remain.
fn reference(db: &mut Client, case: u64, tables: &[Table]) -> i64 {
    let r = format!("d{case}_ref");
    let mut sql = String::new();
    for (i, t) in tables.iter().enumerate() {
        let cond = match t.expire_days {
            Some(d) => format!("ts < now() - interval '{d} days'"),
            None => "false".into(),
        };
        sql.push_str(&format!(
            "CREATE TABLE {r}.del{i} AS SELECT {} FROM {} WHERE {cond};\n",
            t.key.join(", "),
            t.name
        ));
    }
    db.batch_execute(&sql).unwrap();

    let insert_dependents = |db: &mut Client| -> u64 {
        let mut added = 0;
        for (i, t) in tables.iter().enumerate() {
            for fk in t.fks.iter().filter(|f| f.action != OnDelete::SetNull) {
                added += db
                    .execute(
                        &format!(
                            "INSERT INTO {r}.del{i} SELECT {k} FROM {tn} c WHERE ({fkc}) IN (SELECT * FROM {r}.del{p})
                             AND ({k}) NOT IN (SELECT * FROM {r}.del{i})",
                            k = list(&t.key, "c"),
                            tn = t.name,
                            fkc = list(&fk.columns, "c"),
                            p = fk.parent
                        ),
                        &[],
                    )
                    .unwrap();
            }
        }
        added
    };
    while insert_dependents(db) > 0 {}

    loop {
        let mut added = 0;
        for (i, t) in tables.iter().enumerate() {
            let Some(days) = t.orphan_days else { continue };
            let mut not_referenced = Vec::new();
            for (j, c) in tables.iter().enumerate() {
                for fk in c.fks.iter().filter(|f| f.parent == i) {
                    let join: Vec<String> = fk
                        .columns
                        .iter()
                        .zip(&t.key)
                        .map(|(fc, k)| format!("x.{fc} = o.{k}"))
                        .collect();
                    not_referenced.push(format!(
                        "NOT EXISTS (SELECT 1 FROM {} x WHERE {} AND ({}) NOT IN (SELECT * FROM {r}.del{j}))",
                        c.name,
                        join.join(" AND "),
                        list(&c.key, "x")
                    ));
                }
            }
            added += db
                .execute(
                    &format!(
                        "INSERT INTO {r}.del{i} SELECT {k} FROM {tn} o WHERE o.ts < now() - interval '{days} days'
                         AND ({k}) NOT IN (SELECT * FROM {r}.del{i}) {extra}",
                        k = list(&t.key, "o"),
                        tn = t.name,
                        extra = not_referenced.iter().map(|n| format!("AND {n}")).collect::<String>()
                    ),
                    &[],
                )
                .unwrap();
        }
        if added == 0 {
            break;
        }
    }

    let mut total = 0;
    let mut sql = String::new();
    for (i, t) in tables.iter().enumerate() {
        total += count(db, &format!("SELECT count(*) FROM {r}.del{i}"));
        sql.push_str(&format!(
            "CREATE TABLE {r}.exp{i} AS SELECT * FROM {} t WHERE ({}) NOT IN (SELECT * FROM {r}.del{i});\n",
            t.name,
            list(&t.key, "t")
        ));
        for fk in t.fks.iter().filter(|f| f.action == OnDelete::SetNull) {
            let set: Vec<String> = fk.columns.iter().map(|c| format!("{c} = NULL")).collect();
            sql.push_str(&format!(
                "UPDATE {r}.exp{i} SET {} WHERE ({}) IN (SELECT * FROM {r}.del{});\n",
                set.join(", "),
                fk.columns.join(", "),
                fk.parent
            ));
        }
    }
    db.batch_execute(&sql).unwrap();
    total
}

fn run_case(db: &mut Client, seed: u64, case: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let tables = generate(&mut rng, case);
    create_and_fill(db, &mut rng, case, &tables);
    let mut policies = String::from("TRUNCATE retention_config;\n");
    for t in &tables {
        if let Some(d) = t.expire_days {
            policies.push_str(&format!(
                "SELECT retention_add_policy('{}', 'ts', '{d} days');\n",
                t.name
            ));
        }
        if let Some(d) = t.orphan_days {
            policies.push_str(&format!(
                "SELECT retention_add_orphan_policy('{}', 'ts', '{d} days');\n",
                t.name
            ));
        }
    }
    db.batch_execute(&policies)
        .map_err(|e| format!("adding policies: {e}"))?;
    let expected_total = reference(db, case, &tables);

    let preview = count(
        db,
        "SELECT coalesce(sum(rows_to_delete), 0)::bigint FROM retention_preview()",
    );
    let batch = [1, 2, 3, 7, 50, 1000][rng.below(6) as usize];
    let deleted = if rng.chance(50) {
        db.batch_execute(&format!("CALL retention_run({batch})"))
            .map_err(|e| format!("run: {e}"))?;
        count(
            db,
            "SELECT total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1",
        )
    } else {
        count(
            db,
            &format!("SELECT total_deleted FROM retention_execute({batch})"),
        )
    };
    let status: String = db
        .query_one(
            "SELECT status FROM cleanup_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    if status != "succeeded" {
        let error: Option<String> = db
            .query_one(
                "SELECT error FROM cleanup_runs ORDER BY id DESC LIMIT 1",
                &[],
            )
            .unwrap()
            .get(0);
        return Err(format!("run {status}: {error:?}"));
    }
    for (i, t) in tables.iter().enumerate() {
        let extra = count(db, &format!("SELECT count(*) FROM (SELECT * FROM {} EXCEPT ALL SELECT * FROM d{case}_ref.exp{i}) x", t.name));
        let missing = count(db, &format!("SELECT count(*) FROM (SELECT * FROM d{case}_ref.exp{i} EXCEPT ALL SELECT * FROM {}) x", t.name));
        if extra != 0 || missing != 0 {
            return Err(format!(
                "{}: {extra} rows that should be gone (or changed) are there, {missing} rows that should remain are not",
                t.name
            ));
        }
    }
    // Per table too: counts the run could not read off its own statements
    // (cascades) must be exact as well.
    for (i, t) in tables.iter().enumerate() {
        let expected = count(db, &format!("SELECT count(*) FROM d{case}_ref.del{i}"));
        let reported = count(
            db,
            &format!(
                "SELECT coalesce(sum((e->>'deleted')::bigint), 0)::bigint \
                 FROM (SELECT tables FROM cleanup_runs ORDER BY id DESC LIMIT 1) r, jsonb_array_elements(r.tables) e \
                 WHERE (e->>'relid')::oid = '{}'::regclass",
                t.name
            ),
        );
        if reported != expected {
            return Err(format!(
                "{}: the history reports {reported} rows deleted, the reference {expected}",
                t.name
            ));
        }
    }
    if deleted != expected_total {
        return Err(format!(
            "run reports {deleted} deleted, reference {expected_total}"
        ));
    }
    if preview != expected_total {
        return Err(format!(
            "preview says {preview}, reference {expected_total}"
        ));
    }
    db.batch_execute(&format!(
        "DROP SCHEMA d{case}_a, d{case}_b, d{case}_ref CASCADE; TRUNCATE retention_config;"
    ))
    .unwrap();
    Ok(())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_schemas_delete_exactly_what_the_reference_computes() {
    let base = env_u64("PG_RETENTION_DIFF_SEED", 20_261_126);
    let cases = env_u64("PG_RETENTION_DIFF_CASES", 300);
    let mut db = fresh_db("it_differential");
    for case in 0..cases {
        let seed = base + case;
        if let Err(e) = run_case(&mut db, seed, case) {
            panic!(
                "differential case {case} (seed {seed}) failed: {e}\n\
                 replay: PG_RETENTION_DIFF_SEED={seed} PG_RETENTION_DIFF_CASES=1 bash scripts/differential.sh"
            );
        }
    }
}
