//! Policy management: add, alter, pause/resume, partition action, remove. Every check runs
//! before the config table is touched, so a refused call changes nothing.

use pgrx::datum::{DatumWithOid, Interval};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::catalog::{self, bookkeeping, extension_schema, get, internal, rows, PolicyKind};
use crate::errors::{OrRaise, Result, RetentionError};
use crate::planner::RelId;
use crate::security::with_pinned_search_path;

/// What policy checks need to know of a relation.
struct Relation {
    relid: RelId,
    display: String,
}

/// The relation must be a plain or partitioned table, permanent, not a
/// catalog, not a partition, and owned by the caller (or a role the caller
/// is a member of; superusers pass).
fn checked_relation(client: &SpiClient<'_>, relid: Option<pg_sys::Oid>) -> Result<Relation> {
    let relid = relid.ok_or(RetentionError::NullArgument("relation"))?;
    let found = rows(
        client,
        "SELECT c.relkind::pg_catalog.text, c.relpersistence::pg_catalog.text, n.nspname::pg_catalog.text, \
                pg_catalog.format('%I.%I', n.nspname, c.relname), c.relispartition, \
                pg_catalog.pg_has_role(CURRENT_USER, c.relowner, 'USAGE'), \
                EXISTS (SELECT FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid \
                        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
                          AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'e' \
                          AND e.extname OPERATOR(pg_catalog.=) 'pg_retention') \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[relid.into()],
        |r| {
            Ok((
                get::<String>(r, 1)?.unwrap_or_default(),
                get::<String>(r, 2)?.unwrap_or_default(),
                get::<String>(r, 3)?.unwrap_or_default(),
                get::<String>(r, 4)?.unwrap_or_default(),
                get::<bool>(r, 5)?.unwrap_or_default(),
                get::<bool>(r, 6)?.unwrap_or_default(),
                get::<bool>(r, 7)?.unwrap_or(true),
            ))
        },
    )
    .map_err(internal)?;
    let Some((relkind, persistence, schema, display, is_partition, owns, extension_table)) =
        found.into_iter().next()
    else {
        return Err(RetentionError::UndefinedTable(format!(
            "relation with oid {} does not exist",
            relid.to_u32()
        )));
    };
    let kind_name = match relkind.as_str() {
        "r" | "p" => None,
        "v" => Some("a view"),
        "m" => Some("a materialized view"),
        "f" => Some("a foreign table"),
        "S" => Some("a sequence"),
        "i" | "I" => Some("an index"),
        "c" => Some("a composite type"),
        "t" => Some("a TOAST table"),
        _ => Some("not a table"),
    };
    if let Some(what) = kind_name {
        return Err(RetentionError::WrongObjectType(format!(
            "\"{display}\" is {what}; retention policies apply to tables"
        )));
    }
    if schema == "pg_catalog" || schema == "information_schema" || schema.starts_with("pg_toast") {
        return Err(RetentionError::WrongObjectType(format!(
            "\"{display}\" is a system catalog; retention policies apply to user tables"
        )));
    }
    if extension_table {
        return Err(RetentionError::WrongObjectType(format!(
            "\"{display}\" belongs to pg_retention itself (its policies or history); retention policies apply to user tables"
        )));
    }
    if persistence == "t" {
        return Err(RetentionError::Unsupported(format!(
            "\"{display}\" is a temporary table; a policy must outlive the session that made it"
        )));
    }
    if is_partition {
        return Err(RetentionError::WrongObjectType(format!(
            "\"{display}\" is a partition; put the policy on its partitioned parent table"
        )));
    }
    if !owns {
        return Err(RetentionError::InsufficientPrivilege(format!(
            "must be owner of table {display} to manage its retention policies"
        )));
    }
    Ok(Relation {
        relid: relid.to_u32(),
        display,
    })
}

/// The time column must exist and be timestamptz, timestamp or date.
fn check_time_column(client: &SpiClient<'_>, rel: &Relation, column: Option<&str>) -> Result<()> {
    let column = column.ok_or(RetentionError::NullArgument("time_column"))?;
    let found = rows(
        client,
        "SELECT a.atttypid::pg_catalog.oid, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name \
           AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
        &[pg_sys::Oid::from(rel.relid).into(), column.into()],
        |r| Ok((get::<pg_sys::Oid>(r, 1)?, get::<String>(r, 2)?.unwrap_or_default())),
    )
    .map_err(internal)?;
    let Some((type_oid, type_name)) = found.into_iter().next() else {
        return Err(RetentionError::UndefinedColumn(format!(
            "column \"{column}\" of relation {} does not exist",
            rel.display
        )));
    };
    let time_types = [
        pg_sys::TIMESTAMPTZOID,
        pg_sys::TIMESTAMPOID,
        pg_sys::DATEOID,
    ];
    if !type_oid.is_some_and(|t| time_types.contains(&t)) {
        return Err(RetentionError::DatatypeMismatch(format!(
            "column \"{column}\" of relation {} has type {type_name}; a retention policy needs timestamptz, timestamp or date",
            rel.display
        )));
    }
    Ok(())
}

fn check_interval(
    client: &SpiClient<'_>,
    what: &'static str,
    value: Option<Interval>,
) -> Result<()> {
    let value = value.ok_or(RetentionError::NullArgument(what))?;
    let positive = rows(
        client,
        "SELECT $1::pg_catalog.interval OPERATOR(pg_catalog.>) '0'::pg_catalog.interval",
        &[value.into()],
        |r| get::<bool>(r, 1),
    )
    .map_err(internal)?;
    if positive.into_iter().next().flatten() != Some(true) {
        return Err(RetentionError::InvalidParameter(format!(
            "{what} must be a positive interval"
        )));
    }
    // The cutoff only moves forward from now on: computable now, always.
    if catalog::cutoff_of(client, Some(value)).is_err() {
        return Err(RetentionError::InvalidParameter(format!(
            "{what} reaches before the earliest timestamp: now() - {what} is out of range"
        )));
    }
    // '60' is an interval of 60 seconds: a window that short is more often
    // a missing unit than a wish.
    let short = rows(
        client,
        "SELECT $1::pg_catalog.interval OPERATOR(pg_catalog.<) '1 hour'::pg_catalog.interval, $1::pg_catalog.interval::pg_catalog.text",
        &[value.into()],
        |r| Ok((get::<bool>(r, 1)?, get::<String>(r, 2)?)),
    )
    .map_err(internal)?;
    if let Some((Some(true), Some(text))) = short.into_iter().next() {
        pgrx::warning!(
            "pg_retention: {what} is {text}: rows older than that go. A number without a unit is read as seconds ('60' is one minute); write the unit, as in '60 days'"
        );
    }
    Ok(())
}

pub fn check_batch_size(batch_size: Option<i32>, nullable: bool) -> Result<()> {
    match batch_size {
        None if nullable => Ok(()),
        None => Err(RetentionError::NullArgument("batch_size")),
        Some(n) if n <= 0 => Err(RetentionError::InvalidParameter(format!(
            "batch_size must be a positive number of rows, not {n}"
        ))),
        Some(_) => Ok(()),
    }
}

fn existing_policy(
    client: &SpiClient<'_>,
    schema: &str,
    relid: RelId,
    kind: PolicyKind,
) -> Result<Option<i64>> {
    let sql = format!(
        "SELECT id FROM {schema}.retention_config WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND kind OPERATOR(pg_catalog.=) $2"
    );
    let found = rows(
        client,
        &sql,
        &[pg_sys::Oid::from(relid).into(), kind.as_str().into()],
        |r| get::<i64>(r, 1),
    )
    .map_err(internal)?;
    Ok(found.into_iter().next().flatten())
}

/// Refuses a policy that no run could execute: an FK cycle or self
/// reference among the tables it deletes from, or a table without a key.
fn check_plannable(client: &SpiClient<'_>, rel: &Relation, kind: PolicyKind) -> Result<()> {
    // The policy's own closure: a cycle among several policies' tables lies
    // within each one's closure, and other policies (even broken ones) are
    // no concern of this one.
    let fks = catalog::load_foreign_keys(client)?;
    catalog::deleted_tables(client, rel.relid, &rel.display, kind, &fks)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn _retention_add_policy(
    relation: Option<pg_sys::Oid>,
    time_column: Option<&str>,
    retain: Option<Interval>,
    label: Option<&str>,
    batch_size: Option<i32>,
    enabled: Option<bool>,
    kind: &str,
) -> i64 {
    with_pinned_search_path(|| Spi::connect_mut(|client| {
        let kind = PolicyKind::parse(kind)?;
        let what = match kind {
            PolicyKind::Expire => "retain",
            PolicyKind::Orphan => "grace",
        };
        let enabled = enabled.ok_or(RetentionError::NullArgument("enabled"))?;
        let schema = extension_schema(client)?;
        let rel = checked_relation(client, relation)?;
        check_time_column(client, &rel, time_column)?;
        check_interval(client, what, retain)?;
        check_batch_size(batch_size, true)?;
        if let Some(id) = existing_policy(client, &schema, rel.relid, kind)? {
            return Err(RetentionError::DuplicatePolicy(format!(
                "table {} already has an {} policy (id {id}); change it with retention_alter_policy",
                rel.display,
                kind.as_str()
            )));
        }
        check_plannable(client, &rel, kind)?;
        let sql = format!(
            "INSERT INTO {schema}.retention_config (relid, kind, time_column, retain, label, batch_size, enabled) \
             VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3::pg_catalog.name, $4, $5, $6, $7) RETURNING id"
        );
        let args: Vec<DatumWithOid> = vec![
            pg_sys::Oid::from(rel.relid).into(),
            kind.as_str().into(),
            time_column.into(),
            retain.into(),
            label.into(),
            batch_size.into(),
            enabled.into(),
        ];
        let id = bookkeeping(client, &sql, &args, |r| get::<i64>(r, 1)).map_err(internal)?;
        Ok(id.into_iter().next().flatten().unwrap_or_default())
    }))
    .or_raise()
}

/// Changes the given settings of a policy; NULL leaves a setting as it is.
/// Kept for the SQL of releases before 0.5.0 (their install scripts name
/// it); 0.5.0's `retention_alter_policy` calls `_retention_alter_policy_reset`.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn _retention_alter_policy(
    relation: Option<pg_sys::Oid>,
    kind: Option<&str>,
    retain: Option<Interval>,
    label: Option<&str>,
    batch_size: Option<i32>,
    enabled: Option<bool>,
) -> i64 {
    let change = PolicyChange {
        retain,
        label,
        batch_size,
        enabled,
        reset: Vec::new(),
    };
    with_pinned_search_path(|| {
        Spi::connect_mut(|client| alter_policy(client, relation, kind, &change))
    })
    .or_raise()
}

/// `_retention_alter_policy`, and then clears the settings named in `reset`
/// (`label`, `batch_size`).
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn _retention_alter_policy_reset(
    relation: Option<pg_sys::Oid>,
    kind: Option<&str>,
    retain: Option<Interval>,
    label: Option<&str>,
    batch_size: Option<i32>,
    enabled: Option<bool>,
    reset: Option<Vec<Option<String>>>,
) -> i64 {
    with_pinned_search_path(|| {
        Spi::connect_mut(|client| {
            let reset = resettable_settings(reset.unwrap_or_default())?;
            if (label.is_some() && reset.contains(&"label"))
                || (batch_size.is_some() && reset.contains(&"batch_size"))
            {
                return Err(RetentionError::InvalidParameter(
                    "a setting cannot be both given and reset".into(),
                ));
            }
            let change = PolicyChange {
                retain,
                label,
                batch_size,
                enabled,
                reset,
            };
            alter_policy(client, relation, kind, &change)
        })
    })
    .or_raise()
}

/// The settings `retention_alter_policy(reset => ...)` may clear: those a
/// policy may go without.
fn resettable_settings(names: Vec<Option<String>>) -> Result<Vec<&'static str>> {
    names
        .into_iter()
        .map(|name| match name.as_deref() {
            Some("label") => Ok("label"),
            Some("batch_size") => Ok("batch_size"),
            other => Err(RetentionError::InvalidParameter(format!(
                "reset takes 'label' and 'batch_size', not {}",
                other.map_or("NULL".to_string(), |n| format!("\"{n}\""))
            ))),
        })
        .collect()
}

struct PolicyChange<'a> {
    retain: Option<Interval>,
    label: Option<&'a str>,
    batch_size: Option<i32>,
    enabled: Option<bool>,
    reset: Vec<&'static str>,
}

fn alter_policy(
    client: &mut SpiClient<'_>,
    relation: Option<pg_sys::Oid>,
    kind: Option<&str>,
    change: &PolicyChange<'_>,
) -> Result<i64> {
    let kind = PolicyKind::parse(kind.ok_or(RetentionError::NullArgument("kind"))?)?;
    let schema = extension_schema(client)?;
    let rel = checked_relation(client, relation)?;
    if change.retain.is_some() {
        check_interval(client, "retain", change.retain)?;
    }
    check_batch_size(change.batch_size, true)?;
    let Some(id) = existing_policy(client, &schema, rel.relid, kind)? else {
        return Err(RetentionError::UndefinedPolicy(format!(
            "table {} has no {} policy",
            rel.display,
            kind.as_str()
        )));
    };
    let sql = format!(
        "UPDATE {schema}.retention_config SET retain = COALESCE($2, retain), \
             label = CASE WHEN $6 THEN NULL ELSE COALESCE($3, label) END, \
             batch_size = CASE WHEN $7 THEN NULL ELSE COALESCE($4, batch_size) END, \
             enabled = COALESCE($5, enabled) \
         WHERE id OPERATOR(pg_catalog.=) $1"
    );
    let args: Vec<DatumWithOid> = vec![
        id.into(),
        change.retain.into(),
        change.label.into(),
        change.batch_size.into(),
        change.enabled.into(),
        change.reset.contains(&"label").into(),
        change.reset.contains(&"batch_size").into(),
    ];
    bookkeeping(client, &sql, &args, |_| Ok(())).map_err(internal)?;
    Ok(id)
}

/// What the expire policy of a table partitioned by its time column does
/// with partitions wholly older than its cutoff ([`catalog::PartitionAction`]):
/// `drop`, or `detach` (kept as tables, moved to `schema` when given).
/// Returns the policy's id.
#[pg_extern(volatile, parallel_unsafe)]
fn _retention_set_partition_action(
    relation: Option<pg_sys::Oid>,
    action: Option<&str>,
    schema: Option<&str>,
) -> i64 {
    with_pinned_search_path(|| {
        Spi::connect_mut(|client| {
            let action = action.ok_or(RetentionError::NullArgument("action"))?;
            if !["drop", "detach"].contains(&action) {
                return Err(RetentionError::InvalidParameter(format!(
                    "action must be 'drop' or 'detach', not \"{action}\""
                )));
            }
            if schema.is_some() && action != "detach" {
                return Err(RetentionError::InvalidParameter(
                    "a schema keeps detached partitions: give it with action 'detach'".into(),
                ));
            }
            let extension = extension_schema(client)?;
            let rel = checked_relation(client, relation)?;
            if let Some(schema) = schema {
                check_keeping_schema(client, schema, rel.relid)?;
            }
            let Some(id) = existing_policy(client, &extension, rel.relid, PolicyKind::Expire)?
            else {
                return Err(RetentionError::UndefinedPolicy(format!(
                    "table {} has no expire policy",
                    rel.display
                )));
            };
            let sql = format!(
                "UPDATE {extension}.retention_config SET partition_action = $2, partition_schema = $3 \
                 WHERE id OPERATOR(pg_catalog.=) $1"
            );
            bookkeeping(
                client,
                &sql,
                &[id.into(), action.into(), schema.into()],
                |_| Ok(()),
            )
            .map_err(internal)?;
            Ok(id)
        })
    })
    .or_raise()
}

/// A schema to keep a table's partitions in: it exists, is not a system
/// schema, and the table's owner (who moves them there) may create in it.
fn check_keeping_schema(client: &SpiClient<'_>, schema: &str, relid: RelId) -> Result<()> {
    let found = rows(
        client,
        "SELECT n.nspname OPERATOR(pg_catalog.=) ANY ('{pg_catalog,information_schema}'::pg_catalog.name[]) \
                OR n.nspname OPERATOR(pg_catalog.~) '^pg_(toast|temp)', \
                pg_catalog.has_schema_privilege(c.relowner, n.oid, 'CREATE') \
         FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c \
         WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.oid OPERATOR(pg_catalog.=) $2",
        &[schema.into(), pg_sys::Oid::from(relid).into()],
        |r| Ok((get::<bool>(r, 1)?, get::<bool>(r, 2)?)),
    )
    .map_err(internal)?;
    match found.into_iter().next() {
        None => Err(RetentionError::UndefinedSchema(format!(
            "schema \"{schema}\" does not exist"
        ))),
        Some((Some(true), _)) => Err(RetentionError::InvalidParameter(format!(
            "schema \"{schema}\" is a system schema; keep partitions in a schema of your own"
        ))),
        Some((_, Some(true))) => Ok(()),
        Some(_) => Err(RetentionError::InsufficientPrivilege(format!(
            "the table's owner may not create in schema \"{schema}\", where its partitions would be moved"
        ))),
    }
}

/// Pauses or resumes every policy of a table; returns how many changed.
#[pg_extern(volatile, parallel_unsafe)]
fn _retention_set_enabled(relation: Option<pg_sys::Oid>, enabled: bool) -> i64 {
    with_pinned_search_path(|| {
        Spi::connect_mut(|client| {
            let schema = extension_schema(client)?;
            let rel = checked_relation(client, relation)?;
            let sql = format!(
                "UPDATE {schema}.retention_config SET enabled = $2 \
             WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1 RETURNING id"
            );
            let changed = bookkeeping(
                client,
                &sql,
                &[pg_sys::Oid::from(rel.relid).into(), enabled.into()],
                |_| Ok(()),
            )
            .map_err(internal)?;
            if changed.is_empty() {
                return Err(RetentionError::UndefinedPolicy(format!(
                    "table {} has no retention policy",
                    rel.display
                )));
            }
            Ok(changed.len() as i64)
        })
    })
    .or_raise()
}

/// Removes a table's policies (of one kind, or all); returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn _retention_remove_policy(relation: Option<pg_sys::Oid>, kind: Option<&str>) -> i64 {
    with_pinned_search_path(|| Spi::connect_mut(|client| {
        let kind = kind.map(PolicyKind::parse).transpose()?;
        let schema = extension_schema(client)?;
        let rel = checked_relation(client, relation)?;
        let sql = format!(
            "DELETE FROM {schema}.retention_config \
             WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND ($2::pg_catalog.text IS NULL OR kind OPERATOR(pg_catalog.=) $2) RETURNING id"
        );
        let removed = bookkeeping(
            client,
            &sql,
            &[pg_sys::Oid::from(rel.relid).into(), kind.map(PolicyKind::as_str).into()],
            |_| Ok(()),
        )
        .map_err(internal)?;
        if removed.is_empty() {
            return Err(RetentionError::UndefinedPolicy(format!("table {} has no such retention policy", rel.display)));
        }
        Ok(removed.len() as i64)
    }))
    .or_raise()
}
