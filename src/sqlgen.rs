//! The SQL a run and a preview execute, built in plain Rust from table shapes.
//!
//! Every identifier is double-quoted here (always, so that no keyword list is
//! needed); every value is a `$n` parameter; every operator is spelled
//! `OPERATOR(pg_catalog.x)` (and the statements run with the search_path
//! pinned to `pg_catalog, pg_temp`, see `security.rs`), so no operator can
//! resolve to a function of the user's. Key values travel between statements
//! as parameters of their own type (arrays of the column's type for sets of
//! rows): never as text.

use crate::planner::{ForeignKey, RelId};

/// A column and its type: as `format_type` spells it (schema-qualified
/// outside `pg_catalog`), and its oid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_sql: String,
    pub type_oid: u32,
}

impl Column {
    /// The system column `tableoid`: which table of an inheritance tree a
    /// row is in.
    pub fn table_oid() -> Column {
        Column {
            name: "tableoid".into(),
            type_sql: "oid".into(),
            type_oid: 26,
        }
    }
}

/// `OPERATOR(pg_catalog.op)`: a built-in operator whatever the search_path.
pub fn op(op: &str) -> String {
    format!("OPERATOR(pg_catalog.{op})")
}

/// What the generated SQL needs to know of a table.
#[derive(Clone, Debug)]
pub struct TableShape {
    pub relid: RelId,
    /// `"schema"."table"`, quoted.
    pub qualified: String,
    /// The row identity used to delete exactly the rows selected: the primary
    /// key, or else a unique index over NOT NULL columns.
    pub key: Vec<Column>,
    /// Columns read from each selected row: the key, then any other column
    /// that a child's foreign key references.
    pub carried: Vec<Column>,
    /// The time column of the table's policy, for date ranges in the history.
    pub time_column: Option<Column>,
    /// An ordinary table (not partitioned, not foreign): its deletes, also
    /// those of a cascade, are counted in its own statistics entry.
    pub plain_table: bool,
    /// A partitioned table: its rows live in its leaf partitions.
    pub partitioned: bool,
    /// Other tables inherit from it (`pg_class.relhassubclass`; it may stay
    /// true after they are gone).
    pub has_inheritors: bool,
    /// Tables inheriting from it whose rows its policy leaves alone: those
    /// with an expire policy of their own, and the tables inheriting from
    /// them (each inheritance child follows the nearest policy above it).
    pub excluded_inheritors: Vec<RelId>,
}

impl TableShape {
    pub fn carried_index(&self, column: &str) -> Option<usize> {
        self.carried.iter().position(|c| c.name == column)
    }

    /// ` AND alias.tableoid <> ALL (...)`: the rows of the inheritance
    /// children that follow a policy of their own are not this table's
    /// policy's (empty when there are none).
    pub fn own_rows(&self, alias: &str) -> String {
        own_rows(alias, &self.excluded_inheritors)
    }
}

/// The table as a foreign key sees it: an ordinary table alone (`ONLY`: a
/// foreign key binds none of the tables inheriting from it), a partitioned
/// table with its partitions.
pub fn fk_table(table: &TableShape) -> String {
    if table.plain_table {
        format!("ONLY {}", table.qualified)
    } else {
        table.qualified.clone()
    }
}

/// ` AND alias.tableoid = table`, for an ordinary table others inherit
/// from: the rows a foreign key to or from it binds (nothing otherwise).
pub fn fk_rows(alias: &str, table: &TableShape) -> String {
    if table.plain_table && table.has_inheritors {
        format!(
            " AND {alias}.tableoid {} '{}'::pg_catalog.oid",
            op("="),
            table.relid
        )
    } else {
        String::new()
    }
}

/// ` AND alias.tableoid <> ALL ('{oids}')`, or nothing for no tables.
pub fn own_rows(alias: &str, excluded: &[RelId]) -> String {
    if excluded.is_empty() {
        return String::new();
    }
    format!(" AND {}", not_in_tables(alias, excluded))
}

/// Double-quotes an identifier, doubling any quote inside it.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

fn col(alias: &str, column: &str) -> String {
    format!("{alias}.{}", quote_ident(column))
}

fn col_list(alias: &str, columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| col(alias, &c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `alias.(columns)` matches one of the value tuples bound as arrays
/// `$first..`, one per column, each of its column's type.
fn in_arrays(alias: &str, columns: &[String], first: usize) -> String {
    if columns.len() == 1 {
        return format!("{} {} ANY (${first})", col(alias, &columns[0]), op("="));
    }
    let arrays: Vec<String> = (0..columns.len())
        .map(|i| format!("pg_catalog.unnest(${})", first + i))
        .collect();
    let tuple: Vec<String> = columns.iter().map(|c| col(alias, c)).collect();
    format!(
        "({}) {} ANY (SELECT * FROM ROWS FROM ({}))",
        tuple.join(", "),
        op("="),
        arrays.join(", ")
    )
}

/// `(time, key...) > ($first, ...)`: the keyset continuation, the values
/// bound in their own types.
fn keyset_after(alias: &str, time: &Column, key: &[Column], first: usize) -> String {
    let cols: Vec<&Column> = std::iter::once(time).chain(key.iter()).collect();
    let lhs: Vec<String> = cols.iter().map(|c| col(alias, &c.name)).collect();
    let rhs: Vec<String> = (0..cols.len()).map(|i| format!("${}", first + i)).collect();
    format!("({}) {} ({})", lhs.join(", "), op(">"), rhs.join(", "))
}

fn key_join(left: &str, right: &str, key: &[Column]) -> String {
    key.iter()
        .map(|c| format!("{} {} {}", col(left, &c.name), op("="), col(right, &c.name)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Aggregates over a `d` CTE of deleted rows that returned `ts`:
/// count, oldest and newest as microseconds since the epoch (comparable in
/// Rust whatever the column type).
fn deleted_summary(time: Option<&Column>) -> String {
    deleted_summary_and(time, "")
}

/// [`deleted_summary`] followed by more output columns (`extra` starts with
/// a comma).
fn deleted_summary_and(time: Option<&Column>, extra: &str) -> String {
    match time {
        Some(_) => format!(
            "SELECT pg_catalog.count(*), {}, {}{extra} FROM d",
            epoch_us("pg_catalog.min(d.__retention_time)"),
            epoch_us("pg_catalog.max(d.__retention_time)")
        ),
        None => format!("SELECT pg_catalog.count(*), NULL::pg_catalog.int8, NULL::pg_catalog.int8{extra} FROM d"),
    }
}

/// Whether the current user (a table's owner) may call the sweep budget's
/// function for a time column of type `$1` (its oid). No row when it is
/// missing (a library newer than the extension's SQL).
pub fn sweep_budget_callable_sql() -> String {
    format!(
        "SELECT pg_catalog.has_function_privilege(p.oid, 'EXECUTE') FROM pg_catalog.pg_proc p \
         WHERE p.pronamespace {eq} 'pg_catalog'::pg_catalog.regnamespace AND p.proname {eq} '_retention_sweep_take' \
           AND p.pronargs {eq} 2 AND p.proargtypes[0] {eq} 'pg_catalog.tid'::pg_catalog.regtype AND p.proargtypes[1] {eq} $1",
        eq = op("=")
    )
}

/// The type of a policy's time column (timestamptz, timestamp or date), by
/// its qualified name.
fn time_type_sql(type_oid: u32) -> &'static str {
    use pgrx::pg_sys::{DATEOID, TIMESTAMPOID};
    match type_oid {
        t if t == TIMESTAMPOID.to_u32() => "pg_catalog.timestamp",
        t if t == DATEOID.to_u32() => "pg_catalog.date",
        _ => "pg_catalog.timestamptz",
    }
}

/// A time as microseconds since the epoch (comparable in Rust whatever the
/// column type); `-infinity` and `infinity` as the smallest and largest
/// int8 ([`NEG_INFINITY_US`], [`INFINITY_US`]), which the history turns back
/// into them.
fn epoch_us(time: &str) -> String {
    let t = format!("{time}::pg_catalog.timestamptz");
    format!(
        "CASE WHEN {t} {eq} '-infinity' THEN '{NEG_INFINITY_US}'::pg_catalog.int8 \
              WHEN {t} {eq} 'infinity' THEN '{INFINITY_US}'::pg_catalog.int8 \
              ELSE (pg_catalog.date_part('epoch', {t}) {mul} 1000000)::pg_catalog.int8 END",
        eq = op("="),
        mul = op("*")
    )
}

/// `-infinity` as microseconds since the epoch, in run summaries.
pub const NEG_INFINITY_US: i64 = i64::MIN;
/// `infinity` as microseconds since the epoch, in run summaries.
pub const INFINITY_US: i64 = i64::MAX;

fn returning_ts(alias: &str, time: Option<&Column>) -> String {
    match time {
        Some(t) => format!("RETURNING {} AS __retention_time", col(alias, &t.name)),
        None => "RETURNING 1 AS __retention_time".to_string(),
    }
}

/// `count, oldest, newest` of the rows a data-modifying CTE returned as
/// `__retention_time`, as three scalar subqueries (times in microseconds
/// since the epoch).
fn cte_summary(cte: &str, time: Option<&Column>) -> String {
    let count = format!("(SELECT pg_catalog.count(*) FROM {cte})");
    match time {
        Some(_) => {
            let edge = |f: &str| {
                format!(
                    "(SELECT {} FROM {cte})",
                    epoch_us(&format!("pg_catalog.{f}({cte}.__retention_time)"))
                )
            };
            format!("{count}, {}, {}", edge("min"), edge("max"))
        }
        None => format!("{count}, NULL::pg_catalog.int8, NULL::pg_catalog.int8"),
    }
}

/// Types whose values between two keys can be counted: every value in
/// between is a possible key.
const INTEGER_TYPES: [&str; 3] = ["smallint", "integer", "bigint"];

/// A child table of a fused root batch ([`RootBatch::fused_sql`]), deleted
/// by its foreign key's `ON DELETE CASCADE`.
#[derive(Clone, Debug)]
pub struct FusedChild<'a> {
    pub table: &'a TableShape,
    /// The foreign key's column in the child.
    pub column: &'a str,
    /// The referenced column of the parent (carried by the batch).
    pub parent_column: &'a Column,
}

/// Where a root batch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStart {
    /// At the oldest expired row.
    First,
    /// After the previous batch's last row: `$3..` its time and key.
    After,
    /// At the rows whose (single-column) key is in `$3`, an array: the
    /// rest of a large group of rows sharing one time, read once in key
    /// order ([`RootBatch::same_time_keys_sql`]). With an index on the time
    /// column only, a keyset inside such a group would read the whole group
    /// again at every batch to sort it by key.
    Keys,
    /// At the rows of a range of the heap, in physical order: after the
    /// `tid` `$3` and before the `tid` `$4` ([`crate::strategy::HeapSweep`]).
    Sweep,
}

/// A batch of a policy's own rows, by keyset on (time, key).
///
/// Parameters: `$1` cutoff (timestamptz), `$2` limit, then as `start` says.
/// `extra` is an additional condition (the orphan test), spelled for alias
/// `t` (selection) and alias `x` (its re-check at delete time).
#[derive(Clone, Debug)]
pub struct RootBatch<'a> {
    pub table: &'a TableShape,
    pub time: &'a Column,
    pub start: BatchStart,
    pub extra: Option<(String, String)>,
    /// A sweep's batch in a leaf partition: the condition under which the
    /// partition may still be swept ([`leaf_sweep_guard`]), checked by
    /// every statement of the batch; `None` elsewhere.
    pub guard: Option<String>,
}

impl RootBatch<'_> {
    /// The first parameter number after those `start` uses.
    fn next_param(&self) -> usize {
        match self.start {
            BatchStart::First => 3,
            BatchStart::After => 4 + self.table.key.len(),
            BatchStart::Keys => 4,
            BatchStart::Sweep => 5,
        }
    }

    fn where_clause(&self) -> String {
        let mut w = format!(
            "{} {} $1{}",
            col("t", &self.time.name),
            op("<"),
            self.table.own_rows("t")
        );
        match self.start {
            BatchStart::First => {}
            BatchStart::After => {
                w.push_str(" AND ");
                w.push_str(&keyset_after("t", self.time, &self.table.key, 3));
            }
            BatchStart::Keys => {
                let key = &self.table.key[0];
                w.push_str(" AND ");
                w.push_str(&in_arrays("t", std::slice::from_ref(&key.name), 3));
            }
            BatchStart::Sweep => {
                w.push_str(&format!(
                    " AND t.ctid {} $3 AND t.ctid {} $4",
                    op(">"),
                    op("<")
                ));
            }
        }
        if let Some((extra, _)) = &self.extra {
            w.push_str(" AND ");
            w.push_str(extra);
        }
        w.push_str(&self.guarded("t"));
        w
    }

    /// For a sweep's batch in a leaf partition, its guard, and only rows of
    /// that partition (by oid, on `alias`): the partition is named, and a
    /// schema renamed meanwhile (which locks none of its tables) could put
    /// another table under that name. Else nothing.
    fn guarded(&self, alias: &str) -> String {
        self.guard
            .as_ref()
            .map(|g| {
                format!(
                    " AND {alias}.tableoid {} '{}'::pg_catalog.oid AND {g}",
                    op("="),
                    self.table.relid
                )
            })
            .unwrap_or_default()
    }

    /// The guard as a column: whether the batch's heap may still be swept.
    fn guard_column(&self) -> &str {
        self.guard.as_deref().unwrap_or("true")
    }

    fn order(&self) -> String {
        if self.start == BatchStart::Sweep {
            return "t.ctid".to_string();
        }
        let mut cols = vec![col("t", &self.time.name)];
        cols.extend(self.table.key.iter().map(|c| col("t", &c.name)));
        cols.join(", ")
    }

    /// Selects the batch, returning time then carried columns. With `lock`,
    /// locks it: rows locked by another session are skipped, not waited for
    /// (the keyset moves past them and the next run takes them). Without,
    /// every delete of the batch re-checks its rows instead
    /// ([`crate::catalog::Setup::lock_free`]). A sweep's batch also returns
    /// each row's `ctid`, last.
    pub fn select_sql(&self, lock: bool) -> String {
        let sweep = self.start == BatchStart::Sweep;
        format!(
            "SELECT {}, {}{} FROM {}{} t WHERE {} ORDER BY {} LIMIT $2{}",
            col("t", &self.time.name),
            col_list("t", &self.table.carried),
            if sweep { ", t.ctid" } else { "" },
            // A ctid names a row of one table.
            if sweep { "ONLY " } else { "" },
            self.table.qualified,
            self.where_clause(),
            self.order(),
            if lock {
                " FOR UPDATE OF t SKIP LOCKED"
            } else {
                ""
            }
        )
    }

    /// Selects, locks and deletes the batch in one statement, for tables with
    /// no dependents to clear first. Returns one row (none for an empty
    /// batch): rows selected, rows deleted, oldest and newest deleted, then the
    /// last selected row's time and key for the next keyset.
    ///
    /// `by_ctid`: the table is an ordinary table with no inheritance
    /// children, and the batch is deleted by the `ctid`s its rows had when
    /// this statement locked them (a TID scan: a locked row cannot move; the
    /// delete still checks the time). Otherwise the delete is driven by the
    /// batch's keys unnested from arrays (`k`), one probe of the key's index
    /// each: joined to the CTE itself, the planner may hash every expired row
    /// of the table to find the batch's few (it did, on a table whose keys
    /// are not in time order: each batch of 500 read all 40,000 expired rows).
    /// Each CTE is read once for its aggregates.
    ///
    /// Without `lock` (`by_ctid` only), the selection locks nothing and the
    /// delete takes each row's lock as it deletes it, waiting for a row
    /// another session holds: one write per row instead of two. A row seen
    /// by the statement's snapshot stays in place while the statement runs;
    /// one updated meanwhile is deleted by its new version only if that is
    /// still expired (the delete re-checks the time), else kept.
    pub fn delete_sql(&self, by_ctid: bool, lock: bool) -> String {
        let t = self.table;
        let last = self.last_row("bs.first");
        let (ctid, target, using, join) = if by_ctid {
            (
                ", t.ctid AS __retention_ctid".to_string(),
                format!("ONLY {}", t.qualified),
                String::new(),
                format!(
                    "x.ctid {} ANY (ARRAY(SELECT b.__retention_ctid FROM b))",
                    op("=")
                ),
            )
        } else {
            let unnested: Vec<String> = t
                .key
                .iter()
                .map(|c| {
                    format!(
                        "pg_catalog.unnest(ARRAY(SELECT {} FROM b))",
                        col("b", &c.name)
                    )
                })
                .collect();
            let names: Vec<String> = t.key.iter().map(|c| quote_ident(&c.name)).collect();
            (
                String::new(),
                t.qualified.clone(),
                format!(
                    " USING ROWS FROM ({}) k({})",
                    unnested.join(", "),
                    names.join(", ")
                ),
                key_join("x", "k", &t.key),
            )
        };
        format!(
            "WITH b AS MATERIALIZED (SELECT {time} AS __retention_time, {keys}{ctid} FROM {tbl} t WHERE {w} ORDER BY {order} LIMIT $2{lock}), \
             d AS (DELETE FROM {target} x{using} WHERE {join} AND {xtime} {lt} $1{own}{recheck} RETURNING {xtime} AS __retention_time) \
             SELECT bs.n, ds.*, {last} FROM (SELECT pg_catalog.count(*) AS n, pg_catalog.min(b.__retention_time) AS first FROM b) bs, ({summary}) ds, {last_from}",
            time = col("t", &self.time.name),
            keys = col_list("t", &t.key),
            tbl = t.qualified,
            w = self.where_clause(),
            order = self.order(),
            xtime = col("x", &self.time.name),
            summary = deleted_summary(Some(self.time)),
            last = last.0,
            last_from = last.1,
            recheck = self.extra.as_ref().map(|(_, on_x)| format!(" AND {on_x}")).unwrap_or_default(),
            lt = op("<"),
            own = t.own_rows("x"),
            lock = if lock || !by_ctid {
                " FOR UPDATE OF t SKIP LOCKED"
            } else {
                ""
            },
        )
    }

    /// A sweep's batch ([`BatchStart::Sweep`]) with row locks, in one
    /// statement: the selection locks its rows, skipping rows other sessions
    /// hold, and the delete takes them by the `ctid`s they had when locked
    /// (as [`RootBatch::delete_sql`]; a row updated while it was locked is
    /// returned at its new place, perhaps outside the range). Returns one
    /// row: rows selected, rows deleted, oldest and newest deleted, the
    /// last `ctid` selected inside the range, and the batch's guard (true
    /// when it has none).
    pub fn sweep_locked_delete_sql(&self) -> String {
        let t = self.table;
        format!(
            "WITH b AS MATERIALIZED (SELECT {time} AS __retention_time, t.ctid AS __retention_ctid FROM ONLY {tbl} t WHERE {w} ORDER BY t.ctid LIMIT $2 FOR UPDATE OF t SKIP LOCKED), \
             d AS (DELETE FROM ONLY {tbl} x WHERE x.ctid {eq} ANY (ARRAY(SELECT b.__retention_ctid FROM b)) AND {xtime} {lt} $1 RETURNING {xtime} AS __retention_time) \
             SELECT (SELECT pg_catalog.count(*) FROM b), ds.*, (SELECT pg_catalog.max(b.__retention_ctid) FROM b WHERE b.__retention_ctid {lt} $4), {guard} FROM ({summary}) ds",
            guard = self.guard_column(),
            time = col("t", &self.time.name),
            tbl = t.qualified,
            w = self.where_clause(),
            xtime = col("x", &self.time.name),
            summary = deleted_summary(Some(self.time)),
            eq = op("="),
            lt = op("<"),
        )
    }

    /// A sweep's batch without row locks, in one statement: deletes the
    /// range's expired rows as long as the statement's row budget admits
    /// them ([`crate::sweep_budget`]), each row's lock taken as it deletes
    /// it (waiting for a row another session holds). The budget's call
    /// comes last among the conditions (its cost says so), its arguments
    /// cast to exactly the types of one of its functions. Every row is
    /// deleted by its current version, re-checked as expired by the delete.
    /// `$2` is unused (the budget holds the limit).
    pub fn sweep_budget_delete_sql(&self) -> String {
        format!(
            "DELETE FROM ONLY {tbl} t WHERE {w} AND pg_catalog._retention_sweep_take(t.ctid, {time}::{ty})",
            tbl = self.table.qualified,
            w = self.where_clause(),
            time = col("t", &self.time.name),
            ty = time_type_sql(self.time.type_oid),
        )
    }

    /// [`RootBatch::sweep_budget_delete_sql`] for a table with a BEFORE
    /// DELETE row trigger, which may keep a row the budget admitted: the
    /// deleted rows' times come back (`RETURNING`, a second fetch of each
    /// row), and one row gives their count, oldest and newest.
    pub fn sweep_budget_delete_returning_sql(&self) -> String {
        format!(
            "WITH d AS ({} RETURNING {} AS __retention_time) {}",
            self.sweep_budget_delete_sql(),
            col("t", &self.time.name),
            deleted_summary(Some(self.time)),
        )
    }

    /// The last row of batch `b` by (time, key) descending, where the next
    /// batch continues: its time and key, then whether the batch's first
    /// time is the same (`first`: the batch's first time); and the FROM item
    /// `last` they are read from (no row when the batch is empty).
    fn last_row(&self, first: &str) -> (String, String) {
        let key_desc: Vec<String> = self
            .table
            .key
            .iter()
            .map(|c| format!("{} DESC", col("b", &c.name)))
            .collect();
        (
            format!(
                "last.__retention_time, {}, {first} {} last.__retention_time",
                col_list("last", &self.table.key),
                op("=")
            ),
            format!(
                "(SELECT * FROM b ORDER BY b.__retention_time DESC, {} LIMIT 1) last",
                key_desc.join(", ")
            ),
        )
    }

    /// A whole root batch in one statement, for a parent whose walked
    /// children all cascade and have no walked children of their own: select
    /// and lock the batch, count each child table's rows that reference it
    /// (reading the foreign key's index only, at most `$L + 1`), and only if
    /// every count is at most `$L`, delete the batch. Its children go by the
    /// cascade: Postgres probes every deleted parent for them anyway (the
    /// caller counts them). The batch is deleted by the `ctid`s its rows had
    /// when this statement locked them (a TID scan, not a descent of the key's
    /// index per row): a locked row cannot move, and the delete still checks
    /// the time. `ONLY`: a `ctid` names a row in one table, so the table must
    /// have no inheritance children (the caller checks).
    ///
    /// Parameters as [`RootBatch::select_sql`], then `$L`, the statement
    /// limit. Returns one row (none for an empty batch): rows selected, rows
    /// deleted, oldest and newest deleted, children counted (each table's
    /// count capped at `$L + 1`), whether the counts allowed the delete, then
    /// the last row's time and key (and for a sweep's batch, its last
    /// `ctid` inside the range). The key and every foreign key must be
    /// single columns.
    pub fn fused_sql(&self, children: &[FusedChild<'_>]) -> String {
        let t = self.table;
        let limit = self.next_param();
        let in_batch = |alias: &str, column: &str, parent: &Column| {
            format!(
                "{} {} ANY ((SELECT pg_catalog.array_agg({}) FROM b)::{}[])",
                col(alias, column),
                op("="),
                col("b", &parent.name),
                parent.type_sql
            )
        };
        let mut ctes = vec![format!(
            "b AS MATERIALIZED (SELECT {time} AS __retention_time, {carried}, t.ctid AS __retention_ctid FROM ONLY {tbl} t WHERE {w} ORDER BY {order} LIMIT $2 FOR UPDATE OF t SKIP LOCKED)",
            time = col("t", &self.time.name),
            carried = col_list("t", &t.carried),
            tbl = t.qualified,
            w = self.where_clause(),
            order = self.order(),
        )];
        for (i, c) in children.iter().enumerate() {
            let count_where = |w: &str| {
                format!(
                    "(SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {} t WHERE {w} LIMIT ${limit} {} 1) s)",
                    fk_table(c.table),
                    op("+")
                )
            };
            let by_keys = count_where(&in_batch("t", c.column, c.parent_column));
            let n = if INTEGER_TYPES.contains(&c.parent_column.type_sql.as_str()) {
                // Batches of a table filled in time order often hold every
                // key of a range: then one range scan of the foreign key's
                // index counts the children, instead of one descent per key.
                // The referenced column is unique, so `max - min + 1 = count`
                // means no key in between is missing.
                let k = col("b", &c.parent_column.name);
                let (lo, hi) = (
                    format!("(SELECT pg_catalog.min({k}) FROM b)"),
                    format!("(SELECT pg_catalog.max({k}) FROM b)"),
                );
                format!(
                    "CASE WHEN (SELECT pg_catalog.max({k})::pg_catalog.numeric {minus} pg_catalog.min({k}) {plus} 1 {eq} pg_catalog.count({k}) FROM b) \
                     THEN {} ELSE {by_keys} END",
                    count_where(&format!(
                        "{c} {ge} {lo} AND {c} {le} {hi}",
                        c = col("t", c.column),
                        ge = op(">="),
                        le = op("<=")
                    )),
                    minus = op("-"),
                    plus = op("+"),
                    eq = op("="),
                )
            } else {
                by_keys
            };
            ctes.push(format!("c{i} AS MATERIALIZED (SELECT {n} AS n)"));
        }
        let counts: Vec<String> = (0..children.len()).map(|i| format!("c{i}.n")).collect();
        let allowed: Vec<String> = counts
            .iter()
            .map(|n| format!("{n} {} ${limit}", op("<=")))
            .collect();
        let from: Vec<String> = (0..children.len()).map(|i| format!("c{i}")).collect();
        ctes.push(format!(
            "ok AS MATERIALIZED (SELECT {} AS allowed, {} AS found FROM {})",
            allowed.join(" AND "),
            counts.join(&format!(" {} ", op("+"))),
            from.join(", ")
        ));
        ctes.push(format!(
            "d AS (DELETE FROM ONLY {tbl} x WHERE x.ctid {eq} ANY ((SELECT pg_catalog.array_agg(b.__retention_ctid) FROM b)::pg_catalog.tid[]) \
             AND {xtime} {lt} $1 AND (SELECT ok.allowed FROM ok) RETURNING {xtime} AS __retention_time)",
            tbl = t.qualified,
            xtime = col("x", &self.time.name),
            eq = op("="),
            lt = op("<"),
        ));
        let (last, last_from) = self.last_row("(SELECT pg_catalog.min(b.__retention_time) FROM b)");
        // A sweep continues after the batch's last ctid inside its range.
        let last_ctid = if self.start == BatchStart::Sweep {
            format!(
                ", (SELECT pg_catalog.max(b.__retention_ctid) FROM b WHERE b.__retention_ctid {} $4)",
                op("<")
            )
        } else {
            String::new()
        };
        format!(
            "WITH {} SELECT (SELECT pg_catalog.count(*) FROM b), {}, ok.found, ok.allowed, {last}{last_ctid} FROM ok, {last_from}",
            ctes.join(", "),
            cte_summary("d", Some(self.time)),
        )
    }

    /// Keys of the rows at time `$1` with a key after `$2`, in key order, at
    /// most `$3` of them: the rest of a group of rows sharing one time, read
    /// once (single-column keys).
    pub fn same_time_keys_sql(&self) -> String {
        let key = &self.table.key[0];
        format!(
            "SELECT {k} FROM {tbl} t WHERE {time} {eq} $1 AND {k} {gt} $2{own} ORDER BY {k} LIMIT $3",
            k = col("t", &key.name),
            tbl = self.table.qualified,
            own = self.table.own_rows("t"),
            time = col("t", &self.time.name),
            eq = op("="),
            gt = op(">"),
        )
    }
}

/// PostgreSQL's plan for finding every expired row of `table` (`$1` the
/// cutoff), as JSON with each scan's relation and schema: which heaps it
/// reads, how, and how many rows it expects from each
/// ([`crate::strategy::planned_scans`]).
pub fn expired_rows_plan_sql(table: &TableShape, time: &Column) -> String {
    format!(
        "EXPLAIN (VERBOSE, FORMAT JSON) SELECT t.ctid FROM {} t WHERE {} {} $1{}",
        fk_table(table),
        col("t", &time.name),
        op("<"),
        table.own_rows("t")
    )
}

/// The heaps that may hold the rows of the table whose oid is `$1`: every
/// table of its partition tree, or the table itself when it has none (an
/// ordinary table that is no partition). Per table: oid, parent's oid, whether it is a leaf, whether it is
/// an ordinary table, schema and name, size in blocks, rows and pages by
/// the statistics, whether deleting from it directly does what deleting
/// through `$1` does ([`deletes_as_through`]), and whether it is being
/// detached.
pub fn heap_candidates_sql() -> String {
    format!(
        "SELECT p.relid::pg_catalog.oid, p.parentrelid::pg_catalog.oid, p.isleaf, c.relkind {eq} 'r', n.nspname::pg_catalog.text, c.relname::pg_catalog.text, \
                pg_catalog.pg_relation_size(c.oid) {div} pg_catalog.current_setting('block_size')::pg_catalog.int8, \
                c.reltuples::pg_catalog.float8, c.relpages::pg_catalog.float8, {same}, \
                EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid {eq} c.oid AND i.inhdetachpending) \
         FROM (SELECT t.relid, t.parentrelid, t.isleaf FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass) t \
               UNION ALL SELECT $1::pg_catalog.regclass, NULL::pg_catalog.regclass, true \
               WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass))) p \
         JOIN pg_catalog.pg_class c ON c.oid {eq} p.relid \
         JOIN pg_catalog.pg_namespace n ON n.oid {eq} c.relnamespace",
        same = deletes_as_through("c.oid", "$1::pg_catalog.oid"),
        eq = op("="),
        div = op("/"),
    )
}

/// Whether no role but the owner of `root` and superusers (both oid
/// expressions) can act as the owner of relation `leaf`'s schema (and so
/// rename it, and put another table under the relation's name): every role
/// that can log in and is a member of the schema's owning role, directly
/// or not (for `pg_database_owner`, the database's owner), is one of them.
fn schema_controlled_by_table_owner(leaf: &str, root: &str) -> String {
    format!(
        "NOT EXISTS (SELECT FROM pg_catalog.pg_roles ro, pg_catalog.pg_namespace ns \
          WHERE ns.oid {eq} (SELECT lc.relnamespace FROM pg_catalog.pg_class lc WHERE lc.oid {eq} {leaf}) \
            AND ro.rolcanlogin AND NOT ro.rolsuper \
            AND ro.oid {ne} (SELECT rc.relowner FROM pg_catalog.pg_class rc WHERE rc.oid {eq} {root}) \
            AND pg_catalog.pg_has_role(ro.oid, ns.nspowner, 'MEMBER'))",
        eq = op("="),
        ne = op("<>"),
    )
}

/// Whether deleting rows of partition `leaf` directly (`DELETE FROM ONLY
/// leaf`, as the current user) does what deleting them through the
/// partitioned table `root` does (both SQL expressions of type oid): the
/// same owner, who may read, lock and delete the partition and use its
/// schema, and still delete from `root`; row-level security
/// active on neither (through `root`, only `root`'s applies; directly, only
/// the partition's); no statement-level or transition-table DELETE trigger
/// on either (through `root`, only `root`'s fire; directly, only the
/// partition's; row triggers fire on the partition either way); and no
/// rule on DELETE on either (the partition's would rewrite a direct delete
/// only; the table's, one through it only); and no one but the owner and
/// superusers can rename the partition's schema
/// ([`schema_controlled_by_table_owner`]): the partition is named.
/// Its subqueries' aliases (`lc`, `rc`, `tg`, `r`) must not be those of
/// `leaf` or `root`.
pub fn deletes_as_through(leaf: &str, root: &str) -> String {
    format!(
        "((SELECT lc.relowner FROM pg_catalog.pg_class lc WHERE lc.oid {eq} {leaf}) \
              {eq} (SELECT rc.relowner FROM pg_catalog.pg_class rc WHERE rc.oid {eq} {root}) \
          AND pg_catalog.has_table_privilege({leaf}, 'SELECT') AND pg_catalog.has_table_privilege({leaf}, 'DELETE') \
          AND pg_catalog.has_table_privilege({leaf}, 'UPDATE') AND pg_catalog.has_table_privilege({root}, 'DELETE') \
          AND pg_catalog.has_schema_privilege((SELECT lc.relnamespace FROM pg_catalog.pg_class lc WHERE lc.oid {eq} {leaf}), 'USAGE') \
          AND NOT pg_catalog.row_security_active({leaf}::pg_catalog.regclass) \
          AND NOT pg_catalog.row_security_active({root}::pg_catalog.regclass) \
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger tg \
               WHERE tg.tgrelid {eq} ANY (ARRAY[{leaf}, {root}]) AND NOT tg.tgisinternal \
                 AND (tg.tgtype::pg_catalog.int4 {and} 8) {ne} 0 \
                 AND ((tg.tgtype::pg_catalog.int4 {and} 1) {eq} 0 OR tg.tgoldtable IS NOT NULL)) \
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_rewrite r WHERE r.ev_class {eq} ANY (ARRAY[{leaf}, {root}]) \
               AND r.ev_type {eq} '4') \
          AND {schema})",
        schema = schema_controlled_by_table_owner(leaf, root),
        eq = op("="),
        ne = op("<>"),
        and = op("&"),
    )
}

/// True while partition `leaf` may still be swept as part of partitioned
/// table `root`: every link of `links` (partition, parent) from `leaf` up
/// to `root` is still in `pg_inherits` and not being detached, and
/// [`deletes_as_through`] holds. Evaluated by each statement of a sweep's
/// batch in its own snapshot, taken after the statement locked `leaf`: a
/// partition detached (or a trigger, rule or row-level security added) by
/// a transaction that committed before is seen.
pub fn leaf_sweep_guard(leaf: RelId, root: RelId, links: &[(RelId, RelId)]) -> String {
    let linked: Vec<String> = links
        .iter()
        .map(|(child, parent)| {
            format!(
                "(i.inhrelid {eq} '{child}'::pg_catalog.oid AND i.inhparent {eq} '{parent}'::pg_catalog.oid)",
                eq = op("=")
            )
        })
        .collect();
    format!(
        "((SELECT pg_catalog.count(*) FROM pg_catalog.pg_inherits i WHERE NOT i.inhdetachpending AND ({linked})) {eq} {n} \
          AND {same})",
        linked = linked.join(" OR "),
        n = links.len(),
        same = deletes_as_through(
            &format!("'{leaf}'::pg_catalog.oid"),
            &format!("'{root}'::pg_catalog.oid")
        ),
        eq = op("="),
    )
}

/// What a delete by key re-checks of each row when it deletes it, besides
/// its key.
#[derive(Clone, Copy, Debug)]
pub enum Recheck<'a> {
    /// Nothing: the rows are locked.
    Nothing,
    /// A root batch's rows: their time is still before the cutoff, bound after
    /// the keys, so that a row made younger since it was selected survives;
    /// and `extra` (an orphan test, on alias `x`) still holds.
    Expired {
        time: &'a Column,
        extra: Option<&'a str>,
    },
    /// A dependent's rows selected without locks: they still reference one of
    /// the parent rows bound after the keys (arrays, one per column of
    /// the foreign key), so that a row re-pointed meanwhile survives.
    References(&'a ForeignKey),
}

/// Deletes rows by key, the values bound as arrays `$1..$k`, re-checking
/// what `recheck` says (its values bound after the keys).
pub fn delete_by_keys_sql(table: &TableShape, recheck: Recheck<'_>) -> String {
    let names: Vec<String> = table.key.iter().map(|c| c.name.clone()).collect();
    let mut w = in_arrays("x", &names, 1);
    match recheck {
        Recheck::Nothing => {}
        Recheck::Expired { time, extra } => {
            w.push_str(&format!(
                " AND {} {} ${}{}",
                col("x", &time.name),
                op("<"),
                names.len() + 1,
                table.own_rows("x")
            ));
            if let Some(extra) = extra {
                w.push_str(" AND ");
                w.push_str(extra);
            }
        }
        Recheck::References(edge) => {
            w.push_str(" AND ");
            w.push_str(&in_arrays("x", &edge.child_columns, names.len() + 1));
        }
    }
    // A root batch's rows come from the table's whole inheritance tree (as a
    // DELETE on it would), a dependent's from the table alone.
    let target = match recheck {
        Recheck::Expired { .. } => table.qualified.clone(),
        _ => fk_table(table),
    };
    format!(
        "WITH d AS (DELETE FROM {} x WHERE {w} {}) {}",
        target,
        returning_ts("x", table.time_column.as_ref()),
        deleted_summary(table.time_column.as_ref())
    )
}

/// Rows of `child` that reference one of the parent rows bound as arrays
/// (one per referenced column, `$1..$k`), at most `$k+1` of them; with
/// `lock`, locked so that no new grandchild can be attached while they are
/// cleared (without, a grandchild attached meanwhile fails the batch at the
/// child's delete, or goes by its cascade).
pub fn child_select_sql(child: &TableShape, edge: &ForeignKey, lock: bool) -> String {
    let limit = edge.child_columns.len() + 1;
    format!(
        "SELECT {} FROM {} t WHERE {} LIMIT ${limit}{}",
        col_list("t", &child.carried),
        fk_table(child),
        in_arrays("t", &edge.child_columns, 1),
        if lock { " FOR UPDATE OF t" } else { "" }
    )
}

/// Like [`child_select_sql`] but deletes the selected rows in the same
/// statement: for children with no dependents of their own. No `FOR UPDATE`:
/// nothing can be attached to such a row, and the DELETE locks it anyway
/// (locking first would write every row twice). The DELETE repeats the
/// reference test, so that a row re-pointed to another parent meanwhile is
/// re-checked on its new version and kept.
///
/// `by_ctid` (an ordinary table that no table inherits from, outside
/// Citus): the rows are deleted by the `ctid`s the selection saw, a TID scan
/// instead of a second descent of the key's index per row. A row seen by
/// the statement's snapshot stays in place while the statement runs; one
/// updated meanwhile is kept (PostgreSQL releases whose TID scan re-checks
/// the ctid of the new version) or deleted by its new version if that still
/// references a parent of the batch (the others). Returns the deleted
/// summary, then the rows selected: it selects one row more than its limit
/// `$k+1` and deletes at most the limit, so a statement that selected no
/// more than its limit has seen (and deleted) every child of the chunk, and
/// one that selected more knows another statement is needed: no statement
/// is spent to find that nothing is left, and no pass to count first.
pub fn child_delete_sql(child: &TableShape, edge: &ForeignKey, by_ctid: bool) -> String {
    let limit = edge.child_columns.len() + 1;
    let (selected, using, join) = if by_ctid {
        (
            "t.ctid AS __retention_ctid".to_string(),
            String::new(),
            format!(
                "x.ctid {} ANY (ARRAY(SELECT b.__retention_ctid FROM b LIMIT ${limit}))",
                op("=")
            ),
        )
    } else {
        (
            col_list("t", &child.key),
            format!(" USING (SELECT * FROM b LIMIT ${limit}) l"),
            key_join("x", "l", &child.key),
        )
    };
    format!(
        "WITH b AS MATERIALIZED (SELECT {selected} FROM {tbl} t WHERE {w} LIMIT ${limit} {plus} 1), \
         d AS (DELETE FROM {tbl} x{using} WHERE {join} AND {recheck} {ret}) {summary}",
        tbl = fk_table(child),
        w = in_arrays("t", &edge.child_columns, 1),
        plus = op("+"),
        recheck = in_arrays("x", &edge.child_columns, 1),
        ret = returning_ts("x", child.time_column.as_ref()),
        summary = deleted_summary_and(
            child.time_column.as_ref(),
            ", (SELECT pg_catalog.count(*) FROM b)"
        ),
    )
}

/// Deletes every row of `child` that references one of the parent rows, in
/// one pass over the foreign key's index, provided there are no more of
/// them than the limit `$k+1` (counted first, in the same snapshot; the
/// parents are locked, so no child can be attached in between). Returns the
/// deleted summary, then the count (at most limit + 1): over the limit,
/// nothing is deleted and the caller falls back to [`child_delete_sql`].
pub fn child_delete_all_sql(child: &TableShape, edge: &ForeignKey) -> String {
    let limit = edge.child_columns.len() + 1;
    format!(
        "WITH c AS MATERIALIZED (SELECT pg_catalog.count(*) AS n FROM (SELECT 1 FROM {tbl} t WHERE {w} LIMIT ${limit} {plus} 1) s), \
         d AS (DELETE FROM {tbl} x WHERE {wx} AND (SELECT c.n FROM c) {le} ${limit} {ret}) {summary}",
        tbl = fk_table(child),
        w = in_arrays("t", &edge.child_columns, 1),
        wx = in_arrays("x", &edge.child_columns, 1),
        plus = op("+"),
        le = op("<="),
        ret = returning_ts("x", child.time_column.as_ref()),
        summary = deleted_summary_and(child.time_column.as_ref(), ", (SELECT c.n FROM c)"),
    )
}

/// `NOT EXISTS` a row of `child` referencing the row `alias` through `edge`;
/// with `doomed`, referencing rows satisfying it do not count (they go first).
///
/// `uncorrelated`: the same test as a subquery that does not refer to
/// `alias` (Citus plans no correlated subquery over a reference table): the
/// row's key is not among the keys referenced, the subquery reading only
/// referencing rows whose key columns are all set (a key with a NULL column
/// references nothing), and a row whose own key has a NULL column is
/// referenced by nothing.
pub fn not_referenced(
    alias: &str,
    child_qualified: &str,
    edge: &ForeignKey,
    inner: &str,
    doomed: Option<&str>,
    uncorrelated: bool,
) -> String {
    let survivors = doomed
        .map(|d| format!(" AND ({d}) IS NOT TRUE"))
        .unwrap_or_default();
    if uncorrelated {
        let parent: Vec<String> = edge.parent_columns.iter().map(|p| col(alias, p)).collect();
        let child: Vec<String> = edge.child_columns.iter().map(|c| col(inner, c)).collect();
        let set: Vec<String> = child.iter().map(|c| format!("{c} IS NOT NULL")).collect();
        let unset: Vec<String> = parent.iter().map(|p| format!("{p} IS NULL")).collect();
        return format!(
            "({} OR NOT (ROW({}) {} ANY (SELECT {} FROM {child_qualified} {inner} WHERE {}{survivors})))",
            unset.join(" OR "),
            parent.join(", "),
            op("="),
            child.join(", "),
            set.join(" AND ")
        );
    }
    let join: Vec<String> = edge
        .child_columns
        .iter()
        .zip(&edge.parent_columns)
        .map(|(c, p)| format!("{} {} {}", col(inner, c), op("="), col(alias, p)))
        .collect();
    format!(
        "NOT EXISTS (SELECT 1 FROM {child_qualified} {inner} WHERE {}{survivors})",
        join.join(" AND ")
    )
}

/// `EXISTS` a row of `parent` referenced by the row `alias` through `edge`
/// and satisfying `condition` (on alias `inner`).
pub fn references_where(
    alias: &str,
    parent_qualified: &str,
    edge: &ForeignKey,
    inner: &str,
    condition: &str,
) -> String {
    let join: Vec<String> = edge
        .child_columns
        .iter()
        .zip(&edge.parent_columns)
        .map(|(c, p)| format!("{} {} {}", col(inner, p), op("="), col(alias, c)))
        .collect();
    format!(
        "EXISTS (SELECT 1 FROM {parent_qualified} {inner} WHERE {} AND ({condition}))",
        join.join(" AND ")
    )
}

/// `alias.time < $param`.
pub fn older_than(alias: &str, time: &Column, param: usize) -> String {
    format!("{} {} ${param}", col(alias, &time.name), op("<"))
}

/// Count and date range of the rows of `qualified` (alias `t`) satisfying
/// `condition`.
pub fn count_where_sql(qualified: &str, time: Option<&Column>, condition: &str) -> String {
    let range = match time {
        Some(t) => format!(
            "pg_catalog.min({c})::pg_catalog.timestamptz, pg_catalog.max({c})::pg_catalog.timestamptz",
            c = col("t", &t.name)
        ),
        None => "NULL::pg_catalog.timestamptz, NULL::pg_catalog.timestamptz".to_string(),
    };
    format!("SELECT pg_catalog.count(*), {range} FROM {qualified} t WHERE {condition}")
}

/// Rows of a partition removed whole ([`crate::partitions`]), read before it
/// goes: count, oldest and newest as microseconds since the epoch (as
/// [`deleted_summary`] reports deleted rows), the size of the partition and
/// those below it (`$1`, their oids), and how many of its rows are not
/// older than the cutoff (`$2`) by the batches' own test.
pub fn partition_summary_sql(partition: &str, time: &Column) -> String {
    let t = col("t", &time.name);
    format!(
        "SELECT pg_catalog.count(*), {}, {}, \
           (SELECT pg_catalog.sum(pg_catalog.pg_total_relation_size(m))::pg_catalog.int8 FROM pg_catalog.unnest($1::pg_catalog.oid[]) m), \
           pg_catalog.count(*) FILTER (WHERE ({}) IS NOT TRUE) \
         FROM {partition} t",
        epoch_us(&format!("pg_catalog.min({t})")),
        epoch_us(&format!("pg_catalog.max({t})")),
        older_than("t", time, 2),
    )
}

/// The columns children reference (`carried`) of at most `$1` rows of a
/// partition, in key order; with `after`, only rows whose key comes after
/// `$2...`: a keyset over the partition's rows while their dependents are
/// deleted.
pub fn partition_keys_sql(partition: &str, table: &TableShape, after: bool) -> String {
    let keys: Vec<String> = table.key.iter().map(|c| col("t", &c.name)).collect();
    let condition = if after {
        let params: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
        format!(
            " WHERE ({}) {} ({})",
            keys.join(", "),
            op(">"),
            params.join(", ")
        )
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM {partition} t{condition} ORDER BY {} LIMIT $1",
        col_list("t", &table.carried),
        keys.join(", ")
    )
}

/// `alias.tableoid <> ALL ('{oids}')`: the rows of none of `relids`.
pub fn not_in_tables(alias: &str, relids: &[RelId]) -> String {
    let oids: Vec<String> = relids.iter().map(u32::to_string).collect();
    format!(
        "{alias}.tableoid {} ALL ('{{{}}}'::pg_catalog.oid[])",
        op("<>"),
        oids.join(",")
    )
}

pub fn detach_partition_sql(parent: &str, partition: &str) -> String {
    format!("ALTER TABLE {parent} DETACH PARTITION {partition}")
}

/// Moves a detached partition kept as a table to `schema`.
pub fn set_schema_sql(table: &str, schema: &str) -> String {
    format!("ALTER TABLE {table} SET SCHEMA {}", quote_ident(schema))
}

/// Whether relation `$1` is no partition (any more).
pub const DETACHED_SQL: &str = "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_inherits i \
     WHERE i.inhrelid OPERATOR(pg_catalog.=) $1)";

/// Whether relation `$1` is gone.
pub const DROPPED_SQL: &str = "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_class c \
     WHERE c.oid OPERATOR(pg_catalog.=) $1)";

/// Whether relation `$1` is in schema `$2`.
pub const MOVED_SQL: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
     WHERE c.oid OPERATOR(pg_catalog.=) $1 AND n.nspname OPERATOR(pg_catalog.=) $2)";

/// Drops a detached partition, never what depends on it (RESTRICT: a view
/// on it makes the drop fail, and the partition stays).
pub fn drop_table_sql(table: &str) -> String {
    format!("DROP TABLE {table} RESTRICT")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::OnDelete;

    fn column(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            type_sql: ty.into(),
            type_oid: 20,
        }
    }

    fn shape(name: &str, key: &[&str]) -> TableShape {
        let key: Vec<Column> = key.iter().map(|k| column(k, "bigint")).collect();
        TableShape {
            relid: 1,
            qualified: quote_qualified("public", name),
            carried: key.clone(),
            key,
            time_column: Some(column("ts", "timestamp with time zone")),
            plain_table: true,
            partitioned: false,
            has_inheritors: false,
            excluded_inheritors: Vec::new(),
        }
    }

    #[test]
    fn quoting_survives_hostile_names() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(
            quote_ident("x\"; DROP TABLE y; --"),
            "\"x\"\"; DROP TABLE y; --\""
        );
        assert_eq!(
            quote_qualified("My Schema", "Ünïcode"),
            "\"My Schema\".\"Ünïcode\""
        );
    }

    #[test]
    fn root_select_is_a_keyset_batch() {
        let t = shape("events", &["id"]);
        let time = column("kickoff", "timestamp with time zone");
        let first = RootBatch {
            table: &t,
            time: &time,
            start: BatchStart::First,
            extra: None,
            guard: None,
        };
        assert_eq!(
            first.select_sql(true),
            "SELECT t.\"kickoff\", t.\"id\" FROM \"public\".\"events\" t \
             WHERE t.\"kickoff\" OPERATOR(pg_catalog.<) $1 ORDER BY t.\"kickoff\", t.\"id\" LIMIT $2 FOR UPDATE OF t SKIP LOCKED"
        );
        // The delete probes the key's index once per batch key, or reads
        // the locked rows by ctid.
        assert!(first.delete_sql(true, true).contains(
            "DELETE FROM ONLY \"public\".\"events\" x WHERE x.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT b.__retention_ctid FROM b))"
        ));
        assert!(first
            .delete_sql(true, true)
            .contains("LIMIT $2 FOR UPDATE OF t SKIP LOCKED)"));
        // Without row locks, by ctid only: the delete locks each row itself.
        assert!(!first.delete_sql(true, false).contains("FOR UPDATE"));
        assert!(first
            .delete_sql(false, false)
            .contains("FOR UPDATE OF t SKIP LOCKED"));
        assert!(first.delete_sql(false, true).contains(
            "DELETE FROM \"public\".\"events\" x USING ROWS FROM (pg_catalog.unnest(ARRAY(SELECT b.\"id\" FROM b))) k(\"id\") \
             WHERE x.\"id\" OPERATOR(pg_catalog.=) k.\"id\" AND x.\"kickoff\" OPERATOR(pg_catalog.<) $1"
        ));
        let next = RootBatch {
            start: BatchStart::After,
            ..first.clone()
        };
        assert!(next
            .select_sql(true)
            .contains("AND (t.\"kickoff\", t.\"id\") OPERATOR(pg_catalog.>) ($3, $4)"));
        let within = RootBatch {
            start: BatchStart::Keys,
            ..first
        };
        assert!(within.select_sql(true).contains(
            "WHERE t.\"kickoff\" OPERATOR(pg_catalog.<) $1 AND t.\"id\" OPERATOR(pg_catalog.=) ANY ($3) ORDER BY"
        ));
        assert_eq!(
            within.same_time_keys_sql(),
            "SELECT t.\"id\" FROM \"public\".\"events\" t \
             WHERE t.\"kickoff\" OPERATOR(pg_catalog.=) $1 \
             AND t.\"id\" OPERATOR(pg_catalog.>) $2 ORDER BY t.\"id\" LIMIT $3"
        );
    }

    #[test]
    fn a_sweep_in_a_partition_is_under_its_guard() {
        let t = shape("events_1", &["id"]);
        let time = column("ts", "timestamp with time zone");
        let leaf = RootBatch {
            table: &t,
            time: &time,
            start: BatchStart::Sweep,
            extra: None,
            guard: Some("GUARD".into()),
        };
        let in_range = "t.ctid OPERATOR(pg_catalog.<) $4 AND t.tableoid OPERATOR(pg_catalog.=) '1'::pg_catalog.oid AND GUARD";
        assert_eq!(
            leaf.sweep_budget_delete_sql(),
            format!(
                "DELETE FROM ONLY \"public\".\"events_1\" t WHERE t.\"ts\" OPERATOR(pg_catalog.<) $1 \
                 AND t.ctid OPERATOR(pg_catalog.>) $3 AND {in_range} \
                 AND pg_catalog._retention_sweep_take(t.ctid, t.\"ts\"::pg_catalog.timestamptz)"
            )
        );
        assert!(leaf
            .sweep_locked_delete_sql()
            .contains(&format!("{in_range} ORDER BY")));
        assert!(leaf.sweep_locked_delete_sql().contains(", GUARD FROM ("));
        let table = RootBatch {
            guard: None,
            ..leaf
        };
        assert!(!table.sweep_budget_delete_sql().contains("GUARD"));
        assert!(table.sweep_locked_delete_sql().contains(", true FROM ("));
    }

    #[test]
    fn the_sweep_budget_is_called_with_the_time_as_its_exact_type() {
        let t = shape("events", &["id"]);
        for (type_oid, cast) in [
            (pgrx::pg_sys::DATEOID, "pg_catalog.date"),
            (pgrx::pg_sys::TIMESTAMPOID, "pg_catalog.timestamp"),
            (pgrx::pg_sys::TIMESTAMPTZOID, "pg_catalog.timestamptz"),
        ] {
            let time = Column {
                type_oid: type_oid.to_u32(),
                ..column("ts", "any")
            };
            let batch = RootBatch {
                table: &t,
                time: &time,
                start: BatchStart::Sweep,
                extra: None,
                guard: None,
            };
            assert!(batch.sweep_budget_delete_sql().ends_with(&format!(
                " AND pg_catalog._retention_sweep_take(t.ctid, t.\"ts\"::{cast})"
            )));
        }
    }

    #[test]
    fn composite_keys_are_matched_as_tuples() {
        let t = shape("pairs", &["a", "b"]);
        let sql = delete_by_keys_sql(
            &t,
            Recheck::Expired {
                time: &column("ts", "date"),
                extra: None,
            },
        );
        assert!(sql.contains(
            "(x.\"a\", x.\"b\") OPERATOR(pg_catalog.=) ANY (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)))"
        ));
        assert!(sql.contains("AND x.\"ts\" OPERATOR(pg_catalog.<) $3"));
    }

    #[test]
    fn child_statements_bind_the_parent_keys() {
        let child = shape("market_odds", &["id"]);
        let edge = ForeignKey {
            name: "fk".into(),
            child: 2,
            parent: 1,
            child_columns: vec!["snapshot_id".into()],
            parent_columns: vec!["id".into()],
            on_delete: OnDelete::NoAction,
            partition_copy: false,
        };
        assert_eq!(
            child_select_sql(&child, &edge, true),
            "SELECT t.\"id\" FROM ONLY \"public\".\"market_odds\" t \
             WHERE t.\"snapshot_id\" OPERATOR(pg_catalog.=) ANY ($1) LIMIT $2 FOR UPDATE OF t"
        );
        let del = child_delete_sql(&child, &edge, false);
        assert!(del.contains(
            "DELETE FROM ONLY \"public\".\"market_odds\" x USING (SELECT * FROM b LIMIT $2) l WHERE x.\"id\" OPERATOR(pg_catalog.=) l.\"id\""
        ));
        assert!(del.ends_with("FROM d"));
        let by_ctid = child_delete_sql(&child, &edge, true);
        assert!(by_ctid.starts_with(
            "WITH b AS MATERIALIZED (SELECT t.ctid AS __retention_ctid FROM ONLY \"public\".\"market_odds\" t \
             WHERE t.\"snapshot_id\" OPERATOR(pg_catalog.=) ANY ($1) LIMIT $2 OPERATOR(pg_catalog.+) 1), \
             d AS (DELETE FROM ONLY \"public\".\"market_odds\" x WHERE x.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT b.__retention_ctid FROM b LIMIT $2)) \
             AND x.\"snapshot_id\" OPERATOR(pg_catalog.=) ANY ($1) RETURNING"
        ));
        // Without row locks (Citus): no FOR UPDATE, and the delete re-checks
        // that each row still references a parent of the batch ($2).
        assert!(child_select_sql(&child, &edge, false).ends_with("LIMIT $2"));
        assert!(delete_by_keys_sql(&child, Recheck::References(&edge)).starts_with(
            "WITH d AS (DELETE FROM ONLY \"public\".\"market_odds\" x \
             WHERE x.\"id\" OPERATOR(pg_catalog.=) ANY ($1) AND x.\"snapshot_id\" OPERATOR(pg_catalog.=) ANY ($2) RETURNING"
        ));
    }

    #[test]
    fn one_statement_batch_counts_every_child_and_leaves_them_to_the_cascade() {
        let parent = shape("snapshots", &["id"]);
        let odds = shape("odds", &["id"]);
        let notes = shape("notes", &["id"]);
        let time = column("captured_at", "timestamp with time zone");
        let batch = RootBatch {
            table: &parent,
            time: &time,
            start: BatchStart::After,
            extra: None,
            guard: None,
        };
        let children = [
            FusedChild {
                table: &odds,
                column: "snapshot_id",
                parent_column: &parent.key[0],
            },
            FusedChild {
                table: &notes,
                column: "snapshot_id",
                parent_column: &parent.key[0],
            },
        ];
        let sql = batch.fused_sql(&children);
        // $3, $4: the keyset; $5: the statement limit.
        assert!(sql.contains("c0 AS MATERIALIZED (SELECT CASE WHEN (SELECT pg_catalog.max(b.\"id\")::pg_catalog.numeric \
             OPERATOR(pg_catalog.-) pg_catalog.min(b.\"id\") OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.=) pg_catalog.count(b.\"id\") FROM b) \
             THEN (SELECT pg_catalog.count(*) FROM (SELECT 1 FROM ONLY \"public\".\"odds\" t WHERE t.\"snapshot_id\" \
             OPERATOR(pg_catalog.>=) (SELECT pg_catalog.min(b.\"id\") FROM b) AND t.\"snapshot_id\" OPERATOR(pg_catalog.<=) (SELECT pg_catalog.max(b.\"id\") FROM b) \
             LIMIT $5 OPERATOR(pg_catalog.+) 1) s) \
             ELSE (SELECT pg_catalog.count(*) FROM (SELECT 1 FROM ONLY \"public\".\"odds\" t \
             WHERE t.\"snapshot_id\" OPERATOR(pg_catalog.=) ANY ((SELECT pg_catalog.array_agg(b.\"id\") FROM b)::bigint[]) \
             LIMIT $5 OPERATOR(pg_catalog.+) 1) s) END AS n)"));
        assert!(sql.contains("ok AS MATERIALIZED (SELECT c0.n OPERATOR(pg_catalog.<=) $5 AND c1.n OPERATOR(pg_catalog.<=) $5 AS allowed, \
             c0.n OPERATOR(pg_catalog.+) c1.n AS found FROM c0, c1)"));
        assert!(!sql.contains("DELETE FROM \"public\".\"odds\""));
        assert!(!sql.contains("DELETE FROM \"public\".\"notes\""));
        assert!(sql.starts_with(
            "WITH b AS MATERIALIZED (SELECT t.\"captured_at\" AS __retention_time, t.\"id\", t.ctid AS __retention_ctid \
             FROM ONLY \"public\".\"snapshots\" t WHERE"
        ));
        assert!(sql.contains("LIMIT $2 FOR UPDATE OF t SKIP LOCKED)"));
        assert!(sql.contains(
            "d AS (DELETE FROM ONLY \"public\".\"snapshots\" x \
             WHERE x.ctid OPERATOR(pg_catalog.=) ANY ((SELECT pg_catalog.array_agg(b.__retention_ctid) FROM b)::pg_catalog.tid[]) \
             AND x.\"captured_at\" OPERATOR(pg_catalog.<) $1 AND (SELECT ok.allowed FROM ok) RETURNING"
        ));
        assert!(sql.ends_with("FROM ok, (SELECT * FROM b ORDER BY b.__retention_time DESC, b.\"id\" DESC LIMIT 1) last"));
    }

    #[test]
    fn orphan_and_dependency_conditions() {
        let edge = ForeignKey {
            name: "fk".into(),
            child: 2,
            parent: 1,
            child_columns: vec!["t_a".into(), "t_b".into()],
            parent_columns: vec!["a".into(), "b".into()],
            on_delete: OnDelete::NoAction,
            partition_copy: false,
        };
        assert_eq!(
            not_referenced("t", "\"s\".\"c\"", &edge, "c1", None, false),
            "NOT EXISTS (SELECT 1 FROM \"s\".\"c\" c1 WHERE c1.\"t_a\" OPERATOR(pg_catalog.=) t.\"a\" \
             AND c1.\"t_b\" OPERATOR(pg_catalog.=) t.\"b\")"
        );
        // For Citus: the same test, not correlated with `t`.
        assert_eq!(
            not_referenced("t", "\"s\".\"c\"", &edge, "c1", Some("c1.\"d\""), true),
            "(t.\"a\" IS NULL OR t.\"b\" IS NULL OR NOT (ROW(t.\"a\", t.\"b\") OPERATOR(pg_catalog.=) ANY \
             (SELECT c1.\"t_a\", c1.\"t_b\" FROM \"s\".\"c\" c1 WHERE c1.\"t_a\" IS NOT NULL AND c1.\"t_b\" IS NOT NULL \
             AND (c1.\"d\") IS NOT TRUE)))"
        );
        assert_eq!(
            references_where("t", "\"s\".\"p\"", &edge, "p1", "p1.\"ts\" < $1"),
            "EXISTS (SELECT 1 FROM \"s\".\"p\" p1 WHERE p1.\"a\" OPERATOR(pg_catalog.=) t.\"t_a\" \
             AND p1.\"b\" OPERATOR(pg_catalog.=) t.\"t_b\" AND (p1.\"ts\" < $1))"
        );
    }
}
