//! Randomized differential test: random FK graphs (depth up to 4, several
//! parents per table, composite keys, NO ACTION / RESTRICT / CASCADE / SET
//! NULL, two schemas, nullable FK columns), random key types (integers,
//! numeric, floats, text under several collations, varchar, uuid, date,
//! timestamps, bytea, enums, domains, composite keys mixing them), hash
//! partitioned tables (foreign keys on the partitioned table or on one
//! partition only), inheritance children (with or without a policy of their
//! own), row-level security enabled, `±infinity` times, random data, random
//! expire and orphan policies and batch sizes, policies broken after they
//! were added (time column renamed, a trigger that raises), and the preview
//! and run under random session settings (extra_float_digits, DateStyle,
//! IntervalStyle, TimeZone, search_path). The rows that must remain are
//! computed in plain SQL (a fixpoint over the generated FKs, not the
//! extension's planner) before the run; every table is compared after it.
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

/// Key column types; a key value is made from a small integer so that a
/// child can reference it with the same expression.
#[derive(Clone, Copy, PartialEq, Debug)]
enum KeyType {
    Int2,
    Int4,
    Int8,
    Numeric,
    Float4,
    Float8,
    Text,
    Varchar,
    Uuid,
    Date,
    Timestamp,
    Timestamptz,
    Bytea,
    Enum,
    Domain,
}

const KEY_TYPES: [KeyType; 15] = [
    KeyType::Int2,
    KeyType::Int4,
    KeyType::Int8,
    KeyType::Numeric,
    KeyType::Float4,
    KeyType::Float8,
    KeyType::Text,
    KeyType::Varchar,
    KeyType::Uuid,
    KeyType::Date,
    KeyType::Timestamp,
    KeyType::Timestamptz,
    KeyType::Bytea,
    KeyType::Enum,
    KeyType::Domain,
];

impl KeyType {
    fn sql(self, case: u64, collation: &str) -> String {
        match self {
            KeyType::Int2 => "int2".into(),
            KeyType::Int4 => "int4".into(),
            KeyType::Int8 => "int8".into(),
            KeyType::Numeric => "numeric".into(),
            KeyType::Float4 => "float4".into(),
            KeyType::Float8 => "float8".into(),
            KeyType::Text => format!("text COLLATE \"{collation}\""),
            KeyType::Varchar => "varchar(20)".into(),
            KeyType::Uuid => "uuid".into(),
            KeyType::Date => "date".into(),
            KeyType::Timestamp => "timestamp".into(),
            KeyType::Timestamptz => "timestamptz".into(),
            KeyType::Bytea => "bytea".into(),
            KeyType::Enum => format!("d{case}_a.label"),
            KeyType::Domain => format!("d{case}_a.positive"),
        }
    }

    /// The value made from `n`: values whose text form loses or changes
    /// them under some settings (floats under extra_float_digits = 0,
    /// dates and times under DateStyle / TimeZone).
    fn value(self, case: u64, n: i64) -> String {
        match self {
            KeyType::Int2 => format!("{n}::int2"),
            KeyType::Int4 => format!("{n}"),
            KeyType::Int8 => format!("({n}::int8 * 1000000007)"),
            KeyType::Numeric => format!("({n}::numeric / 7)"),
            KeyType::Float4 => format!("({n}::float4 / 3)"),
            KeyType::Float8 => format!("({n}::float8 / 10 + 0.2::float8)"),
            KeyType::Text => format!("('é' || {n})"),
            KeyType::Varchar => format!("('v ' || {n})::varchar(20)"),
            KeyType::Uuid => format!("md5('{n}')::uuid"),
            KeyType::Date => format!("(date '2000-01-01' + {n})"),
            KeyType::Timestamp => {
                format!("(timestamp '2000-01-01 00:00:00.123456' + {n} * interval '1 hour')")
            }
            KeyType::Timestamptz => {
                format!("(timestamptz '2000-01-01 00:00:00.654321+00' + {n} * interval '1 day')")
            }
            KeyType::Bytea => format!("decode(md5('{n}'), 'hex')"),
            KeyType::Enum => format!("'v{n}'::d{case}_a.label"),
            KeyType::Domain => format!("{n}::d{case}_a.positive"),
        }
    }
}

/// How a policy is broken after it was added.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Broken {
    /// Its time column renamed: the policy cannot load.
    RenamedTime,
    /// A trigger raising on every delete of its table.
    RaisingTrigger,
}

struct Fk {
    parent: usize,
    columns: Vec<String>,
    action: OnDelete,
    /// Declared on this partition of a partitioned table only.
    on_partition: Option<u64>,
}

struct Table {
    name: String,
    key: Vec<String>,
    key_types: Vec<KeyType>,
    ts_nullable: bool,
    fks: Vec<Fk>,
    depth: usize,
    expire_days: Option<u64>,
    orphan_days: Option<u64>,
    /// Hash partitions on the first key column.
    partitions: Option<u64>,
    /// An inheritance child `<name>_c`, with its own policy's days or none.
    inheritor: Option<Option<u64>>,
    broken: Option<Broken>,
    rls: bool,
}

impl Table {
    /// The table's own rows (not an inheritance child's).
    fn own(&self) -> String {
        if self.inheritor.is_some() {
            format!("ONLY {}", self.name)
        } else {
            self.name.clone()
        }
    }

    fn partition(&self, j: u64) -> String {
        format!("{}_p{j}", self.name)
    }

    /// The rows a foreign key binds: those of the partition it is declared
    /// on, or all of the table's own.
    fn bound_by(&self, fk: &Fk) -> String {
        match fk.on_partition {
            Some(j) => self.partition(j),
            None => self.own(),
        }
    }

    fn inheritor_name(&self) -> String {
        format!("{}_c", self.name)
    }

    /// Whether the policy on this table runs (is not broken).
    fn expires(&self) -> Option<u64> {
        self.expire_days.filter(|_| self.broken.is_none())
    }
}

/// How many cases of each kind ran, for the test's report.
#[derive(Default, Debug)]
struct Tally {
    key_types: std::collections::BTreeMap<String, u64>,
    composite_mixed: u64,
    partitioned: u64,
    partition_fks: u64,
    inheritors: u64,
    inheritors_with_policy: u64,
    broken_renamed: u64,
    broken_trigger: u64,
    rls: u64,
    infinities: u64,
    settings: u64,
}

fn list(cols: &[String], alias: &str) -> String {
    cols.iter()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn generate(rng: &mut Rng, case: u64, tally: &mut Tally) -> Vec<Table> {
    let n = rng.range(2, 7) as usize;
    let mut tables: Vec<Table> = Vec::new();
    for i in 0..n {
        let schema = if rng.chance(50) { "a" } else { "b" };
        let key = if rng.chance(30) {
            vec!["k1".to_string(), "k2".to_string()]
        } else {
            vec!["id".to_string()]
        };
        // Half the tables keep int keys; the rest draw a type per column.
        let key_types: Vec<KeyType> = key
            .iter()
            .map(|_| {
                if rng.chance(50) {
                    KeyType::Int4
                } else {
                    KEY_TYPES[rng.below(KEY_TYPES.len() as u64) as usize]
                }
            })
            .collect();
        for t in &key_types {
            *tally.key_types.entry(format!("{t:?}")).or_default() += 1;
        }
        if key_types.len() == 2 && key_types[0] != key_types[1] {
            tally.composite_mixed += 1;
        }
        let partitions = rng.chance(15).then(|| rng.range(2, 3));
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
                let on_partition = partitions
                    .filter(|_| rng.chance(40))
                    .map(|count| rng.below(count));
                if on_partition.is_some() {
                    tally.partition_fks += 1;
                }
                fks.push(Fk {
                    parent,
                    columns,
                    action,
                    on_partition,
                });
            }
        }
        if partitions.is_some() {
            tally.partitioned += 1;
        }
        tables.push(Table {
            name: format!("d{case}_{schema}.t{i}"),
            key,
            key_types,
            ts_nullable: rng.chance(20),
            fks,
            depth,
            expire_days: rng.chance(40).then(|| rng.range(5, 50)),
            orphan_days: None,
            partitions,
            inheritor: None,
            broken: None,
            rls: rng.chance(10),
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
    for i in 0..n {
        let referenced = tables.iter().any(|t| t.fks.iter().any(|f| f.parent == i));
        let t = &mut tables[i];
        let plain_expire = t.expire_days.is_some() && t.orphan_days.is_none();
        // An inheritance child under a plain (not partitioned) table with an
        // expire policy: its rows go by the nearest policy.
        if plain_expire && t.partitions.is_none() && rng.chance(20) {
            let own = rng.chance(50).then(|| rng.range(5, 50));
            tally.inheritors += 1;
            tally.inheritors_with_policy += u64::from(own.is_some());
            t.inheritor = Some(own);
        } else if plain_expire && t.inheritor.is_none() && rng.chance(8) {
            // Broken after it was added. A raising trigger only where no
            // other policy reaches the table and it has nothing to clear
            // first: a policy failing mid-way leaves what its committed
            // batches deleted, which the reference does not model.
            if rng.chance(50) {
                tally.broken_renamed += 1;
                t.broken = Some(Broken::RenamedTime);
            } else if !referenced && t.fks.is_empty() {
                tally.broken_trigger += 1;
                t.broken = Some(Broken::RaisingTrigger);
            }
        }
        if t.rls {
            tally.rls += 1;
        }
    }
    tables
}

fn create_and_fill(
    db: &mut Client,
    rng: &mut Rng,
    case: u64,
    tables: &[Table],
    collation: &str,
    tally: &mut Tally,
) {
    let labels: Vec<String> = (0..40).map(|n| format!("'v{n}'")).collect();
    let mut sql = format!(
        "CREATE SCHEMA d{case}_a; CREATE SCHEMA d{case}_b; CREATE SCHEMA d{case}_ref;
         CREATE TYPE d{case}_a.label AS ENUM ({});
         CREATE DOMAIN d{case}_a.positive AS int CHECK (VALUE >= 0);\n",
        labels.join(", ")
    );
    for t in tables {
        let mut cols: Vec<String> = t
            .key
            .iter()
            .zip(&t.key_types)
            .map(|(k, ty)| format!("{k} {} NOT NULL", ty.sql(case, collation)))
            .collect();
        cols.push(format!(
            "ts timestamptz{}",
            if t.ts_nullable { "" } else { " NOT NULL" }
        ));
        for fk in &t.fks {
            let parent = &tables[fk.parent];
            for (c, ty) in fk.columns.iter().zip(&parent.key_types) {
                cols.push(format!("{c} {}", ty.sql(case, collation)));
            }
        }
        cols.push(format!("PRIMARY KEY ({})", t.key.join(", ")));
        for fk in t.fks.iter().filter(|fk| fk.on_partition.is_none()) {
            cols.push(format!(
                "FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}",
                fk.columns.join(", "),
                tables[fk.parent].name,
                tables[fk.parent].key.join(", "),
                fk.action.sql()
            ));
        }
        let partitioned = match t.partitions {
            Some(_) => format!(" PARTITION BY HASH ({})", t.key[0]),
            None => String::new(),
        };
        sql.push_str(&format!(
            "CREATE TABLE {} ({}){partitioned};\n",
            t.name,
            cols.join(", ")
        ));
        if let Some(count) = t.partitions {
            for j in 0..count {
                sql.push_str(&format!(
                    "CREATE TABLE {} PARTITION OF {} FOR VALUES WITH (MODULUS {count}, REMAINDER {j});\n",
                    t.partition(j),
                    t.name
                ));
            }
        }
        for fk in &t.fks {
            if let Some(j) = fk.on_partition {
                sql.push_str(&format!(
                    "ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {};\n",
                    t.partition(j),
                    fk.columns.join(", "),
                    tables[fk.parent].name,
                    tables[fk.parent].key.join(", "),
                    fk.action.sql()
                ));
            }
            if rng.chance(70) {
                sql.push_str(&format!(
                    "CREATE INDEX ON {} ({});\n",
                    t.name,
                    fk.columns.join(", ")
                ));
            }
        }
        if t.inheritor.is_some() {
            sql.push_str(&format!(
                "CREATE TABLE {c} () INHERITS ({p}); ALTER TABLE {c} ADD PRIMARY KEY ({k});\n",
                c = t.inheritor_name(),
                p = t.name,
                k = t.key.join(", ")
            ));
        }
        if t.rls {
            sql.push_str(&format!(
                "ALTER TABLE {} ENABLE ROW LEVEL SECURITY;\n",
                t.name
            ));
        }
    }
    db.batch_execute(&sql).unwrap();

    // Rows, parents first so children can reference them.
    let mut keys: Vec<Vec<Vec<i64>>> = Vec::new();
    for t in tables {
        let rows = rng.range(5, 40);
        let mut table_keys = Vec::new();
        let mut values = Vec::new();
        let mut inherited = Vec::new();
        for r in 0..rows {
            let key: Vec<i64> = if t.key.len() == 2 {
                vec![(r / 3) as i64, (r % 3) as i64]
            } else {
                vec![r as i64]
            };
            let ts = if t.ts_nullable && rng.chance(10) {
                "NULL".to_string()
            } else if rng.chance(4) {
                tally.infinities += 1;
                if rng.chance(60) {
                    "'-infinity'".to_string()
                } else {
                    "'infinity'".to_string()
                }
            } else {
                format!("now() - interval '{} days 12 hours'", rng.range(0, 60))
            };
            let mut v: Vec<String> = key
                .iter()
                .zip(&t.key_types)
                .map(|(k, ty)| ty.value(case, *k))
                .collect();
            v.push(ts);
            if t.inheritor.is_some() && rng.chance(40) {
                // Same keys as the parent's rows (a key repeats across the
                // tree); no foreign key binds an inheritor's rows.
                let mut row = v[..t.key.len()].to_vec();
                row.push(format!(
                    "now() - interval '{} days 12 hours'",
                    rng.range(0, 60)
                ));
                row.extend(
                    t.fks
                        .iter()
                        .flat_map(|fk| fk.columns.iter().map(|_| "NULL".to_string())),
                );
                inherited.push(format!("({})", row.join(", ")));
            }
            for fk in &t.fks {
                let parent = &tables[fk.parent];
                let parent_keys: &Vec<Vec<i64>> = &keys[fk.parent];
                if parent_keys.is_empty() || rng.chance(15) {
                    v.extend(fk.columns.iter().map(|_| "NULL".to_string()));
                } else {
                    let pk = &parent_keys[rng.below(parent_keys.len() as u64) as usize];
                    v.extend(
                        pk.iter()
                            .zip(&parent.key_types)
                            .map(|(k, ty)| ty.value(case, *k)),
                    );
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
        if !inherited.is_empty() {
            db.batch_execute(&format!(
                "INSERT INTO {} VALUES {};",
                t.inheritor_name(),
                inherited.join(", ")
            ))
            .unwrap();
        }
        keys.push(table_keys);
    }
}

/// After the policies are added: breaks some of them.
fn break_policies(db: &mut Client, tables: &[Table]) {
    let mut sql = String::new();
    for t in tables {
        match t.broken {
            Some(Broken::RenamedTime) => {
                sql.push_str(&format!(
                    "ALTER TABLE {} RENAME COLUMN ts TO ts_renamed;\n",
                    t.name
                ));
            }
            Some(Broken::RaisingTrigger) => {
                let f = format!("{}_refuse", t.name);
                sql.push_str(&format!(
                    "CREATE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'refused'; END$$;
                     CREATE TRIGGER refuse BEFORE DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {f}();\n",
                    t.name
                ));
            }
            None => {}
        }
    }
    db.batch_execute(&sql).unwrap();
}

/// The reference: `d{case}_ref.del{i}` holds the keys of table i that must
/// go, `d{case}_ref.exp{i}` the rows that must remain (`delc{i}`, `expc{i}`
/// for its inheritance child). Returns the total to delete.
fn reference(db: &mut Client, case: u64, tables: &[Table]) -> i64 {
    let r = format!("d{case}_ref");
    let older = |days: Option<u64>, alias: &str| match days {
        Some(d) => format!("{alias}.ts < now() - interval '{d} days'"),
        None => "false".into(),
    };
    let mut sql = String::new();
    for (i, t) in tables.iter().enumerate() {
        sql.push_str(&format!(
            "CREATE TABLE {r}.del{i} AS SELECT {} FROM {} t WHERE {};\n",
            list(&t.key, "t"),
            t.own(),
            older(t.expires(), "t")
        ));
        if let Some(own) = t.inheritor {
            // The nearest policy: the child's own, else its parent's.
            sql.push_str(&format!(
                "CREATE TABLE {r}.delc{i} AS SELECT {} FROM {} t WHERE {};
                 CREATE TABLE {r}.expc{i} AS SELECT * FROM {} t WHERE NOT ({});\n",
                list(&t.key, "t"),
                t.inheritor_name(),
                older(own.or(t.expires()), "t"),
                t.inheritor_name(),
                older(own.or(t.expires()), "t"),
            ));
        }
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
                            tn = t.bound_by(fk),
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
                        c.bound_by(fk),
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
                        tn = t.own(),
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
        if t.inheritor.is_some() {
            total += count(db, &format!("SELECT count(*) FROM {r}.delc{i}"));
        }
        sql.push_str(&format!(
            "CREATE TABLE {r}.exp{i} AS SELECT * FROM {} t WHERE ({}) NOT IN (SELECT * FROM {r}.del{i});\n",
            t.own(),
            list(&t.key, "t")
        ));
        for fk in t.fks.iter().filter(|f| f.action == OnDelete::SetNull) {
            let set: Vec<String> = fk.columns.iter().map(|c| format!("{c} = NULL")).collect();
            sql.push_str(&format!(
                "UPDATE {r}.exp{i} SET {} WHERE ({}) IN (SELECT * FROM {r}.del{}) AND ({}) IN (SELECT {} FROM {});\n",
                set.join(", "),
                fk.columns.join(", "),
                fk.parent,
                t.key.join(", "),
                t.key.join(", "),
                t.bound_by(fk)
            ));
        }
    }
    db.batch_execute(&sql).unwrap();
    total
}

/// Random session settings under which the preview and the run must give
/// the same rows: text forms of keys and times change with each.
fn hostile_settings(rng: &mut Rng, case: u64) -> String {
    let pick = |rng: &mut Rng, options: &[&str]| {
        options[rng.below(options.len() as u64) as usize].to_string()
    };
    format!(
        "SET extra_float_digits = {}; SET DateStyle = '{}'; SET IntervalStyle = '{}'; SET TimeZone = '{}'; SET search_path = d{case}_b, public;",
        pick(rng, &["0", "-15", "1", "3"]),
        pick(rng, &["ISO, MDY", "SQL, DMY", "German, DMY", "Postgres, YMD"]),
        pick(rng, &["postgres", "sql_standard", "iso_8601", "postgres_verbose"]),
        pick(rng, &["UTC", "Pacific/Chatham", "America/St_Johns", "Asia/Kathmandu"]),
    )
}

fn run_case(
    db: &mut Client,
    seed: u64,
    case: u64,
    collation: &str,
    tally: &mut Tally,
) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let tables = generate(&mut rng, case, tally);
    create_and_fill(db, &mut rng, case, &tables, collation, tally);
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
        if let Some(Some(d)) = t.inheritor {
            policies.push_str(&format!(
                "SELECT retention_add_policy('{}', 'ts', '{d} days');\n",
                t.inheritor_name()
            ));
        }
    }
    db.batch_execute(&policies)
        .map_err(|e| format!("adding policies: {e}"))?;
    break_policies(db, &tables);
    let expected_total = reference(db, case, &tables);
    let broken: Vec<&Table> = tables.iter().filter(|t| t.broken.is_some()).collect();

    let settings = hostile_settings(&mut rng, case);
    tally.settings += 1;
    db.batch_execute(&settings).unwrap();
    // A raising trigger's table is previewed (the preview fires no
    // trigger) but not deleted (nothing else reaches it); a renamed time
    // column's policy previews 0.
    let raising: Vec<String> = broken
        .iter()
        .filter(|t| t.broken == Some(Broken::RaisingTrigger))
        .map(|t| format!("'{}'::regclass", t.name))
        .collect();
    let not_broken = if raising.is_empty() {
        String::new()
    } else {
        format!(" WHERE relation <> ALL (ARRAY[{}])", raising.join(", "))
    };
    let preview = count(
        db,
        &format!(
            "SELECT coalesce(sum(rows_to_delete), 0)::bigint FROM retention_preview(){not_broken}"
        ),
    );
    let preview_rows = crate::common::strings(
        db,
        "SELECT format('%s %s %s', relation, rows_to_delete, reason) FROM retention_preview() ORDER BY step",
    );
    // Per table: what the preview says each table loses, to compare with
    // what the run's history says it lost. A partition's rows count with its
    // partitioned table's: a row reachable through keys declared on both
    // goes at whichever step reaches it first, which depends on how the
    // run's batches fall.
    let preview_tables = crate::common::strings(
        db,
        &format!(
            "SELECT t::text || ' ' || sum(n) FROM (SELECT coalesce(pg_partition_root(relation)::oid, relation::oid) AS t, rows_to_delete AS n \
             FROM retention_preview(){not_broken}) p GROUP BY t HAVING sum(n) > 0 ORDER BY 1"
        ),
    );
    let batch = [1, 2, 3, 7, 50, 1000][rng.below(6) as usize];
    let deleted = if rng.chance(50) {
        let called = db.batch_execute(&format!("CALL retention_run({batch})"));
        match (&called, broken.is_empty()) {
            (Ok(()), true) => {}
            (Err(_), false) => {}
            _ => {
                return Err(format!(
                    "run: {called:?} with broken policies {:?}",
                    broken.iter().map(|t| &t.name).collect::<Vec<_>>()
                ))
            }
        }
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
    db.batch_execute("RESET ALL").unwrap();
    let (status, error): (String, Option<String>) = {
        let row = db
            .query_one(
                "SELECT status, error FROM cleanup_runs ORDER BY id DESC LIMIT 1",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let want_status = if broken.is_empty() {
        "succeeded"
    } else {
        "failed"
    };
    if status != want_status {
        return Err(format!("run {status} (expected {want_status}): {error:?}"));
    }
    for b in &broken {
        let name = b.name.split('.').nth(1).unwrap_or_default();
        if !error.as_deref().unwrap_or_default().contains(name) {
            return Err(format!(
                "the run's error does not name {}: {error:?}",
                b.name
            ));
        }
    }
    let r = format!("d{case}_ref");
    let mut compared: Vec<(String, String)> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.own(), format!("{r}.exp{i}")))
        .collect();
    compared.extend(
        tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.inheritor.is_some())
            .map(|(i, t)| (t.inheritor_name(), format!("{r}.expc{i}"))),
    );
    for (table, expected) in &compared {
        let extra = count(db, &format!("SELECT count(*) FROM (SELECT * FROM {table} EXCEPT ALL SELECT * FROM {expected}) x"));
        let missing = count(db, &format!("SELECT count(*) FROM (SELECT * FROM {expected} EXCEPT ALL SELECT * FROM {table}) x"));
        if extra != 0 || missing != 0 {
            return Err(format!(
                "{table}: {extra} rows that should be gone (or changed) are there, {missing} rows that should remain are not"
            ));
        }
    }
    // Per table too: counts the run could not read off its own statements
    // (cascades) must be exact as well. An inheritance child's rows count
    // under the table whose policy deleted them.
    for (i, t) in tables.iter().enumerate() {
        let mut expected = count(db, &format!("SELECT count(*) FROM {r}.del{i}"));
        if let Some(own) = t.inheritor {
            let child = count(db, &format!("SELECT count(*) FROM {r}.delc{i}"));
            if own.is_some() {
                let child_table = t.inheritor_name();
                check_history_count(
                    db,
                    &child_table,
                    &format!("SELECT '{child_table}'::regclass"),
                    child,
                )?;
            } else {
                expected += child;
            }
        }
        // Dependents through a foreign key declared on one partition count
        // under that partition.
        let tree = match t.partitions {
            Some(_) => format!("SELECT relid FROM pg_partition_tree('{}')", t.name),
            None => format!("SELECT '{}'::regclass", t.name),
        };
        check_history_count(db, &t.name, &tree, expected)?;
    }
    if deleted != expected_total {
        return Err(format!(
            "run reports {deleted} deleted, reference {expected_total}"
        ));
    }
    if preview != expected_total {
        return Err(format!(
            "preview says {preview}, reference {expected_total}: {preview_rows:?}"
        ));
    }
    let history_tables = crate::common::strings(
        db,
        "SELECT t::text || ' ' || sum(n) FROM (SELECT coalesce(pg_partition_root((e->>'relid')::oid)::oid, (e->>'relid')::oid) AS t, \
           (e->>'deleted')::bigint AS n FROM (SELECT tables FROM cleanup_runs ORDER BY id DESC LIMIT 1) r, jsonb_array_elements(r.tables) e) h \
         GROUP BY t HAVING sum(n) > 0 ORDER BY 1",
    );
    if preview_tables != history_tables {
        return Err(format!(
            "per table (relid count), the preview says {preview_tables:?}, the history {history_tables:?}: {preview_rows:?}"
        ));
    }
    db.batch_execute(&format!(
        "DROP SCHEMA d{case}_a, d{case}_b, d{case}_ref CASCADE; TRUNCATE retention_config;"
    ))
    .unwrap();
    Ok(())
}

/// The rows the last run's history counts for `tables` (a query of relids)
/// are those the reference expects of `table`.
fn check_history_count(
    db: &mut Client,
    table: &str,
    tables: &str,
    expected: i64,
) -> Result<(), String> {
    let reported = count(
        db,
        &format!(
            "SELECT coalesce(sum((e->>'deleted')::bigint), 0)::bigint \
             FROM (SELECT tables FROM cleanup_runs ORDER BY id DESC LIMIT 1) r, jsonb_array_elements(r.tables) e \
             WHERE (e->>'relid')::oid IN ({tables})"
        ),
    );
    if reported != expected {
        return Err(format!(
            "{table}: the history reports {reported} rows deleted, the reference {expected}"
        ));
    }
    Ok(())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A collation other than C for text keys: ICU's where the build has ICU,
/// else the C library's UTF-8 one.
fn text_collation(db: &mut Client) -> String {
    db.query_one(
        "SELECT collname::text FROM pg_collation \
         WHERE collname IN ('de-x-icu', 'en_US.utf8', 'C.utf8', 'POSIX') \
           AND collencoding IN (-1, pg_char_to_encoding(current_setting('server_encoding'))) \
         ORDER BY array_position(ARRAY['de-x-icu', 'en_US.utf8', 'C.utf8', 'POSIX'], collname::text) LIMIT 1",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn random_schemas_delete_exactly_what_the_reference_computes() {
    let base = env_u64("PG_RETENTION_DIFF_SEED", 20_261_126);
    let cases = env_u64("PG_RETENTION_DIFF_CASES", 300);
    let mut db = fresh_db("it_differential");
    let collation = text_collation(&mut db);
    let mut tally = Tally::default();
    for case in 0..cases {
        let seed = base + case;
        if let Err(e) = run_case(&mut db, seed, case, &collation, &mut tally) {
            panic!(
                "differential case {case} (seed {seed}) failed: {e}\n\
                 replay: PG_RETENTION_DIFF_SEED={seed} PG_RETENTION_DIFF_CASES=1 bash scripts/differential.sh"
            );
        }
    }
    eprintln!("differential: {cases} cases, text keys collated by {collation}; {tally:?}");
}
