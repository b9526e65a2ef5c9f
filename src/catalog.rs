//! Reads what a run needs from the catalog and the config table: policies
//! with their cutoffs, foreign keys, and the shape (key, types) of each table.
//! Every query names pg_catalog explicitly, so the caller's search_path
//! cannot redirect it.

use std::collections::{HashMap, HashSet};

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::spi::{SpiClient, SpiError, SpiHeapTupleData};

use crate::errors::{Result, RetentionError};
use crate::planner::{self, ForeignKey, OnDelete, Plan, RelId};
use crate::sqlgen::{quote_ident, quote_qualified, Column, FusedChild, TableShape};
use crate::subxact::BatchFailure;

/// Runs a query and maps its rows, then frees the result at once: a run
/// issues thousands of statements and SPI would otherwise keep every result
/// until the function returns.
pub fn rows<T>(
    client: &SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
    map: impl Fn(&SpiHeapTupleData<'_>) -> std::result::Result<T, SpiError>,
) -> std::result::Result<Vec<T>, SpiError> {
    let table = client.select(sql, None, args)?;
    let out = table.map(|row| map(&row)).collect();
    free_last_result();
    out
}

/// Like [`rows`] for statements that write.
pub fn rows_mut<T>(
    client: &mut SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
    map: impl Fn(&SpiHeapTupleData<'_>) -> std::result::Result<T, SpiError>,
) -> std::result::Result<Vec<T>, SpiError> {
    let table = client.update(sql, None, args)?;
    let out = table.map(|row| map(&row)).collect();
    free_last_result();
    out
}

/// Like [`rows_mut`], as the extension's owner: for the extension's own
/// tables, which PUBLIC may read but not write.
pub fn bookkeeping<T>(
    client: &mut SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
    map: impl Fn(&SpiHeapTupleData<'_>) -> std::result::Result<T, SpiError>,
) -> std::result::Result<Vec<T>, SpiError> {
    crate::security::as_extension_owner(|| rows_mut(client, sql, args, map))
}

fn free_last_result() {
    // SAFETY: SPI_tuptable is the result of the statement just consumed; its
    // rows were copied into Rust values above and nothing refers to it.
    unsafe {
        if !pgrx::pg_sys::SPI_tuptable.is_null() {
            pgrx::pg_sys::SPI_freetuptable(pgrx::pg_sys::SPI_tuptable);
            pgrx::pg_sys::SPI_tuptable = std::ptr::null_mut();
        }
    }
}

pub fn get<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(
    row: &SpiHeapTupleData<'_>,
    ordinal: usize,
) -> std::result::Result<Option<T>, SpiError> {
    row.get::<T>(ordinal)
}

/// The extension's schema, quoted, for statements that reach its tables;
/// also records the extension's owner, who writes its bookkeeping, and
/// refuses a schema whose owner is not trusted as the extension's owner
/// ([`crate::security::check_extension_schema`]).
pub fn extension_schema(client: &SpiClient<'_>) -> Result<String> {
    let found = rows(
        client,
        "SELECT n.nspname::pg_catalog.text, e.extowner, n.oid FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
         WHERE e.extname OPERATOR(pg_catalog.=) 'pg_retention'",
        &[],
        |r| {
            Ok((
                get::<String>(r, 1)?,
                get::<pgrx::pg_sys::Oid>(r, 2)?,
                get::<pgrx::pg_sys::Oid>(r, 3)?,
            ))
        },
    )
    .map_err(internal)?;
    match found.into_iter().next() {
        Some((Some(schema), Some(owner), Some(oid))) => {
            crate::security::set_extension(owner, oid);
            crate::security::check_extension_schema()?;
            Ok(quote_ident(&schema))
        }
        _ => Err(RetentionError::NotReady(
            "extension pg_retention is not installed in this database".into(),
        )),
    }
}

pub fn internal(e: SpiError) -> RetentionError {
    RetentionError::NotReady(format!("pg_retention: catalog query failed: {e}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Expire,
    Orphan,
}

impl PolicyKind {
    pub fn parse(kind: &str) -> Result<Self> {
        match kind {
            "expire" => Ok(Self::Expire),
            "orphan" => Ok(Self::Orphan),
            other => Err(RetentionError::InvalidParameter(format!(
                "policy kind must be 'expire' or 'orphan', not '{other}'"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expire => "expire",
            Self::Orphan => "orphan",
        }
    }
}

/// What an expire policy does with a partition wholly older than its cutoff
/// ([`crate::partitions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionAction {
    /// Detached, then dropped.
    Drop,
    /// Detached and kept as a table of its own; moved to the schema, if any.
    Detach(Option<String>),
}

/// A policy with its cutoff computed once, when the run (or report) starts.
#[derive(Clone, Debug)]
pub struct Policy {
    pub id: i64,
    pub relid: RelId,
    pub kind: PolicyKind,
    pub time_column: String,
    pub label: Option<String>,
    pub batch_size: Option<i32>,
    pub cutoff: TimestampWithTimeZone,
    pub enabled: bool,
    /// `schema.table` as a DBA reads it; `None` when the table was dropped.
    pub relation: Option<String>,
    /// The table's owner: every statement of the policy runs as this role.
    pub owner: pgrx::pg_sys::Oid,
    /// `None` over 0.3.0's policies table (before ALTER EXTENSION UPDATE):
    /// no partition goes whole until the DBA can choose what happens.
    pub partition_action: Option<PartitionAction>,
}

/// A label no policy has is a mistake (a typo, a label removed with its
/// policies): a run, stats or preview with it would do nothing and say
/// nothing. Paused policies count: their label exists.
fn check_label_exists(client: &SpiClient<'_>, schema: &str, label: &str) -> Result<()> {
    let sql = format!(
        "SELECT EXISTS (SELECT FROM {schema}.retention_config p WHERE p.label OPERATOR(pg_catalog.=) $1), \
                (SELECT pg_catalog.string_agg(DISTINCT p.label, ', ' ORDER BY p.label) FROM {schema}.retention_config p)"
    );
    let found = rows(client, &sql, &[label.into()], |r| {
        Ok((get::<bool>(r, 1)?.unwrap_or(false), get::<String>(r, 2)?))
    })
    .map_err(internal)?;
    match found.into_iter().next() {
        Some((true, _)) => Ok(()),
        Some((false, labels)) => Err(RetentionError::UndefinedPolicy(format!(
            "no policy has label \"{label}\" (labels: {})",
            labels.as_deref().unwrap_or("none")
        ))),
        None => Ok(()),
    }
}

/// Policies (all, or one label's; disabled ones only when asked), with
/// `now() - retain` as cutoff; a policy whose cutoff cannot be computed
/// (an interval too long for the timestamp range) comes back broken, with
/// `-infinity` as its cutoff, and is never run.
pub fn load_policies(
    client: &SpiClient<'_>,
    schema: &str,
    label: Option<&str>,
    include_disabled: bool,
) -> Result<(Vec<Policy>, Vec<Broken>)> {
    // Until ALTER EXTENSION UPDATE, this library runs over 0.3.0's table,
    // which has no partition action: no partition goes whole.
    let partition_columns = if has_partition_action(client)? {
        "p.partition_action, p.partition_schema::pg_catalog.text"
    } else {
        "NULL::pg_catalog.text, NULL::pg_catalog.text"
    };
    let sql = format!(
        "SELECT p.id, p.relid::pg_catalog.oid, p.kind, p.time_column::pg_catalog.text, p.label, p.batch_size, \
                p.retain, \
                CASE WHEN c.oid IS NOT NULL THEN pg_catalog.format('%I.%I', n.nspname, c.relname) END, p.enabled, c.relowner, \
                {partition_columns} \
         FROM {schema}.retention_config p \
         LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relid::pg_catalog.oid \
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE (p.enabled OR $2) AND ($1::pg_catalog.text IS NULL OR p.label OPERATOR(pg_catalog.=) $1) \
         ORDER BY p.id"
    );
    let policies = rows(
        client,
        &sql,
        &[label.into(), include_disabled.into()],
        |r| {
            Ok((
                get::<i64>(r, 1)?,
                get::<pgrx::pg_sys::Oid>(r, 2)?,
                get::<String>(r, 3)?,
                get::<String>(r, 4)?,
                get::<String>(r, 5)?,
                get::<i32>(r, 6)?,
                get::<pgrx::datum::Interval>(r, 7)?,
                get::<String>(r, 8)?,
                get::<bool>(r, 9)?,
                get::<pgrx::pg_sys::Oid>(r, 10)?,
                (get::<String>(r, 11)?, get::<String>(r, 12)?),
            ))
        },
    )
    .map_err(internal)?;
    let mut healthy = Vec::new();
    let mut broken = Vec::new();
    for (
        id,
        relid,
        kind,
        column,
        label,
        batch_size,
        retain,
        relation,
        enabled,
        owner,
        partitions,
    ) in policies
    {
        let mut policy = Policy {
            id: id.unwrap_or_default(),
            relid: relid.map(|o| o.to_u32()).unwrap_or_default(),
            kind: PolicyKind::parse(kind.as_deref().unwrap_or_default())?,
            time_column: column.unwrap_or_default(),
            label,
            batch_size,
            cutoff: TimestampWithTimeZone::negative_infinity(),
            enabled: enabled.unwrap_or_default(),
            relation,
            owner: owner.unwrap_or(pgrx::pg_sys::Oid::INVALID),
            partition_action: match partitions {
                (Some(action), schema) if action == "detach" => {
                    Some(PartitionAction::Detach(schema))
                }
                (Some(_), _) => Some(PartitionAction::Drop),
                (None, _) => None,
            },
        };
        match cutoff_of(client, retain) {
            Ok(cutoff) => {
                policy.cutoff = cutoff;
                healthy.push(policy);
            }
            Err(error) => broken.push(Broken {
                policy,
                error: BatchFailure {
                    message: format!(
                        "its cutoff, now() - retain, is out of range: {}",
                        error.message
                    ),
                    ..error
                },
            }),
        }
    }
    Ok((healthy, broken))
}

/// Whether the policies table has the partition action (0.4.0 on).
fn has_partition_action(client: &SpiClient<'_>) -> Result<bool> {
    let sql = "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension e \
           JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) e.extnamespace \
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid \
           WHERE e.extname OPERATOR(pg_catalog.=) 'pg_retention' AND c.relname OPERATOR(pg_catalog.=) 'retention_config' \
             AND a.attname OPERATOR(pg_catalog.=) 'partition_action' AND NOT a.attisdropped)";
    let found = rows(client, sql, &[], |r| get::<bool>(r, 1)).map_err(internal)?;
    Ok(found.into_iter().next().flatten().unwrap_or(false))
}

/// `now() - retain`, or why it cannot be computed.
pub fn cutoff_of(
    client: &SpiClient<'_>,
    retain: Option<pgrx::datum::Interval>,
) -> std::result::Result<TimestampWithTimeZone, BatchFailure> {
    let retain = retain.ok_or(RetentionError::NullArgument("retain"))?;
    crate::subxact::in_subtransaction(|| {
        rows(
            client,
            "SELECT pg_catalog.now() OPERATOR(pg_catalog.-) $1",
            &[retain.into()],
            |r| get::<TimestampWithTimeZone>(r, 1),
        )
        .map_err(internal)?
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| RetentionError::NotReady("now() - retain returned no row".into()))
    })
}

/// A policy that cannot run (its time column is gone, its table lost its
/// key, its foreign keys form a cycle, its cutoff is out of range...): it
/// fails alone, in every run and report, while the others go on.
#[derive(Clone, Debug)]
pub struct Broken {
    pub policy: Policy,
    pub error: BatchFailure,
}

/// Every foreign key of the database, once per referencing table: the
/// copies Postgres makes on the referencing table's partitions are skipped
/// (the constraint on the partitioned table stands for them), those it makes
/// for the referenced table's partitions are kept (deleting a partition's
/// rows, as a dependent of some other table, must clear the rows that
/// reference them through the partitioned table).
pub fn load_foreign_keys(client: &SpiClient<'_>) -> Result<Vec<ForeignKey>> {
    let sql = "SELECT pg_catalog.format('%I.%I', n.nspname, c.conname), c.conrelid::pg_catalog.oid, c.confrelid::pg_catalog.oid, c.confdeltype::pg_catalog.text, \
            ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(num, ord) \
                  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.conrelid AND a.attnum OPERATOR(pg_catalog.=) k.num ORDER BY k.ord), \
            ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY k(num, ord) \
                  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.confrelid AND a.attnum OPERATOR(pg_catalog.=) k.num ORDER BY k.ord), \
            c.conparentid OPERATOR(pg_catalog.<>) 0 \
         FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.connamespace \
         WHERE c.contype OPERATOR(pg_catalog.=) 'f' \
           AND (c.conparentid OPERATOR(pg_catalog.=) 0 \
                OR c.conrelid OPERATOR(pg_catalog.=) (SELECT p.conrelid FROM pg_catalog.pg_constraint p \
                                                      WHERE p.oid OPERATOR(pg_catalog.=) c.conparentid))";
    let raw = rows(client, sql, &[], |r| {
        Ok((
            get::<String>(r, 1)?,
            get::<pgrx::pg_sys::Oid>(r, 2)?,
            get::<pgrx::pg_sys::Oid>(r, 3)?,
            get::<String>(r, 4)?,
            get::<Vec<String>>(r, 5)?,
            get::<Vec<String>>(r, 6)?,
            get::<bool>(r, 7)?,
        ))
    })
    .map_err(internal)?;
    Ok(raw
        .into_iter()
        .filter_map(
            |(name, child, parent, action, child_cols, parent_cols, copy)| {
                Some(ForeignKey {
                    name: name?,
                    child: child?.to_u32(),
                    parent: parent?.to_u32(),
                    child_columns: child_cols?,
                    parent_columns: parent_cols?,
                    on_delete: OnDelete::from_confdeltype(action.as_deref()?)?,
                    partition_copy: copy.unwrap_or(false),
                })
            },
        )
        .collect())
}

/// `schema.table` as a DBA reads it.
pub fn relation_name(client: &SpiClient<'_>, relid: RelId) -> Result<String> {
    let found = rows(
        client,
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[pgrx::pg_sys::Oid::from(relid).into()],
        |r| get::<String>(r, 1),
    )
    .map_err(internal)?;
    found.into_iter().next().flatten().ok_or_else(|| {
        RetentionError::UndefinedTable(format!("relation with oid {relid} does not exist"))
    })
}

/// Name and type of the given columns of `relid`, in the order asked.
pub fn columns(client: &SpiClient<'_>, relid: RelId, names: &[String]) -> Result<Vec<Column>> {
    let found = rows(
        client,
        "SELECT a.attname::pg_catalog.text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid \
         FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
        &[pgrx::pg_sys::Oid::from(relid).into()],
        |r| {
            Ok((
                get::<String>(r, 1)?.unwrap_or_default(),
                get::<String>(r, 2)?.unwrap_or_default(),
                get::<pgrx::pg_sys::Oid>(r, 3)?.map(|o| o.to_u32()).unwrap_or_default(),
            ))
        },
    )
    .map_err(internal)?;
    names
        .iter()
        .map(|name| {
            let column = found.iter().find(|(n, _, _)| n == name);
            match column {
                Some((n, t, oid)) => Ok(Column {
                    name: n.clone(),
                    type_sql: t.clone(),
                    type_oid: *oid,
                }),
                None => Err(RetentionError::UndefinedColumn(format!(
                    "column \"{name}\" of table {} does not exist",
                    relation_name(client, relid)?
                ))),
            }
        })
        .collect()
}

/// The columns that identify a row: the primary key, or else the narrowest
/// valid, immediate, non-partial unique index over NOT NULL columns.
pub fn row_key(client: &SpiClient<'_>, relid: RelId, display: &str) -> Result<Vec<String>> {
    let found = rows(
        client,
        "SELECT ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY k(num, ord) \
                      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) k.num \
                      WHERE k.ord OPERATOR(pg_catalog.<=) i.indnkeyatts ORDER BY k.ord) \
         FROM pg_catalog.pg_index i \
         WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique AND i.indisvalid AND i.indimmediate \
           AND i.indpred IS NULL AND i.indexprs IS NULL \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) k(num) \
                           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) k.num \
                           WHERE NOT a.attnotnull) \
         ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid LIMIT 1",
        &[pgrx::pg_sys::Oid::from(relid).into()],
        |r| get::<Vec<String>>(r, 1),
    )
    .map_err(internal)?;
    found.into_iter().next().flatten().ok_or_else(|| {
        RetentionError::Unsupported(format!(
            "table {display} has no primary key or unique index over NOT NULL columns; \
             pg_retention deletes in batches by key and needs one (ALTER TABLE {display} ADD PRIMARY KEY (...))"
        ))
    })
}

/// Whether a policy could run on its own: its time column exists, its
/// walked foreign keys form no cycle, every table it deletes from has a row
/// key, and every table it reaches is owned by a role that holds the
/// privileges of the policy table's owner ([`check_owners`]).
fn check_runnable(
    client: &SpiClient<'_>,
    schema: &str,
    p: &Policy,
    foreign_keys: &[ForeignKey],
) -> Result<()> {
    let display = p.relation.as_deref().unwrap_or("?");
    columns(client, p.relid, std::slice::from_ref(&p.time_column)).map_err(|_| {
        RetentionError::UndefinedColumn(format!(
            "time column \"{}\" of table {display} no longer exists; alter or remove policy {}",
            p.time_column, p.id
        ))
    })?;
    let tables = deleted_tables(client, p.relid, display, p.kind, foreign_keys)?;
    if p.kind == PolicyKind::Expire {
        check_covered_inheritors(client, schema, p, foreign_keys)?;
    }
    // An orphan policy also reads the tables that reference its table.
    let read = foreign_keys
        .iter()
        .filter(|fk| p.kind == PolicyKind::Orphan && fk.parent == p.relid)
        .map(|fk| fk.child);
    let reached: Vec<RelId> = tables.iter().copied().chain(read).collect();
    check_owners(client, p, &reached)
}

/// The tables a policy on `relid` deletes from, children first: refused
/// when its walked foreign keys form a cycle (or, for an orphan policy, its
/// table references itself), or when one of them has no row key. Checked
/// when a policy is added and whenever a run or report loads it.
pub fn deleted_tables(
    client: &SpiClient<'_>,
    relid: RelId,
    display: &str,
    kind: PolicyKind,
    foreign_keys: &[ForeignKey],
) -> Result<Vec<RelId>> {
    let tables = match kind {
        PolicyKind::Expire => {
            planner::plan(&[relid], foreign_keys)
                .map_err(|e| {
                    RetentionError::Unsupported(format!(
                        "cannot plan the deletion order for {display}: {e}"
                    ))
                })?
                .order
        }
        PolicyKind::Orphan => {
            if let Some(fk) = foreign_keys
                .iter()
                .find(|fk| fk.parent == relid && fk.child == relid)
            {
                return Err(RetentionError::Unsupported(format!(
                    "orphan policies on self-referencing tables are not supported ({} references {display})",
                    fk.name
                )));
            }
            vec![relid]
        }
    };
    for &table in &tables {
        let name = relation_name(client, table)?;
        row_key(client, table, &name)?;
        refuse_delete_rules(client, table, &name)?;
    }
    Ok(tables)
}

/// A rule on DELETE makes a DELETE do something else (an INSTEAD rule) or
/// more (an ALSO rule), and PostgreSQL refuses most rules in the
/// data-modifying WITH clauses most of the run's statements are, but not in
/// a plain DELETE (a sweep's): a policy reaching such a table is refused
/// whole (0A000), at add time and at every run, rather than deleting by some
/// statements and doing the rule's action by others.
pub fn refuse_delete_rules(client: &SpiClient<'_>, relid: RelId, display: &str) -> Result<()> {
    let rules = rows(
        client,
        "SELECT pg_catalog.quote_ident(r.rulename) FROM pg_catalog.pg_rewrite r \
         WHERE r.ev_class OPERATOR(pg_catalog.=) $1 AND r.ev_type OPERATOR(pg_catalog.=) '4' ORDER BY r.rulename",
        &[pgrx::pg_sys::Oid::from(relid).into()],
        |r| get::<String>(r, 1),
    )
    .map_err(internal)?;
    match rules.into_iter().flatten().next() {
        Some(rule) => Err(RetentionError::Unsupported(format!(
            "table {display} has a rule on DELETE ({rule}); pg_retention deletes rows itself and \
             cannot apply rules: drop the rule (DROP RULE {rule} ON {display}) or the policy"
        ))),
        None => Ok(()),
    }
}

/// What can change a DELETE on a table before or as it deletes: rules
/// (`pg_class.relhasrules`), which rewrite it, and BEFORE DELETE row
/// triggers (enabled or not), which may keep a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteHooks {
    pub rules: bool,
    pub before_row_trigger: bool,
}

/// The [`DeleteHooks`] of table `relid`, read from the relation cache: up
/// to date once the table is locked, as no rule or trigger can be created
/// without a lock that conflicts with a delete's. Neither for a relation that
/// no longer exists.
pub fn delete_hooks(relid: RelId) -> DeleteHooks {
    // SAFETY: the relation is open only for the read, and closed before
    // return; NULL for a relation that no longer exists.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(pg_sys::Oid::from(relid));
        if rel.is_null() {
            return DeleteHooks::default();
        }
        let triggers = (*rel).trigdesc;
        let hooks = DeleteHooks {
            rules: (*(*rel).rd_rel).relhasrules,
            before_row_trigger: !triggers.is_null() && (*triggers).trig_delete_before_row,
        };
        pg_sys::RelationClose(rel);
        hooks
    }
}

/// A policy's batches cover the tables inheriting from its table (but those
/// with a policy of their own), and its walk clears the dependents of its
/// table's own rows only: a covered inheritance child that a walked foreign
/// key references would have its rows deleted with their dependents left
/// (NO ACTION, RESTRICT: the batch fails) or cascaded uncounted. Refused,
/// naming the key: such a child takes a policy of its own.
fn check_covered_inheritors(
    client: &SpiClient<'_>,
    schema: &str,
    p: &Policy,
    foreign_keys: &[ForeignKey],
) -> Result<()> {
    let descendants = rows(
        client,
        "WITH RECURSIVE tree(relid) AS ( \
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) $1 \
           UNION \
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
         SELECT t.relid FROM tree t JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid \
         WHERE c.relkind OPERATOR(pg_catalog.=) 'r'",
        &[pgrx::pg_sys::Oid::from(p.relid).into()],
        |r| get::<pgrx::pg_sys::Oid>(r, 1),
    )
    .map_err(internal)?;
    let descendants: Vec<RelId> = descendants
        .into_iter()
        .flatten()
        .map(|o| o.to_u32())
        .collect();
    if descendants.is_empty() {
        return Ok(());
    }
    let excluded = excluded_inheritors(client, schema, p.relid)?;
    // A partition's copy of a key that references the partitioned table is
    // cleared through the original, by the policy's own walk.
    let referenced = foreign_keys.iter().find(|fk| {
        fk.on_delete.is_walked()
            && !fk.partition_copy
            && descendants.contains(&fk.parent)
            && !excluded.contains(&fk.parent)
    });
    match referenced {
        None => Ok(()),
        Some(fk) => Err(RetentionError::Unsupported(format!(
            "table {} inherits from {}, whose policy covers its rows, and foreign key {} references it; \
             give {} an expire policy of its own (its rows then follow that one)",
            relation_name(client, fk.parent)?,
            p.relation.as_deref().unwrap_or("?"),
            fk.name,
            relation_name(client, fk.parent)?
        ))),
    }
}

/// Every statement of a policy runs as the policy table's owner, so the
/// triggers, index expressions and RLS expressions of every table it
/// deletes from or reads run with that owner's privileges: each such table
/// must be owned by a role that holds them already (the owner itself, a
/// role that is a member of it, a superuser), or its owner could plant code
/// that acts as the policy's owner — a superuser, often. PostgreSQL's own
/// foreign-key actions run as the referencing table's owner for the same
/// reason.
fn check_owners(client: &SpiClient<'_>, p: &Policy, tables: &[RelId]) -> Result<()> {
    let oids: Vec<pgrx::pg_sys::Oid> = tables
        .iter()
        .copied()
        .map(pgrx::pg_sys::Oid::from)
        .collect();
    let foreign = rows(
        client,
        "SELECT pg_catalog.format('%s (owned by %I)', c.oid::pg_catalog.regclass, pg_catalog.pg_get_userbyid(c.relowner)) \
         FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) ANY ($1) AND NOT pg_catalog.pg_has_role(c.relowner, $2, 'USAGE') \
         ORDER BY c.oid",
        &[oids.into(), p.owner.into()],
        |r| get::<String>(r, 1),
    )
    .map_err(internal)?;
    let foreign: Vec<String> = foreign.into_iter().flatten().collect();
    if foreign.is_empty() {
        return Ok(());
    }
    let owner = owner_name(p.owner);
    // Membership in a superuser is superuser: never the advice.
    // SAFETY: reads the catalog for a role oid.
    let remedy = if unsafe { pgrx::pg_sys::superuser_arg(p.owner) } {
        "give the tables one owner".to_string()
    } else {
        format!("give the tables one owner (or make their owner a member of {owner})")
    };
    Err(RetentionError::InsufficientPrivilege(format!(
        "the policy on {} reaches {}, whose owner lacks the privileges of {owner}, the owner of {}: \
         a run acts as {owner} on every table a policy reaches, so that owner's triggers and index \
         expressions would run as {owner}; {remedy}",
        p.relation.as_deref().unwrap_or("?"),
        foreign.join(", "),
        p.relation.as_deref().unwrap_or("?"),
    )))
}

/// Everything a run, a preview or the stats need, read once at the start.
pub struct Setup {
    pub schema: String,
    pub policies: Vec<Policy>,
    /// Policies that cannot run, with why: each fails alone.
    pub broken: Vec<Broken>,
    pub foreign_keys: Vec<ForeignKey>,
    pub plan: Plan,
    /// Orphan-policy tables, children first.
    pub orphan_order: Vec<RelId>,
    pub shapes: HashMap<RelId, TableShape>,
    /// The names the run's statements give the tables orphan tests read
    /// (those it deletes from are named by their shapes).
    read_names: HashMap<RelId, String>,
    pub names: HashMap<RelId, String>,
    /// Each policy's time column with its type.
    pub policy_columns: HashMap<i64, Column>,
    /// Per partition in the plan, its partitioned ancestor with an expire
    /// policy of its own, if any: that policy runs first (see
    /// `deleter::Progress::new`), so the partition's statements only see the
    /// rows the ancestor's policy left.
    pub policy_ancestors: HashMap<RelId, RelId>,
    /// Per partition in the plan or referencing an orphan-policy table, its
    /// partitioned ancestors, nearest first.
    pub partition_ancestors: HashMap<RelId, Vec<RelId>>,
    /// Per orphan-policy table, the test that no row references a row, on
    /// alias `t` (selection) and alias `x` (re-check at delete time).
    orphan_tests: HashMap<RelId, (String, String)>,
    /// `track_counts` is on: a table's deletes in this transaction, cascades
    /// included, can be read from its statistics entry.
    track_counts: bool,
    /// Citus is installed: a distributed table's rows live in shards, each
    /// with its own ctids, so no row is deleted by ctid.
    citus: bool,
    /// Citus tables (distributed, reference, or local tables in its
    /// metadata): statements on them are routed to shards on other nodes.
    citus_tables: HashSet<RelId>,
    /// The reference tables among them.
    citus_reference_tables: HashSet<RelId>,
}

impl Setup {
    /// Whether `a` and `b` are a partition and one of its partitioned
    /// ancestors, in either order: the same rows seen from two tables.
    pub fn same_partition_tree(&self, a: RelId, b: RelId) -> bool {
        let above = |x: RelId, y: RelId| {
            self.partition_ancestors
                .get(&x)
                .is_some_and(|ancestors| ancestors.contains(&y))
        };
        above(a, b) || above(b, a)
    }

    pub fn load(
        client: &SpiClient<'_>,
        label: Option<&str>,
        include_disabled: bool,
    ) -> Result<Self> {
        let schema = extension_schema(client)?;
        if let Some(label) = label {
            check_label_exists(client, &schema, label)?;
        }
        let (loaded, mut broken) = load_policies(client, &schema, label, include_disabled)?;
        let foreign_keys = load_foreign_keys(client)?;
        // Each policy is checked alone first: one that cannot run is set
        // aside with its error, and the plan is made of the others (a cycle
        // in their union would lie within one policy's own closure).
        let mut policies = Vec::new();
        for p in loaded {
            if p.relation.is_none() {
                pgrx::warning!(
                    "pg_retention: policy {} refers to a table that no longer exists; skipped",
                    p.id
                );
                continue;
            }
            match check_runnable(client, &schema, &p, &foreign_keys) {
                Ok(()) => policies.push(p),
                Err(e) => broken.push(Broken {
                    policy: p,
                    error: e.into(),
                }),
            }
        }
        broken.sort_by_key(|b| b.policy.id);
        let roots: Vec<RelId> = policies
            .iter()
            .filter(|p| p.kind == PolicyKind::Expire)
            .map(|p| p.relid)
            .collect();
        let plan = planner::plan(&roots, &foreign_keys).map_err(|e| {
            RetentionError::Unsupported(format!("cannot plan the deletion order: {e}"))
        })?;
        let orphans: Vec<RelId> = policies
            .iter()
            .filter(|p| p.kind == PolicyKind::Orphan)
            .map(|p| p.relid)
            .collect();
        // Partitions referencing an orphan-policy table, and every partition
        // in the plan: what their partitioned tables' policies delete is
        // theirs too.
        let mut reached: Vec<RelId> = plan.order.clone();
        reached.extend(
            foreign_keys
                .iter()
                .filter(|fk| orphans.contains(&fk.parent))
                .map(|fk| fk.child),
        );
        let partition_ancestors = partition_ancestors_of(client, &reached)?;
        let orphan_order = planner::orphan_order(&orphans, &foreign_keys, &partition_ancestors);

        let mut shapes = HashMap::new();
        let mut names = HashMap::new();
        for &relid in plan.order.iter().chain(orphan_order.iter()) {
            if shapes.contains_key(&relid) {
                continue;
            }
            let display = relation_name(client, relid)?;
            let time_column = policies
                .iter()
                .filter(|p| p.relid == relid)
                .min_by_key(|p| p.kind == PolicyKind::Orphan)
                .map(|p| p.time_column.clone());
            let mut shape = load_shape(client, relid, &display, time_column.as_deref(), &plan)?;
            if shape.has_inheritors {
                shape.excluded_inheritors = excluded_inheritors(client, &schema, relid)?;
            }
            shapes.insert(relid, shape);
            names.insert(relid, display);
        }
        let mut policy_columns = HashMap::new();
        for p in &policies {
            let column = columns(client, p.relid, std::slice::from_ref(&p.time_column)).map_err(|_| {
                RetentionError::UndefinedColumn(format!(
                    "time column \"{}\" of policy {} on {} no longer exists; alter or remove the policy",
                    p.time_column,
                    p.id,
                    p.relation.as_deref().unwrap_or("?")
                ))
            })?;
            policy_columns.insert(p.id, column.into_iter().next().expect("one column asked"));
        }
        let mut policy_ancestors = HashMap::new();
        for &relid in &plan.order {
            let with_policy = partition_ancestors.get(&relid).and_then(|ancestors| {
                ancestors.iter().copied().find(|a| {
                    policies
                        .iter()
                        .any(|p| p.kind == PolicyKind::Expire && p.relid == *a)
                })
            });
            if let Some(ancestor) = with_policy {
                policy_ancestors.insert(relid, ancestor);
            }
        }
        let (track_counts, citus) = counts_tracked_and_citus(client)?;
        let (citus_tables, citus_reference_tables) = if citus {
            citus_tables(client)?
        } else {
            Default::default()
        };
        let mut setup = Setup {
            schema,
            policies,
            broken,
            foreign_keys,
            plan,
            orphan_order,
            shapes,
            names,
            policy_columns,
            policy_ancestors,
            partition_ancestors,
            orphan_tests: HashMap::new(),
            read_names: HashMap::new(),
            track_counts,
            citus,
            citus_tables,
            citus_reference_tables,
        };
        setup.refuse_unlocked_cascading_orphans(client)?;
        for relid in setup.orphan_order.clone() {
            let test = setup.build_orphan_test(client, relid)?;
            setup.orphan_tests.insert(relid, test);
            let read: Vec<RelId> = setup.referencing(relid).map(|fk| fk.child).collect();
            for child in read {
                let name = setup.qualified(client, child)?;
                setup.read_names.insert(child, name);
            }
        }
        Ok(setup)
    }

    /// Orphan policies whose rows would be deleted without row locks (a
    /// Citus table among them and the tables referencing them) are refused
    /// when a foreign key to them acts on delete (CASCADE, SET NULL, SET
    /// DEFAULT): the orphan test holds when the delete's subquery reads the
    /// referencing tables, and a row referencing the orphan committed between
    /// then and the delete would be deleted or changed with it. With NO
    /// ACTION or RESTRICT, that delete fails its batch instead.
    fn refuse_unlocked_cascading_orphans(&mut self, client: &SpiClient<'_>) -> Result<()> {
        let mut kept = Vec::new();
        for policy in std::mem::take(&mut self.policies) {
            let acting = (policy.kind == PolicyKind::Orphan)
                .then(|| {
                    self.referencing(policy.relid).find(|fk| {
                        (self.routed(policy.relid) || self.routed(fk.child))
                            && !matches!(fk.on_delete, OnDelete::NoAction | OnDelete::Restrict)
                    })
                })
                .flatten();
            match acting {
                None => kept.push(policy),
                Some(fk) => {
                    let message = format!(
                        "on Citus, no foreign key to an orphan policy's table may act on delete: {} of {} does, \
                         and Citus cannot lock the orphans, so a row referencing one, committed while it is \
                         deleted, would go with it; make the foreign key NO ACTION or RESTRICT",
                        fk.name,
                        relation_name(client, fk.child)?
                    );
                    self.broken.push(Broken {
                        policy,
                        error: RetentionError::Unsupported(message).into(),
                    });
                }
            }
        }
        self.policies = kept;
        self.broken.sort_by_key(|b| b.policy.id);
        Ok(())
    }

    pub fn name(&self, relid: RelId) -> &str {
        self.names.get(&relid).map(String::as_str).unwrap_or("?")
    }

    /// The orphan test of an orphan-policy table, built once per run.
    pub fn orphan_test(&self, relid: RelId) -> &(String, String) {
        &self.orphan_tests[&relid]
    }

    /// No row of any table references the row, through any foreign key.
    fn build_orphan_test(&self, client: &SpiClient<'_>, relid: RelId) -> Result<(String, String)> {
        let mut on_t = Vec::new();
        let mut on_x = Vec::new();
        for (i, fk) in self.referencing(relid).enumerate() {
            let child = self.qualified(client, fk.child)?;
            let inner = format!("c{i}");
            let uncorrelated = self.routed(relid) || self.routed(fk.child);
            on_t.push(crate::sqlgen::not_referenced(
                "t",
                &child,
                fk,
                &inner,
                None,
                uncorrelated,
            ));
            on_x.push(crate::sqlgen::not_referenced(
                "x",
                &child,
                fk,
                &inner,
                None,
                uncorrelated,
            ));
        }
        if on_t.is_empty() {
            return Ok(("true".into(), "true".into()));
        }
        Ok((on_t.join(" AND "), on_x.join(" AND ")))
    }

    /// Whether `relid` is a Citus table: its statements are routed to shards
    /// by Citus, which plans no correlated subquery over a reference table,
    /// no row lock over several shards, no generic plan with parameters.
    pub fn routed(&self, relid: RelId) -> bool {
        self.citus_tables.contains(&relid)
    }

    /// Whether any table of the run is a Citus table.
    pub fn routes_any(&self) -> bool {
        self.plan
            .order
            .iter()
            .chain(&self.orphan_order)
            .any(|r| self.routed(*r))
    }

    /// Whether the run touches a Citus reference table
    /// ([`crate::security::with_citus_sequential`]).
    pub fn routes_reference(&self) -> bool {
        self.plan
            .order
            .iter()
            .chain(&self.orphan_order)
            .any(|r| self.citus_reference_tables.contains(r))
    }

    /// Whether a policy on `relid` touches a Citus reference table: the
    /// table itself, a walked dependent, or (an orphan policy's) a
    /// referencing table it reads.
    pub fn policy_routes_reference(&self, relid: RelId) -> bool {
        !self.citus_reference_tables.is_empty()
            && (self.reaches(relid, |r| self.citus_reference_tables.contains(&r))
                || self
                    .referencing(relid)
                    .any(|fk| self.citus_reference_tables.contains(&fk.child)))
    }

    /// Whether the batches of a policy on `relid` select their rows without
    /// locking them: some table the policy deletes from is a Citus table
    /// (whose row locks Citus takes only within one shard). Every delete
    /// then re-checks its rows, and a batch in which a row changed is rolled
    /// back whole and taken again ([`RetentionError::ChangedDuringBatch`]).
    pub fn lock_free(&self, relid: RelId) -> bool {
        !self.citus_tables.is_empty() && self.reaches(relid, |r| self.routed(r))
    }

    /// Whether `relid` or a table its policy's walk deletes from satisfies `f`.
    fn reaches(&self, relid: RelId, f: impl Fn(RelId) -> bool) -> bool {
        let mut seen = HashSet::new();
        let mut stack = vec![relid];
        while let Some(r) = stack.pop() {
            if !seen.insert(r) {
                continue;
            }
            if f(r) {
                return true;
            }
            stack.extend(self.plan.child_edges(r).map(|e| e.child));
        }
        false
    }

    pub fn policy_column(&self, policy_id: i64) -> &Column {
        &self.policy_columns[&policy_id]
    }

    pub fn shape(&self, relid: RelId) -> &TableShape {
        &self.shapes[&relid]
    }

    /// Tables that must be cleared before rows of `relid` can go.
    pub fn has_walked_children(&self, relid: RelId) -> bool {
        self.plan.child_edges(relid).next().is_some()
    }

    /// Whether a batch of `relid` locked by a statement can be deleted by the
    /// `ctid`s of its rows in that statement: a `ctid` names a row of one
    /// ordinary table (no inheritance children, not partitioned), and Citus
    /// cannot route it.
    pub fn deletes_by_ctid(&self, relid: RelId) -> bool {
        let shape = self.shape(relid);
        shape.plain_table && !shape.has_inheritors && !self.citus
    }

    /// Whether a heap sweep ([`crate::strategy`]) can find `relid`'s expired
    /// rows by `ctid` in the heaps that hold them: an ordinary table that no
    /// table inherits from, or a partitioned table (in its leaf partitions)
    /// whose policy deletes from no other table; never on Citus.
    pub fn may_sweep(&self, relid: RelId) -> bool {
        let shape = self.shape(relid);
        self.deletes_by_ctid(relid)
            || (shape.partitioned && !self.citus && !self.has_walked_children(relid))
    }

    /// The children of `relid` for a one-statement root batch
    /// ([`crate::sqlgen::RootBatch::fused_sql`]), all left to their
    /// `ON DELETE CASCADE`; `None` when its batches need the general walk.
    /// That is so unless `relid` is an ordinary table that no table inherits
    /// from, with a single-column key, and every walked key to it is a
    /// single-column CASCADE key from an ordinary table
    /// with no walked children and no policy of its own: its deletes,
    /// cascades included, are then counted in its statistics entry (read with
    /// `track_counts` on), and the history needs no date range for it.
    /// A NO ACTION or RESTRICT child is never fused: a child committed between
    /// the statement's snapshot and its row locks would be missed by a delete
    /// in the statement and then fail the foreign key check, where a cascade
    /// deletes it like any other.
    pub fn fused_children(&self, relid: RelId) -> Option<Vec<FusedChild<'_>>> {
        let parent = self.shape(relid);
        // The one statement deletes the batch by ctid from this table only.
        if parent.key.len() != 1 || !self.track_counts || !self.deletes_by_ctid(relid) {
            return None;
        }
        self.plan
            .child_edges(relid)
            .map(|edge| {
                let child = self.shape(edge.child);
                let fused = edge.on_delete == OnDelete::Cascade
                    && edge.child_columns.len() == 1
                    && child.plain_table
                    && child.time_column.is_none()
                    && !self.has_walked_children(edge.child);
                fused.then_some(FusedChild {
                    table: child,
                    column: &edge.child_columns[0],
                    parent_column: &parent.carried
                        [parent.carried_index(&edge.parent_columns[0])?],
                })
            })
            .collect()
    }

    /// Every foreign key pointing at `relid`, walked or not: an orphan is a
    /// row none of them references.
    pub fn referencing(&self, relid: RelId) -> impl Iterator<Item = &ForeignKey> {
        self.foreign_keys
            .iter()
            .filter(move |fk| fk.parent == relid)
    }

    /// The tables a policy deletes from, and those it only reads.
    fn tables_of(&self, policy: &Policy) -> (Vec<RelId>, Vec<RelId>) {
        match policy.kind {
            PolicyKind::Orphan => (
                vec![policy.relid],
                self.referencing(policy.relid).map(|fk| fk.child).collect(),
            ),
            PolicyKind::Expire => {
                let mut deleted = vec![policy.relid];
                let mut i = 0;
                while i < deleted.len() {
                    for e in self.plan.child_edges(deleted[i]) {
                        if !deleted.contains(&e.child) {
                            deleted.push(e.child);
                        }
                    }
                    i += 1;
                }
                (deleted, Vec::new())
            }
        }
    }

    /// Locks the tables `policy`'s batch deletes from (ROW EXCLUSIVE) and
    /// reads (ACCESS SHARE) by oid, then checks that each still has the name
    /// the run's statements give it. Statements name tables; a table
    /// renamed during the run, and another created under its name (a table
    /// swap), would otherwise receive the rest of the run's statements. Once
    /// locked, a table cannot be renamed until the step ends, and no other
    /// table can take a name it holds. Run at the start of every batch.
    /// Children first, the policy's table last: the order a batch's deletes
    /// take their `ROW EXCLUSIVE` locks in.
    pub fn pin_tables(&self, policy: &Policy) -> Result<()> {
        let (deleted, read) = self.tables_of(policy);
        let modes = read
            .iter()
            .map(|r| (*r, pg_sys::AccessShareLock))
            .chain(deleted.iter().rev().map(|r| (*r, pg_sys::RowExclusiveLock)));
        self.pin(modes)
    }

    /// [`Setup::pin_tables`] for the tables `policy` deletes from but its
    /// own: before a partition removed whole loses its dependents (its own
    /// table is locked, and its partition named anew, by the removal).
    pub fn pin_dependents(&self, policy: &Policy) -> Result<()> {
        let (deleted, _) = self.tables_of(policy);
        let modes = deleted
            .into_iter()
            .rev()
            .filter(|r| *r != policy.relid)
            .map(|r| (r, pg_sys::RowExclusiveLock));
        self.pin(modes)
    }

    fn pin(&self, tables: impl Iterator<Item = (RelId, u32)>) -> Result<()> {
        for (relid, mode) in tables {
            let named = match self.shapes.get(&relid) {
                Some(shape) => shape.qualified.as_str(),
                None => self.read_names.get(&relid).map_or("", String::as_str),
            };
            // SAFETY: a lock on a relation oid (none is taken on a dropped
            // one's name); the syscache lookups return palloc'd copies or
            // NULL for a relation that no longer exists.
            let now = unsafe {
                pg_sys::LockRelationOid(pg_sys::Oid::from(relid), mode as pg_sys::LOCKMODE);
                current_qualified(relid)
            };
            if now.as_deref() != Some(named) {
                return Err(RetentionError::UndefinedTable(format!(
                    "table {} was renamed or dropped during the run ({}); its policy stops for this run, and the next run plans anew",
                    self.name(relid),
                    match &now {
                        Some(now) => format!("it is now {now}"),
                        None => "it no longer exists".to_string(),
                    }
                )));
            }
        }
        Ok(())
    }

    /// Whose privileges a run deletes `relid`'s rows with: the owner of the
    /// first expire policy (by id) whose deletions reach the table, else of
    /// the table's orphan policy.
    pub fn owner_of(&self, relid: RelId) -> Result<pgrx::pg_sys::Oid> {
        let expire = self
            .policies
            .iter()
            .filter(|p| p.kind == PolicyKind::Expire)
            .find(|p| self.tables_of(p).0.contains(&relid));
        let orphan = || {
            self.policies
                .iter()
                .find(|p| p.kind == PolicyKind::Orphan && p.relid == relid)
        };
        expire.or_else(orphan).map(|p| p.owner).ok_or_else(|| {
            RetentionError::NotReady(format!("no policy reaches {}", self.name(relid)))
        })
    }

    /// The policy table's owner (the run switches to it before calling this)
    /// must be able to SELECT, lock (UPDATE) and DELETE every table the
    /// policy deletes from, and SELECT those it reads; and no table but the
    /// policy's own may hide rows from it with row-level security (a run
    /// would decide on a partial view: an orphan on rows it cannot see, a
    /// preview that misses what the cascade takes). Checked before the
    /// policy's first batch so that a refused policy deletes nothing at all.
    pub fn check_privileges(&self, client: &SpiClient<'_>, policy: &Policy) -> Result<()> {
        let (deleted, read) = self.tables_of(policy);
        let to_oids = |v: &[RelId]| {
            v.iter()
                .copied()
                .map(pgrx::pg_sys::Oid::from)
                .collect::<Vec<_>>()
        };
        let hidden = rows(
            client,
            "SELECT pg_catalog.string_agg(o::pg_catalog.regclass::pg_catalog.text, ', ') \
             FROM pg_catalog.unnest($1::pg_catalog.oid[]) o \
             WHERE o OPERATOR(pg_catalog.<>) $2 AND pg_catalog.row_security_active(o)",
            &[
                to_oids(&[deleted.as_slice(), read.as_slice()].concat()).into(),
                pgrx::pg_sys::Oid::from(policy.relid).into(),
            ],
            |r| get::<String>(r, 1),
        )
        .map_err(internal)?;
        if let Some(tables) = hidden.into_iter().next().flatten() {
            return Err(RetentionError::InsufficientPrivilege(format!(
                "row-level security on {tables} hides rows from {}, the owner of {}: a run would decide on rows it cannot see; nothing was deleted for this policy",
                owner_name(policy.owner),
                policy.relation.as_deref().unwrap_or("the policy's table")
            )));
        }
        let missing = rows(
            client,
            "SELECT pg_catalog.format('%s on %s', pg_catalog.array_to_string(ARRAY[ \
                    CASE WHEN NOT pg_catalog.has_table_privilege(r.oid, 'SELECT') THEN 'SELECT' END, \
                    CASE WHEN r.deletes AND NOT pg_catalog.has_any_column_privilege(r.oid, 'UPDATE') THEN 'UPDATE' END, \
                    CASE WHEN r.deletes AND NOT pg_catalog.has_table_privilege(r.oid, 'DELETE') THEN 'DELETE' END], ', '), \
                    r.oid::pg_catalog.regclass) \
             FROM (SELECT d, true FROM pg_catalog.unnest($1::pg_catalog.oid[]) d \
                   UNION ALL SELECT x, false FROM pg_catalog.unnest($2::pg_catalog.oid[]) x) r(oid, deletes) \
             WHERE NOT pg_catalog.has_table_privilege(r.oid, 'SELECT') \
                OR (r.deletes AND NOT (pg_catalog.has_table_privilege(r.oid, 'DELETE') \
                                       AND pg_catalog.has_any_column_privilege(r.oid, 'UPDATE')))",
            &[to_oids(&deleted).into(), to_oids(&read).into()],
            |r| get::<String>(r, 1),
        )
        .map_err(internal)?;
        let missing: Vec<String> = missing.into_iter().flatten().collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(RetentionError::InsufficientPrivilege(format!(
            "permission denied: {}, the owner of {} (whose privileges a run uses), lacks {}; nothing was deleted for this policy",
            owner_name(policy.owner),
            policy.relation.as_deref().unwrap_or("the policy's table"),
            missing.join("; ")
        )))
    }

    /// `schema.table` quoted, for any relation (children outside the plan
    /// included, as orphan tests need them).
    pub fn qualified(&self, client: &SpiClient<'_>, relid: RelId) -> Result<String> {
        if let Some(shape) = self.shapes.get(&relid) {
            return Ok(shape.qualified.clone());
        }
        let (schema, table, _, _) = describe_relation(client, relid)?;
        Ok(quote_qualified(&schema, &table))
    }
}

/// Locks, by oid, the partitions on the way from a leaf partition up to a
/// policy's table (`links`, leaf first), top-down and the leaf last, ROW
/// EXCLUSIVE, as a delete through the table does (the table itself is
/// locked by [`Setup::pin_tables`]); returns the leaf's name now, which
/// can no longer change until the step ends, or `None` when it is gone.
pub fn lock_partition_path(links: &[(RelId, RelId)]) -> Option<String> {
    for (child, _) in links.iter().rev() {
        // SAFETY: a lock on a relation oid, released at the step's end.
        unsafe {
            pg_sys::LockRelationOid(
                pg_sys::Oid::from(*child),
                pg_sys::RowExclusiveLock as pg_sys::LOCKMODE,
            )
        };
    }
    let (leaf, _) = links.first()?;
    // SAFETY: in the step's transaction.
    unsafe { current_qualified(*leaf) }
}

/// The quoted `"schema"."table"` of relation `relid` as the catalog has it
/// now (after invalidations), or `None` when it is gone.
///
/// # Safety
/// In a transaction; reads the syscache.
unsafe fn current_qualified(relid: RelId) -> Option<String> {
    let oid = pg_sys::Oid::from(relid);
    let table = pg_sys::get_rel_name(oid);
    if table.is_null() {
        return None;
    }
    let schema = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(oid));
    if schema.is_null() {
        return None;
    }
    Some(quote_qualified(
        &std::ffi::CStr::from_ptr(schema).to_string_lossy(),
        &std::ffi::CStr::from_ptr(table).to_string_lossy(),
    ))
}

fn load_shape(
    client: &SpiClient<'_>,
    relid: RelId,
    display: &str,
    time_column: Option<&str>,
    plan: &Plan,
) -> Result<TableShape> {
    let key_names = row_key(client, relid, display)?;
    let mut carried_names = key_names.clone();
    for edge in plan.child_edges(relid) {
        for c in &edge.parent_columns {
            if !carried_names.contains(c) {
                carried_names.push(c.clone());
            }
        }
    }
    let mut carried = columns(client, relid, &carried_names)?;
    let time_column = match time_column {
        Some(t) => columns(client, relid, &[t.to_string()])?.into_iter().next(),
        None => None,
    };
    let (schema, table, relkind, has_inheritors) = describe_relation(client, relid)?;
    // Rows of an inheritance tree are told apart by their table too: a key
    // is unique in each table only.
    let mut key_len = key_names.len();
    if relkind == "r" && has_inheritors {
        carried.insert(0, Column::table_oid());
        key_len += 1;
    }
    let key = carried[..key_len].to_vec();
    Ok(TableShape {
        relid,
        qualified: quote_qualified(&schema, &table),
        key,
        carried,
        time_column,
        plain_table: relkind == "r",
        partitioned: relkind == "p",
        has_inheritors,
        excluded_inheritors: Vec::new(),
    })
}

/// The tables inheriting from `relid` that follow an expire policy of their
/// own or of a table between them and `relid` (any policy, enabled or not,
/// of any label: a paused child policy keeps its rows from its parent's
/// policy too). Read as the extension's owner, who sees every policy.
fn excluded_inheritors(client: &SpiClient<'_>, schema: &str, relid: RelId) -> Result<Vec<RelId>> {
    let sql = format!(
        "WITH RECURSIVE tree(relid) AS ( \
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) $1 \
           UNION ALL \
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent OPERATOR(pg_catalog.=) t.relid), \
         own AS (SELECT t.relid FROM tree t WHERE EXISTS (SELECT FROM {schema}.retention_config c \
                   WHERE c.relid::pg_catalog.oid OPERATOR(pg_catalog.=) t.relid AND c.kind OPERATOR(pg_catalog.=) 'expire')), \
         below(relid) AS (SELECT relid FROM own \
           UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN below b ON i.inhparent OPERATOR(pg_catalog.=) b.relid) \
         SELECT relid FROM below ORDER BY relid"
    );
    let found = crate::security::as_extension_owner(|| {
        rows(
            client,
            &sql,
            &[pgrx::pg_sys::Oid::from(relid).into()],
            |r| get::<pgrx::pg_sys::Oid>(r, 1),
        )
    })
    .map_err(internal)?;
    Ok(found.into_iter().flatten().map(|o| o.to_u32()).collect())
}

/// Schema, name, relkind and whether other tables inherit from it.
fn describe_relation(
    client: &SpiClient<'_>,
    relid: RelId,
) -> Result<(String, String, String, bool)> {
    let found = rows(
        client,
        "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text, c.relkind::pg_catalog.text, c.relhassubclass FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[pgrx::pg_sys::Oid::from(relid).into()],
        |r| {
            Ok((
                get::<String>(r, 1)?.unwrap_or_default(),
                get::<String>(r, 2)?.unwrap_or_default(),
                get::<String>(r, 3)?.unwrap_or_default(),
                get::<bool>(r, 4)?.unwrap_or(true),
            ))
        },
    )
    .map_err(internal)?;
    found.into_iter().next().ok_or_else(|| {
        RetentionError::UndefinedTable(format!("relation with oid {relid} does not exist"))
    })
}

/// The run's statements, each prepared (parsed and planned) once and kept
/// across batches and, for `retention_run`, across its commits. Used for the
/// small batches of `retention_run`, where planning is a large share of
/// each statement; `retention_execute`'s large parent batches are planned
/// per statement, since a generic plan knows nothing of their key arrays'
/// size (measured: 1.6x slower with generic plans, see docs/bench).
#[derive(Default)]
pub struct PreparedStatements {
    enabled: bool,
    plans: HashMap<String, pgrx::spi::OwnedPreparedStatement>,
}

impl PreparedStatements {
    pub fn enabled() -> Self {
        PreparedStatements {
            enabled: true,
            plans: HashMap::new(),
        }
    }

    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Like [`rows_mut`], through the prepared plan of `sql` (argument types
    /// taken from the first call's arguments).
    pub fn rows<T>(
        &mut self,
        client: &mut SpiClient<'_>,
        sql: &str,
        args: &[DatumWithOid<'_>],
        map: impl Fn(&SpiHeapTupleData<'_>) -> std::result::Result<T, SpiError>,
    ) -> std::result::Result<Vec<T>, SpiError> {
        if !self.enabled {
            return rows_mut(client, sql, args, map);
        }
        self.prepare(client, sql, args)?;
        let table = client.update(&self.plans[sql], None, args)?;
        let out = table.map(|row| map(&row)).collect();
        free_last_result();
        out
    }

    /// Prepares `sql` once (argument types taken from the first call's
    /// arguments).
    fn prepare(
        &mut self,
        client: &mut SpiClient<'_>,
        sql: &str,
        args: &[DatumWithOid<'_>],
    ) -> std::result::Result<(), SpiError> {
        if !self.plans.contains_key(sql) {
            let types: Vec<pgrx::pg_sys::PgOid> = args
                .iter()
                .map(|a| pgrx::pg_sys::PgOid::from(a.oid()))
                .collect();
            let statement = client.prepare_mut(sql, &types)?.keep();
            self.plans.insert(sql.to_string(), statement);
        }
        Ok(())
    }

    /// Runs a statement that returns no rows (a DELETE without RETURNING)
    /// through its prepared plan; returns the rows it processed.
    pub fn processed(
        &mut self,
        client: &mut SpiClient<'_>,
        sql: &str,
        args: &[DatumWithOid<'_>],
    ) -> std::result::Result<i64, SpiError> {
        let processed = if self.enabled {
            self.prepare(client, sql, args)?;
            client.update(&self.plans[sql], None, args)?.len()
        } else {
            client.update(sql, None, args)?.len()
        };
        free_last_result();
        Ok(i64::try_from(processed).unwrap_or(i64::MAX))
    }
}

/// The partitioned ancestors of each partition among `relids`, nearest
/// first.
fn partition_ancestors_of(
    client: &SpiClient<'_>,
    relids: &[RelId],
) -> Result<HashMap<RelId, Vec<RelId>>> {
    let oids: Vec<pgrx::pg_sys::Oid> = relids
        .iter()
        .copied()
        .map(pgrx::pg_sys::Oid::from)
        .collect();
    let found = rows(
        client,
        "SELECT c.oid, ARRAY(SELECT a.relid::pg_catalog.oid FROM pg_catalog.pg_partition_ancestors(c.oid) WITH ORDINALITY a(relid, ord) \
                             WHERE a.relid OPERATOR(pg_catalog.<>) c.oid ORDER BY a.ord) \
         FROM pg_catalog.pg_class c WHERE c.relispartition AND c.oid OPERATOR(pg_catalog.=) ANY ($1)",
        &[oids.into()],
        |r| Ok((get::<pgrx::pg_sys::Oid>(r, 1)?, get::<Vec<pgrx::pg_sys::Oid>>(r, 2)?)),
    )
    .map_err(internal)?;
    Ok(found
        .into_iter()
        .filter_map(|(relid, ancestors)| {
            Some((
                relid?.to_u32(),
                ancestors?.into_iter().map(|o| o.to_u32()).collect(),
            ))
        })
        .collect())
}

/// Whether `track_counts` is on, and whether Citus is installed.
fn counts_tracked_and_citus(client: &SpiClient<'_>) -> Result<(bool, bool)> {
    let found = rows(
        client,
        "SELECT pg_catalog.current_setting('track_counts')::pg_catalog.bool, \
           EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'citus')",
        &[],
        |r| Ok((get::<bool>(r, 1)?.unwrap_or(false), get::<bool>(r, 2)?.unwrap_or(true))),
    )
    .map_err(internal)?;
    Ok(found.into_iter().next().unwrap_or((false, true)))
}

/// The tables in Citus's metadata, and the reference tables among them
/// (Citus is installed).
fn citus_tables(client: &SpiClient<'_>) -> Result<(HashSet<RelId>, HashSet<RelId>)> {
    let found = rows(
        client,
        "SELECT p.logicalrelid::pg_catalog.oid, p.partmethod OPERATOR(pg_catalog.=) 'n' AND p.repmodel OPERATOR(pg_catalog.=) 't' \
         FROM pg_catalog.pg_dist_partition p",
        &[],
        |r| Ok((get::<pgrx::pg_sys::Oid>(r, 1)?, get::<bool>(r, 2)?)),
    )
    .map_err(internal)?;
    let mut all = HashSet::new();
    let mut reference = HashSet::new();
    for (oid, is_reference) in found {
        let Some(oid) = oid else { continue };
        all.insert(oid.to_u32());
        if is_reference == Some(true) {
            reference.insert(oid.to_u32());
        }
    }
    Ok((all, reference))
}

/// A role's name, for messages.
pub fn owner_name(role: pgrx::pg_sys::Oid) -> String {
    // SAFETY: a syscache lookup; `true` returns NULL for a missing role.
    let name = unsafe { pgrx::pg_sys::GetUserNameFromId(role, true) };
    if name.is_null() {
        return "a dropped role".into();
    }
    // SAFETY: a palloc'd NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(name) };
    quote_ident_if_needed(&name.to_string_lossy())
}

/// A name as a DBA would type it: quoted when it is not lower-case
/// letters, digits and underscores.
pub fn quote_ident_if_needed(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain && !name.is_empty() {
        name.to_string()
    } else {
        quote_ident(name)
    }
}
