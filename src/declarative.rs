//! Policies as code: `retention_export()` writes the policies a role sees
//! as JSON; `retention_apply(jsonb, dry_run, prune)` makes the policies
//! what a declaration says, idempotently, and says what it changes (or
//! would change). Applying goes through the public functions, so every
//! check (ownership, time column, key, FK plan) is theirs.
//!
//! What to change is decided by [`plan`], plain Rust over the declared and
//! the existing policies (unit-tested without a database).

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde::Deserialize;

use crate::catalog::{extension_schema, get, internal, rows, rows_mut, PolicyKind};
use crate::errors::{OrRaise, Result, RetentionError};
use crate::security::with_pinned_search_path;

/// A declaration, as `retention_export()` writes it. Unknown keys are
/// refused: a misspelt `retian` must not silently keep the old window.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Declaration {
    /// The format's version; 1 is the only one.
    #[serde(default)]
    version: Option<u32>,
    policies: Vec<DeclaredPolicy>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct DeclaredPolicy {
    /// The table: `schema.table`, or a name found on the caller's
    /// search_path, quoted as SQL quotes identifiers.
    table: String,
    #[serde(default = "expire")]
    kind: String,
    time_column: String,
    /// An interval, as `interval` input reads it (`'30 days'`); `grace`
    /// for an orphan policy, as `retention_add_orphan_policy` calls it.
    #[serde(alias = "grace")]
    retain: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    batch_size: Option<i32>,
    #[serde(default = "enabled")]
    enabled: bool,
    #[serde(default)]
    partition_action: Option<String>,
    #[serde(default)]
    partition_schema: Option<String>,
}

fn expire() -> String {
    "expire".into()
}

fn enabled() -> bool {
    true
}

/// A policy's settings, declared or stored, with the table resolved to its
/// oid and the retain written as `interval` output writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub relid: u32,
    pub relation: String,
    pub kind: String,
    pub time_column: String,
    pub retain: String,
    pub label: Option<String>,
    pub batch_size: Option<i32>,
    pub enabled: bool,
    /// `None` in a declaration: as the policy has it (`drop` for a new one).
    pub partition_action: Option<String>,
    pub partition_schema: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Add(Settings),
    /// The time column changed: no ALTER for that, the policy is replaced.
    Replace(Settings),
    Alter {
        declared: Settings,
        changes: Vec<String>,
    },
    Unchanged(Settings),
    Remove(Settings),
    /// Not declared, and kept: applied without `prune`.
    Keep(Settings),
}

/// What applying `declared` over `existing` does: a change per declared
/// policy, in the declaration's order, then (with `prune`) the removal of
/// each existing policy not declared.
pub fn plan(declared: &[Settings], existing: &[Settings], prune: bool) -> Vec<Change> {
    let mut changes: Vec<Change> = declared
        .iter()
        .map(|d| {
            match existing
                .iter()
                .find(|e| e.relid == d.relid && e.kind == d.kind)
            {
                None => Change::Add(d.clone()),
                Some(e) if e.time_column != d.time_column => Change::Replace(d.clone()),
                Some(e) => {
                    let differences = differences(e, d);
                    if differences.is_empty() {
                        Change::Unchanged(d.clone())
                    } else {
                        Change::Alter {
                            declared: d.clone(),
                            changes: differences,
                        }
                    }
                }
            }
        })
        .collect();
    changes.extend(
        existing
            .iter()
            .filter(|e| {
                !declared
                    .iter()
                    .any(|d| d.relid == e.relid && d.kind == e.kind)
            })
            .map(|e| {
                if prune {
                    Change::Remove(e.clone())
                } else {
                    Change::Keep(e.clone())
                }
            }),
    );
    changes
}

/// "retain 30 days -> 60 days" for each setting `declared` changes.
fn differences(existing: &Settings, declared: &Settings) -> Vec<String> {
    fn show<T: std::fmt::Display>(v: &Option<T>) -> String {
        v.as_ref().map_or("NULL".into(), |v| v.to_string())
    }
    let mut out = Vec::new();
    let mut differs = |name: &str, old: String, new: String| {
        if old != new {
            out.push(format!("{name} {old} -> {new}"));
        }
    };
    differs("retain", existing.retain.clone(), declared.retain.clone());
    differs("label", show(&existing.label), show(&declared.label));
    differs(
        "batch_size",
        show(&existing.batch_size),
        show(&declared.batch_size),
    );
    differs(
        "enabled",
        existing.enabled.to_string(),
        declared.enabled.to_string(),
    );
    if let Some(action) = &declared.partition_action {
        differs(
            "partition_action",
            show(&existing.partition_action),
            action.clone(),
        );
        differs(
            "partition_schema",
            show(&existing.partition_schema),
            show(&declared.partition_schema),
        );
    }
    out
}

/// The declared policies with their tables resolved (an unqualified name in
/// the caller's `schemas`, first match, as the search_path finds it) and their windows
/// written as `interval` output writes them (so `'30d'` and `'30 days'`
/// are the same, `'1 month'` and `'30 days'` are not: their cutoffs differ).
fn resolve(
    client: &SpiClient<'_>,
    declaration: Declaration,
    schemas: &[String],
) -> Result<Vec<Settings>> {
    if declaration.version.is_some_and(|v| v != 1) {
        return Err(RetentionError::InvalidParameter(
            "this pg_retention reads declarations of version 1".into(),
        ));
    }
    let mut resolved: Vec<Settings> = Vec::new();
    for p in declaration.policies {
        if PolicyKind::parse(&p.kind)? == PolicyKind::Orphan && p.partition_action.is_some() {
            return Err(RetentionError::InvalidParameter(format!(
                "{}: partition_action is for expire policies",
                p.table
            )));
        }
        if p.partition_schema.is_some() && p.partition_action.as_deref() != Some("detach") {
            return Err(RetentionError::InvalidParameter(format!(
                "{}: partition_schema needs partition_action \"detach\"",
                p.table
            )));
        }
        let found = rows(
            client,
            "SELECT c.oid, c.oid::pg_catalog.regclass::pg_catalog.text, $2::pg_catalog.interval::pg_catalog.text \
             FROM (SELECT pg_catalog.parse_ident($1) AS parts) i, pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
             WHERE c.relname OPERATOR(pg_catalog.=) i.parts[pg_catalog.array_length(i.parts, 1)] \
               AND CASE WHEN pg_catalog.array_length(i.parts, 1) OPERATOR(pg_catalog.=) 1 \
                          THEN n.nspname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($3) \
                        WHEN pg_catalog.array_length(i.parts, 1) OPERATOR(pg_catalog.=) 2 \
                          THEN n.nspname::pg_catalog.text OPERATOR(pg_catalog.=) i.parts[1] \
                        ELSE false END \
             ORDER BY pg_catalog.array_position($3, n.nspname::pg_catalog.text) LIMIT 1",
            &[p.table.as_str().into(), p.retain.as_str().into(), schemas.to_vec().into()],
            |r| {
                Ok((
                    get::<pg_sys::Oid>(r, 1)?,
                    get::<String>(r, 2)?,
                    get::<String>(r, 3)?,
                ))
            },
        )
        .map_err(internal)?;
        let Some((Some(oid), Some(relation), Some(retain))) = found.into_iter().next() else {
            return Err(RetentionError::UndefinedTable(format!(
                "table \"{}\" does not exist",
                p.table
            )));
        };
        let settings = Settings {
            relid: oid.to_u32(),
            relation,
            kind: p.kind,
            time_column: p.time_column,
            retain,
            label: p.label,
            batch_size: p.batch_size,
            enabled: p.enabled,
            partition_action: p.partition_action,
            partition_schema: p.partition_schema,
        };
        if resolved
            .iter()
            .any(|r| r.relid == settings.relid && r.kind == settings.kind)
        {
            return Err(RetentionError::InvalidParameter(format!(
                "{} has two {} policies in the declaration",
                settings.relation, settings.kind
            )));
        }
        resolved.push(settings);
    }
    Ok(resolved)
}

/// The policies the caller sees (row-level security: those of the tables
/// it owns; all, for a superuser).
fn existing(client: &SpiClient<'_>, schema: &str) -> Result<Vec<Settings>> {
    rows(
        client,
        &format!(
            "SELECT c.relid::pg_catalog.oid, c.relid::pg_catalog.text, c.kind, c.time_column::pg_catalog.text, \
                    c.retain::pg_catalog.text, c.label, c.batch_size, c.enabled, c.partition_action, \
                    c.partition_schema::pg_catalog.text \
             FROM {schema}.retention_config c ORDER BY c.id"
        ),
        &[],
        |r| {
            Ok(Settings {
                relid: get::<pg_sys::Oid>(r, 1)?.map_or(0, |o| o.to_u32()),
                relation: get::<String>(r, 2)?.unwrap_or_default(),
                kind: get::<String>(r, 3)?.unwrap_or_default(),
                time_column: get::<String>(r, 4)?.unwrap_or_default(),
                retain: get::<String>(r, 5)?.unwrap_or_default(),
                label: get::<String>(r, 6)?,
                batch_size: get::<i32>(r, 7)?,
                enabled: get::<bool>(r, 8)?.unwrap_or(true),
                partition_action: get::<String>(r, 9)?,
                partition_schema: get::<String>(r, 10)?,
            })
        },
    )
    .map_err(internal)
}

/// Runs one of the public functions (their checks apply; an error ends
/// the whole apply, nothing of it kept).
fn call(client: &mut SpiClient<'_>, sql: &str, args: &[DatumWithOid<'_>]) -> Result<()> {
    rows_mut(client, sql, args, |_| Ok(())).map_err(internal)?;
    Ok(())
}

fn relid_arg(s: &Settings) -> DatumWithOid<'static> {
    pg_sys::Oid::from(s.relid).into()
}

/// Adds a declared policy, then sets what the add functions do not take.
fn add(client: &mut SpiClient<'_>, schema: &str, s: &Settings) -> Result<()> {
    let function = if s.kind == "orphan" {
        "retention_add_orphan_policy"
    } else {
        "retention_add_policy"
    };
    call(
        client,
        &format!(
            "SELECT {schema}.{function}($1::pg_catalog.regclass, $2::pg_catalog.name, $3::pg_catalog.interval, $4)"
        ),
        &[
            relid_arg(s),
            s.time_column.as_str().into(),
            s.retain.as_str().into(),
            s.label.clone().into(),
        ],
    )?;
    alter(client, schema, s)
}

/// Sets every declared setting of an existing policy (NULLs reset).
fn alter(client: &mut SpiClient<'_>, schema: &str, s: &Settings) -> Result<()> {
    let mut reset: Vec<String> = Vec::new();
    if s.label.is_none() {
        reset.push("label".into());
    }
    if s.batch_size.is_none() {
        reset.push("batch_size".into());
    }
    call(
        client,
        &format!(
            "SELECT {schema}.retention_alter_policy($1::pg_catalog.regclass, retain => $2::pg_catalog.interval, \
                 label => $3, batch_size => $4, enabled => $5, kind => $6, reset => $7)"
        ),
        &[
            relid_arg(s),
            s.retain.as_str().into(),
            s.label.clone().into(),
            s.batch_size.into(),
            s.enabled.into(),
            s.kind.as_str().into(),
            reset.into(),
        ],
    )?;
    if let Some(action) = &s.partition_action {
        call(
            client,
            &format!(
                "SELECT {schema}.retention_set_partition_action($1::pg_catalog.regclass, $2, $3::pg_catalog.name)"
            ),
            &[
                relid_arg(s),
                action.as_str().into(),
                s.partition_schema.clone().into(),
            ],
        )?;
    }
    Ok(())
}

fn remove(client: &mut SpiClient<'_>, schema: &str, s: &Settings) -> Result<()> {
    call(
        client,
        &format!("SELECT {schema}.retention_remove_policy($1::pg_catalog.regclass, $2)"),
        &[relid_arg(s), s.kind.as_str().into()],
    )
}

#[pg_extern(volatile, parallel_unsafe)]
fn _retention_apply(
    declaration: Option<JsonB>,
    dry_run: Option<bool>,
    prune: Option<bool>,
    schemas: Option<Vec<Option<String>>>,
) -> TableIterator<
    'static,
    (
        name!(action, String),
        name!(relation, String),
        name!(kind, String),
        name!(changes, Option<String>),
    ),
> {
    let out = with_pinned_search_path(|| {
        Spi::connect_mut(|client| -> Result<Vec<_>> {
            let declaration = declaration.ok_or(RetentionError::NullArgument("declaration"))?;
            let dry_run = dry_run.ok_or(RetentionError::NullArgument("dry_run"))?;
            let prune = prune.ok_or(RetentionError::NullArgument("prune"))?;
            let declaration: Declaration = serde_json::from_value(declaration.0).map_err(|e| {
                RetentionError::InvalidParameter(format!("not a policy declaration: {e}"))
            })?;
            let schema = extension_schema(client)?;
            let schemas: Vec<String> = schemas.unwrap_or_default().into_iter().flatten().collect();
            let declared = resolve(client, declaration, &schemas)?;
            let existing = existing(client, &schema)?;
            let changes = plan(&declared, &existing, prune);
            let mut out = Vec::new();
            for change in changes {
                let (action, settings, details) = match &change {
                    Change::Add(s) => ("add", s, None),
                    Change::Replace(s) => ("replace", s, Some("time_column changes".to_string())),
                    Change::Alter { declared, changes } => {
                        ("alter", declared, Some(changes.join("; ")))
                    }
                    Change::Unchanged(s) => ("unchanged", s, None),
                    Change::Remove(s) => ("remove", s, None),
                    Change::Keep(s) => (
                        "keep",
                        s,
                        Some("not declared; prune removes it".to_string()),
                    ),
                };
                if !dry_run {
                    match &change {
                        Change::Add(s) => add(client, &schema, s)?,
                        Change::Replace(s) => {
                            remove(client, &schema, s)?;
                            add(client, &schema, s)?;
                        }
                        Change::Alter { declared, .. } => alter(client, &schema, declared)?,
                        Change::Unchanged(_) | Change::Keep(_) => {}
                        Change::Remove(s) => remove(client, &schema, s)?,
                    }
                }
                out.push((
                    action.to_string(),
                    settings.relation.clone(),
                    settings.kind.clone(),
                    details,
                ));
            }
            Ok(out)
        })
    })
    .or_raise();
    TableIterator::new(out)
}

#[cfg(test)]
mod tests {
    use super::{plan, Change, Settings};

    fn policy(relid: u32, kind: &str, retain: &str) -> Settings {
        Settings {
            relid,
            relation: format!("t{relid}"),
            kind: kind.into(),
            time_column: "ts".into(),
            retain: retain.into(),
            label: None,
            batch_size: None,
            enabled: true,
            partition_action: None,
            partition_schema: None,
        }
    }

    #[test]
    fn a_declaration_equal_to_the_policies_changes_nothing() {
        let existing = vec![policy(1, "expire", "30 days"), policy(1, "orphan", "1 day")];
        let changes = plan(&existing, &existing, true);
        assert!(changes.iter().all(|c| matches!(c, Change::Unchanged(_))));
        assert_eq!(changes.len(), 2);
    }

    #[test]
    fn each_difference_is_named_and_undeclared_policies_go_only_with_prune() {
        let existing = vec![
            policy(1, "expire", "30 days"),
            policy(2, "expire", "7 days"),
            policy(3, "expire", "1 day"),
        ];
        let mut changed = policy(1, "expire", "60 days");
        changed.label = Some("nightly".into());
        let mut moved = policy(2, "expire", "7 days");
        moved.time_column = "created".into();
        let declared = vec![changed.clone(), moved.clone(), policy(4, "orphan", "1 day")];
        assert_eq!(
            plan(&declared, &existing, false),
            vec![
                Change::Alter {
                    declared: changed.clone(),
                    changes: vec![
                        "retain 30 days -> 60 days".into(),
                        "label NULL -> nightly".into()
                    ]
                },
                Change::Replace(moved.clone()),
                Change::Add(policy(4, "orphan", "1 day")),
                Change::Keep(policy(3, "expire", "1 day")),
            ]
        );
        assert_eq!(
            plan(&declared, &existing, false).last(),
            Some(&Change::Keep(policy(3, "expire", "1 day")))
        );
        assert_eq!(
            plan(&declared, &existing, true).last(),
            Some(&Change::Remove(policy(3, "expire", "1 day")))
        );
    }

    #[test]
    fn a_partition_action_not_declared_is_left_as_it_is() {
        let mut existing = policy(1, "expire", "30 days");
        existing.partition_action = Some("detach".into());
        let declared = policy(1, "expire", "30 days");
        assert_eq!(
            plan(std::slice::from_ref(&declared), &[existing], false),
            vec![Change::Unchanged(declared)]
        );
    }
}
