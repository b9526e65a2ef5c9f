//! The deleter: runs the policies batch by batch, children first.
//!
//! A root batch is at most `batch_size` expired rows of a policy table, taken
//! by keyset on (time, key) and locked. Before the batch itself is deleted,
//! its dependents are deleted through each walked foreign key, in statements
//! of at most `batch_size` rows each, recursively; the parent keys are split
//! into chunks so that one statement never has to look at many more children
//! than it deletes. Each root batch is one subtransaction: a failure rolls
//! back that batch only. Every statement of a policy runs as the owner of
//! its table (`security::as_table_owner`). Keys and keyset values are
//! Datums of their own type ([`crate::values`]), never text.

use std::collections::{HashMap, VecDeque};

use pgrx::datum::DatumWithOid;
use pgrx::spi::SpiClient;

use crate::catalog::{
    get, internal, refuse_delete_rules, relation_name, rows_mut, PartitionAction, Policy,
    PolicyKind, PreparedStatements, Setup,
};
use crate::errors::{Result, RetentionError};
use crate::history::TableCount;
use crate::partitions::{self, WholePartition};
use crate::planner::{ForeignKey, RelId};
use crate::security::{
    as_table_owner, deferred_constraints_immediate, with_citus_sequential, with_lock_timeout,
};
use crate::sqlgen::{self, BatchStart, Column, FusedChild, Recheck, RootBatch, TableShape};
use crate::strategy::{self, Heap, Sweep, Tid};
use crate::subxact::{in_subtransaction, BatchFailure};
use crate::values::{OwnedContext, TypeInfo, Value, ValueColumn};

/// How long a root batch with dependents (in `retention_run`) should hold
/// its locks at most: its roots are limited to as many as took this long,
/// by the time per root measured on its policy's batches so far.
const BATCH_TARGET: std::time::Duration = std::time::Duration::from_millis(50);

/// Times a batch without row locks is taken again after one of its rows
/// changed under it, before its policy fails with that error.
const CHANGED_RETRIES: u32 = 3;

/// What a writer's concurrent change raises in a batch without row locks:
/// foreign key violation, serialization failure, deadlock.
const CONCURRENT_CHANGE_STATES: [&str; 3] = ["23503", "40001", "40P01"];

/// What a one-statement batch without row locks raises when it waited too
/// long for a row another session holds: lock not available, deadlock.
const ROW_WAIT_STATES: [&str; 2] = ["55P03", "40P01"];

/// A one-statement batch without row locks waits for a row another session
/// holds at most this share of `deadlock_timeout` (and never longer than
/// `lock_timeout`): it gives up, and the batch is taken again with row locks
/// that skip such rows, long before the other session's deadlock check could
/// find it waiting for a row this batch deleted and fail it.
const ROW_WAIT_SHARE_OF_DEADLOCK_TIMEOUT: i32 = 10;

/// Values of some columns for a set of rows, column by column.
type Columns = Vec<ValueColumn>;

/// The memory the run's values live in: the batch in progress (reset at
/// every step) and the keyset to continue from (kept across the commits of
/// a `retention_run`). Freed with the run.
struct RunMemory {
    batch: OwnedContext,
    keyset: OwnedContext,
}

impl Default for RunMemory {
    fn default() -> Self {
        RunMemory {
            batch: OwnedContext::new(c"pg_retention batch"),
            keyset: OwnedContext::new(c"pg_retention keyset"),
        }
    }
}

/// The storage of the columns' type, or an error naming the column.
fn type_info(table: &TableShape, column: &Column) -> Result<TypeInfo> {
    TypeInfo::of(pgrx::pg_sys::Oid::from(column.type_oid)).ok_or_else(|| {
        RetentionError::Unsupported(format!(
            "column {} of {} has type {}, which has no array type; pg_retention deletes by sets of keys",
            column.name, table.qualified, column.type_sql
        ))
    })
}

fn type_infos<'c>(
    table: &TableShape,
    columns: impl IntoIterator<Item = &'c Column>,
) -> Result<Vec<TypeInfo>> {
    columns.into_iter().map(|c| type_info(table, c)).collect()
}

/// Whether a `tableoid` value names table `relid`.
fn in_table(table_oid: &Value, relid: RelId) -> bool {
    table_oid.datum.is_some_and(|d| d.value() as u32 == relid)
}

/// Rows read as values (copied into `cx`) to columns, skipping the first
/// `from` values of each row.
fn to_columns(rows: &[Vec<Value>], from: usize, types: &[TypeInfo]) -> Columns {
    (from..types.len())
        .map(|i| ValueColumn {
            ty: types[i],
            values: rows.iter().map(|r| r[i].datum).collect(),
        })
        .collect()
}

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    deleted: i64,
    oldest: Option<i64>,
    newest: Option<i64>,
}

impl Tally {
    fn add(&mut self, deleted: i64, oldest: Option<i64>, newest: Option<i64>) {
        self.deleted += deleted;
        self.oldest = min_opt(self.oldest, oldest);
        self.newest = max_opt(self.newest, newest);
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// How a root batch went: rows selected, the keyset to continue after, and
/// whether it finished (a step with a row budget may stop after clearing
/// only part of its dependents; the next step takes the same batch again).
struct RootProgress {
    selected: i64,
    /// Time and key of the batch's last row (in the batch's memory).
    last: Option<Vec<Value>>,
    /// False when the batch is to be taken again: it cleared only part of
    /// its dependents, or its sweep ended before it (its leaf partition no
    /// longer sweepable: the next step takes it by keyset).
    complete: bool,
    /// Every row of the batch had the same time.
    one_time: bool,
    /// A sweep's batch: the `ctid` of its last row inside its range.
    last_tid: Option<Tid>,
}

impl RootProgress {
    const EMPTY: RootProgress = RootProgress {
        selected: 0,
        last: None,
        complete: true,
        one_time: false,
        last_tid: None,
    };
}

/// Where a root batch starts (see [`sqlgen::BatchStart`]).
enum Start<'s> {
    First,
    After(&'s [Value]),
    Keys(&'s ValueColumn, std::ops::Range<usize>),
    /// A heap sweep's range: rows of the heap strictly between the two
    /// `tid`s.
    Sweep(Heap, Tid, Tid),
}

/// The rest of a group of rows sharing one time, in key order, taken by key
/// batch after batch; the values live in the group's own memory.
struct SameTimeKeys {
    time: Value,
    keys: ValueColumn,
    taken: usize,
    _memory: OwnedContext,
}

/// How many keys of a same-time group are read at once.
const SAME_TIME_KEYS_READ: i64 = 10_000;

/// Where a run is, kept between the steps of a commit-per-batch run.
#[derive(Default)]
pub struct Progress {
    /// Indexes into `setup.policies`, in the order they run.
    order: Vec<usize>,
    /// Position in `order`.
    next_policy: usize,
    /// The current policy's keyset: time and key of the last row of the
    /// last completed root batch (in `memory.keyset`).
    after: Option<Vec<Value>>,
    /// While set, batches take these keys instead of the keyset.
    same_time: Option<SameTimeKeys>,
    /// The last keyset batch was full and all at one time.
    last_batch_one_time: bool,
    /// The current policy's heap sweep, when its batches sweep the heap
    /// instead of taking a keyset ([`crate::strategy`]).
    sweep: Option<Sweep>,
    /// The current policy's partitions still to remove whole, before its
    /// batches ([`crate::partitions`]).
    whole_partitions: VecDeque<WholePartition>,
    /// The current policy's partitions (and those below them) to keep that
    /// could not be kept this run: its batches keep out of them.
    left_partitions: Vec<RelId>,
    /// Per partition removed or left whole: its policy's table, and its
    /// history entry.
    partition_counts: Vec<(RelId, TableCount)>,
    /// The next one-statement batch locks its rows first: the last one,
    /// without, waited too long for a row another session holds.
    lock_rows_next: bool,
    /// Counts of batches that committed into the run.
    done: HashMap<RelId, Tally>,
    /// Per foreign key, how many parent keys the last child statement took.
    chunk_hint: HashMap<String, usize>,
    /// Position in `order` whose privileges were checked.
    checked: Option<usize>,
    /// Policies that failed; the run went on with the others.
    failures: Vec<(String, BatchFailure)>,
    /// Per policy, rows deleted per root row (the root and its dependents).
    fanout: HashMap<i64, f64>,
    /// Per policy with dependents, milliseconds a completed root batch took
    /// per root row.
    ms_per_root: HashMap<i64, f64>,
    /// Rows deleted so far for the root batch in progress (over its steps).
    batch_deleted: i64,
    /// Times in a row the batch in progress was rolled back because one of
    /// its rows changed (batches without row locks).
    changed_retries: u32,
    /// How far the oldest row of the last completed root batch was older
    /// than its policy's cutoff, in microseconds.
    last_batch_lag_us: Option<i64>,
    /// Every statement of the run, planned once.
    statements: PreparedStatements,
    memory: RunMemory,
}

impl Progress {
    /// Time-based policies first, children before parents, then orphan
    /// policies children first. A child's own policy walks its table in
    /// time order, a few statements per batch; the parent's policy then finds
    /// those children gone instead of gathering them parent by parent. The
    /// rows deleted are the same in either order.
    pub fn new(setup: &Setup) -> Self {
        let mut expire: Vec<usize> = (0..setup.policies.len())
            .filter(|i| setup.policies[*i].kind == PolicyKind::Expire)
            .collect();
        // Policies of partitioned tables whose partitions other policies
        // reach through foreign keys declared on the partitions go first:
        // those partitions' rows expire by their table's own policy before
        // any walk looks at them (the preview counts them so).
        let not_an_ancestor = |relid: RelId| !setup.policy_ancestors.values().any(|a| *a == relid);
        expire.sort_by_key(|i| {
            let relid = setup.policies[*i].relid;
            (not_an_ancestor(relid), setup.plan.position(relid))
        });
        let orphans = setup.orphan_order.iter().flat_map(|relid| {
            (0..setup.policies.len()).filter(move |i| {
                setup.policies[*i].kind == PolicyKind::Orphan && setup.policies[*i].relid == *relid
            })
        });
        // A policy that cannot run fails from the start; the others run.
        let failures = setup
            .broken
            .iter()
            .map(|b| (policy_name(&b.policy), b.error.clone()))
            .collect();
        Progress {
            order: expire.into_iter().chain(orphans).collect(),
            failures,
            ..Default::default()
        }
    }

    /// Index into `setup.policies` of the policy the next step works on.
    pub fn current_policy(&self) -> Option<usize> {
        self.order.get(self.next_policy).copied()
    }

    pub fn finished(&self) -> bool {
        self.next_policy >= self.order.len()
    }

    pub fn total_deleted(&self) -> i64 {
        let whole: i64 = self.partition_counts.iter().map(|(_, c)| c.deleted).sum();
        self.done.values().map(|t| t.deleted).sum::<i64>() + whole
    }

    /// How far behind the last completed root batch that deleted rows of
    /// its own table was: how much older than its policy's cutoff its oldest
    /// row was (`None`: no such batch yet in the current policy).
    pub fn last_batch_lag(&self) -> Option<std::time::Duration> {
        self.last_batch_lag_us
            .map(|us| std::time::Duration::from_micros(us.max(0) as u64))
    }

    /// Gives up on the current policy for this run (its rows stay for the next).
    pub fn skip_policy(&mut self) {
        self.next_policy += 1;
        self.after = None;
        self.same_time = None;
        self.last_batch_one_time = false;
        self.sweep = None;
        self.whole_partitions.clear();
        self.left_partitions.clear();
        self.lock_rows_next = false;
        self.last_batch_lag_us = None;
    }

    /// Records that the current policy failed (its failing batch was rolled
    /// back) and moves on to the next one.
    pub fn fail_policy(&mut self, setup: &Setup, failure: BatchFailure) {
        if let Some(index) = self.current_policy() {
            self.failures
                .push((policy_name(&setup.policies[index]), failure));
        }
        self.skip_policy();
    }

    /// All policy failures as one, for the history row: the messages, and the
    /// first failure's SQLSTATE.
    pub fn failure(&self) -> Option<BatchFailure> {
        let (_, first) = self.failures.first()?;
        let message = self
            .failures
            .iter()
            .map(|(policy, f)| format!("{policy}: {}", f.message))
            .collect::<Vec<_>>()
            .join("; ");
        Some(BatchFailure {
            message,
            sqlstate: first.sqlstate.clone(),
            detail: first.detail.clone(),
            interrupted: false,
            changed_during_batch: false,
        })
    }

    /// Per-table counts in the order tables are deleted from: the plan's
    /// children-first order, then orphan tables; a partitioned table's
    /// partitions removed whole (or left whole) just before it.
    pub fn counts(&self, setup: &Setup) -> Vec<TableCount> {
        let mut out: Vec<TableCount> = Vec::new();
        for relid in setup.plan.order.iter().chain(setup.orphan_order.iter()) {
            if out.iter().any(|c| c.relation == setup.name(*relid)) {
                continue;
            }
            out.extend(
                self.partition_counts
                    .iter()
                    .filter(|(table, _)| table == relid)
                    .map(|(_, count)| count.clone()),
            );
            if let Some(t) = self.done.get(relid).filter(|t| t.deleted > 0) {
                out.push(TableCount {
                    relid: *relid,
                    relation: setup.name(*relid).to_string(),
                    deleted: t.deleted,
                    oldest: t.oldest,
                    newest: t.newest,
                    ..Default::default()
                });
            }
        }
        out
    }
}

/// A policy as the run's `error` names it.
fn policy_name(p: &Policy) -> String {
    format!(
        "{} ({} policy {})",
        p.relation.as_deref().unwrap_or("?"),
        p.kind.as_str(),
        p.id
    )
}

pub struct Deleter<'a> {
    setup: &'a Setup,
    default_batch_size: i64,
    pub progress: Progress,
    /// Counts of the batch in progress, merged into `progress` when it succeeds.
    pending: HashMap<RelId, Tally>,
    /// Rows one step may delete before it stops (commit-per-batch runs).
    budget: Option<i64>,
    /// The current policy's batches select their rows without locking them
    /// ([`Setup::lock_free`]).
    lock_free: bool,
}

impl<'a> Deleter<'a> {
    pub fn new(
        setup: &'a Setup,
        default_batch_size: i64,
        progress: Progress,
        budget: Option<i64>,
    ) -> Self {
        let mut progress = progress;
        progress.statements.set_enabled(budget.is_some());
        Deleter {
            setup,
            default_batch_size,
            progress,
            pending: HashMap::new(),
            budget,
            lock_free: false,
        }
    }

    /// Runs every remaining batch (one transaction: `retention_execute`). A
    /// policy that fails is recorded and skipped; a cancel ends the run.
    pub fn run(&mut self, client: &mut SpiClient<'_>) -> std::result::Result<(), BatchFailure> {
        while !self.progress.finished() {
            match self.step(client) {
                Err(f) if f.is_cancel() => return Err(f),
                Err(f) => self.progress.fail_policy(self.setup, f),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    /// Runs one root batch with its dependents (or, with a budget, part of
    /// its dependents) in a subtransaction. On failure the batch is rolled
    /// back and the position stays on it.
    pub fn step(&mut self, client: &mut SpiClient<'_>) -> std::result::Result<(), BatchFailure> {
        let setup = self.setup;
        let Some(&index) = self.progress.order.get(self.progress.next_policy) else {
            return Ok(());
        };
        let policy = &setup.policies[index];
        if self.progress.checked != Some(self.progress.next_policy) {
            // Refused before its first batch, the policy deletes nothing.
            let (sweep, whole) = in_subtransaction(|| {
                as_table_owner(policy.owner, || {
                    setup.check_privileges(client, policy)?;
                    Ok((
                        strategy::choose(client, setup, policy, self.default_batch_size)?,
                        partitions::whole_partitions(client, setup, policy)?,
                    ))
                })
            })?;
            self.progress.sweep = sweep;
            self.progress.whole_partitions = whole.into();
            self.progress.checked = Some(self.progress.next_policy);
            if !self.progress.whole_partitions.is_empty() {
                pgrx::debug1!(
                    "pg_retention: {} (expire): {} partitions older than the cutoff go whole",
                    setup.name(policy.relid),
                    self.progress.whole_partitions.len()
                );
            }
            let how = match &self.progress.sweep {
                Some(sweep) => sweep.describe(),
                None => "batches take the oldest rows first, by keyset".to_string(),
            };
            pgrx::debug1!(
                "pg_retention: {} ({}): {how}",
                setup.name(policy.relid),
                policy.kind.as_str()
            );
        }
        let batch_limit = policy
            .batch_size
            .map(i64::from)
            .unwrap_or(self.default_batch_size);
        if let Some(partition) = self.progress.whole_partitions.pop_front() {
            return self.remove_whole(client, policy, partition, batch_limit);
        }
        // With a row budget per step (commit per batch), take as many root
        // rows as fit the budget together with their dependents, as measured
        // on the previous batches: a step then deletes a whole root batch
        // instead of re-selecting and re-locking the same one many times.
        // Before anything is measured, a policy with dependents starts with
        // one root row: a full root batch could hold far more rows than one
        // step deletes, and every step would re-lock it and re-walk its
        // dependents.
        // A root whose dependents, as measured, exceed a statement's rows
        // takes several statements whatever happens: a one-statement batch
        // (`sized`, below) would count them only to find they do not fit.
        let (limit, sized) = match (self.budget, self.progress.fanout.get(&policy.id)) {
            (Some(budget), Some(rows_per_root)) if *rows_per_root > 1.0 => (
                ((budget as f64 / rows_per_root).floor() as i64).clamp(1, batch_limit),
                *rows_per_root <= batch_limit as f64,
            ),
            (Some(_), None) if clears_dependents(setup, policy) => (1, false),
            _ => (batch_limit, false),
        };
        // Rows whose dependents cost much per root (a foreign key check
        // that scans a child table without an index, say) take fewer roots
        // per batch: a batch holds its locks about BATCH_TARGET at most.
        let limit = match (self.budget, self.progress.ms_per_root.get(&policy.id)) {
            (Some(_), Some(ms)) if *ms > 0.0 => {
                limit.min(((BATCH_TARGET.as_secs_f64() * 1000.0 / ms).floor() as i64).max(1))
            }
            _ => limit,
        };
        let after = self.progress.after.take();
        let group = self.progress.same_time.take();
        let keys = group.as_ref().map(|g| {
            let end = (g.taken + limit as usize).min(g.keys.len());
            (g.taken..end, end - g.taken)
        });
        let sweep_range = match self.progress.sweep.as_mut() {
            Some(sweep) => {
                let then_keyset = sweep.then_keyset;
                match sweep.next_range() {
                    Some((heap, from, to)) => Some((heap.clone(), from, to)),
                    // Swept: the partitions left to their index follow, by keyset.
                    None if then_keyset => {
                        self.progress.sweep = None;
                        None
                    }
                    None => {
                        self.progress.skip_policy();
                        return Ok(());
                    }
                }
            }
            None => None,
        };
        let start = match (sweep_range, &group, &keys, &after) {
            (Some((heap, from, to)), ..) => Start::Sweep(heap, from, to),
            (_, Some(g), Some((range, _)), _) => Start::Keys(&g.keys, range.clone()),
            (_, _, _, Some(after)) => Start::After(after),
            _ => Start::First,
        };
        self.pending.clear();
        self.progress.memory.batch.reset();
        self.lock_free = setup.lock_free(policy.relid);
        // Before every batch: a table owner's trigger may have set some
        // constraints DEFERRED again in the batch before.
        deferred_constraints_immediate(client).map_err(internal)?;
        // One transaction for the whole run (retention_execute): from its
        // first statement if any policy needs it; a transaction per step
        // (retention_run): for the steps of such a policy only.
        let sequential = if self.budget.is_some() {
            setup.policy_routes_reference(policy.relid)
        } else {
            setup.routes_reference()
        };
        let unlocked_batch = !self.progress.lock_rows_next
            && policy.kind == PolicyKind::Expire
            && !clears_dependents(setup, policy)
            && (setup.deletes_by_ctid(policy.relid) || self.progress.sweep.is_some());
        let mut batch = || {
            in_subtransaction(|| {
                as_table_owner(policy.owner, || {
                    setup.pin_tables(policy)?;
                    let limits = Limits {
                        root: limit,
                        statement: batch_limit,
                        sized,
                    };
                    let p = self.root_batch(client, policy, limits, &start)?;
                    // Two full keyset batches in a row at one time: they sit inside a
                    // large group of rows sharing that time. Read the rest of the
                    // group's keys once rather than sort the group at every batch.
                    let full_at_one_time = p.complete && p.one_time && p.selected == limit;
                    let next_group = match (&start, &p.last) {
                        (Start::Keys(..) | Start::Sweep(..), _) | (_, None) => None,
                        (_, Some(last))
                            if full_at_one_time && self.progress.last_batch_one_time =>
                        {
                            self.same_time_keys(client, policy, last)?
                        }
                        _ => None,
                    };
                    Ok((p, next_group, full_at_one_time))
                })
            })
        };
        let started = std::time::Instant::now();
        let outcome = if sequential {
            with_citus_sequential(batch)
        } else {
            batch()
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        // The position is put back as it was; the code below moves it.
        self.progress.after = after;
        self.progress.same_time = group;
        let pending = std::mem::take(&mut self.pending);
        let (p, next_group, full_at_one_time) = match outcome {
            // A batch without row locks waited too long for a row another
            // session holds, and was rolled back: taken again with row
            // locks, which skip such rows.
            Err(f) if unlocked_batch && ROW_WAIT_STATES.contains(&f.sqlstate.as_str()) => {
                self.progress.lock_rows_next = true;
                return Ok(());
            }
            // A row of a batch without row locks changed: the batch was
            // rolled back whole; the next step takes it again. So too for
            // what a writer's change does to such a batch's statements: a
            // child attached after its parent's children were deleted
            // (23503), a row moved to another partition (40001), a deadlock
            // with a writer's row locks (40P01).
            Err(f)
                if self.lock_free
                    && (f.changed_during_batch
                        || CONCURRENT_CHANGE_STATES.contains(&f.sqlstate.as_str()))
                    && self.progress.changed_retries < CHANGED_RETRIES =>
            {
                self.progress.changed_retries += 1;
                return Ok(());
            }
            outcome => {
                self.progress.changed_retries = 0;
                outcome?
            }
        };
        self.progress.batch_deleted += pending.values().map(|t| t.deleted).sum::<i64>();
        if p.complete {
            let oldest = pending
                .get(&policy.relid)
                .and_then(|t| t.oldest)
                .filter(|us| *us != sqlgen::NEG_INFINITY_US);
            // A batch that deleted none of the table's rows (a sweep's range
            // of dead and young rows) says nothing of how far behind the run
            // is: the last lag stands until the policy ends.
            if let Some(lag) = oldest
                .zip(unix_us(policy.cutoff))
                .map(|(oldest, cutoff)| cutoff.saturating_sub(oldest))
            {
                self.progress.last_batch_lag_us = Some(lag);
            }
        }
        for (rel, t) in pending {
            self.progress
                .done
                .entry(rel)
                .or_default()
                .add(t.deleted, t.oldest, t.newest);
        }
        if !p.complete {
            // The batch held more than a step deletes: the next step takes
            // it again (the keyset has not moved), smaller, as measured so far.
            if p.selected > 0 {
                let rows_per_root = self.progress.batch_deleted as f64 / p.selected as f64;
                let estimate = self.progress.fanout.entry(policy.id).or_insert(0.0);
                *estimate = estimate.max(rows_per_root);
            }
            return Ok(());
        }
        let deleted = std::mem::take(&mut self.progress.batch_deleted);
        if p.selected > 0 && clears_dependents(setup, policy) {
            let ms = elapsed_ms / p.selected as f64;
            let estimate = self.progress.ms_per_root.entry(policy.id).or_insert(ms);
            *estimate = (*estimate + ms) / 2.0;
        }
        if p.selected > 0 {
            let rows_per_root = deleted as f64 / p.selected as f64;
            let estimate = self
                .progress
                .fanout
                .entry(policy.id)
                .or_insert(rows_per_root);
            *estimate = (*estimate + rows_per_root) / 2.0;
        }
        self.progress.lock_rows_next = false;
        if let Some(sweep) = self.progress.sweep.as_mut() {
            sweep.advance(p.selected, limit, p.last_tid);
        } else if let Some((_, taken)) = keys {
            // Inside a same-time group: missing keys (deleted or locked by
            // others) do not end the policy; the keyset resumes after the group.
            if let Some(g) = self.progress.same_time.as_mut() {
                g.taken += taken;
                if g.taken >= g.keys.len() {
                    let last_key = Value {
                        datum: g.keys.values.last().copied().flatten(),
                        ty: g.keys.ty,
                    };
                    let after = [g.time, last_key];
                    self.set_keyset(&after);
                    self.progress.same_time = None;
                }
            }
        } else if p.selected < limit {
            self.progress.skip_policy();
        } else if let Some(last) = p.last {
            self.set_keyset(&last);
            self.progress.last_batch_one_time = full_at_one_time && next_group.is_none();
            self.progress.same_time = next_group;
        } else {
            self.progress.skip_policy();
        }
        Ok(())
    }

    /// Continues the current policy after `last` (time and key), copied into
    /// the run's keyset memory (the batch's memory is reset at every step).
    fn set_keyset(&mut self, last: &[Value]) {
        // `last` lives in the batch's or a group's memory, never in the
        // keyset's, so the old keyset can be freed first.
        self.progress.after = None;
        self.progress.memory.keyset.reset();
        let keyset = &self.progress.memory.keyset;
        self.progress.after = Some(last.iter().map(|v| v.copied_to(keyset)).collect());
    }

    /// The keys after the batch's last row at the same time, in key order
    /// (at most [`SAME_TIME_KEYS_READ`]); `None` if there are none or the
    /// key has several columns.
    fn same_time_keys(
        &mut self,
        client: &mut SpiClient<'_>,
        policy: &Policy,
        last: &[Value],
    ) -> Result<Option<SameTimeKeys>> {
        let setup = self.setup;
        let shape = setup.shape(policy.relid);
        let (Some(time), Some(key), 1) = (last.first(), last.get(1), shape.key.len()) else {
            return Ok(None);
        };
        let batch = RootBatch {
            table: shape,
            time: setup.policy_column(policy.id),
            start: BatchStart::Keys,
            extra: None,
            guard: None,
        };
        let memory = OwnedContext::new(c"pg_retention same-time keys");
        let key_type = key.ty;
        let keys: Vec<Value> = self
            .progress
            .statements
            .rows(
                client,
                &batch.same_time_keys_sql(),
                &[time.param(), key.param(), SAME_TIME_KEYS_READ.into()],
                |r| Value::read(&memory, r, 1, &key_type),
            )
            .map_err(internal)?;
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(SameTimeKeys {
            time: time.copied_to(&memory),
            keys: ValueColumn {
                ty: key_type,
                values: keys.iter().map(|v| v.datum).collect(),
            },
            taken: 0,
            _memory: memory,
        }))
    }

    /// Whether the step has deleted its budget of rows and stops, leaving the
    /// rest of the batch to the next step. Never without row locks: the
    /// rows selected would then be re-checked by nobody once this step
    /// commits (a root row made young meanwhile would keep none of the
    /// dependents this step deleted). Such a batch, sized from the fan-out
    /// like any other, commits whole.
    fn over_budget(&self) -> bool {
        !self.lock_free
            && self
                .budget
                .is_some_and(|b| self.pending.values().map(|t| t.deleted).sum::<i64>() >= b)
    }

    fn tally(&mut self, relid: RelId, deleted: i64, oldest: Option<i64>, newest: Option<i64>) {
        self.pending
            .entry(relid)
            .or_default()
            .add(deleted, oldest, newest);
    }

    fn root_batch(
        &mut self,
        client: &mut SpiClient<'_>,
        policy: &Policy,
        limits: Limits,
        start: &Start<'_>,
    ) -> Result<RootProgress> {
        let Limits {
            root: root_limit,
            statement: statement_limit,
            sized,
        } = limits;
        let setup = self.setup;
        let shape = setup.shape(policy.relid);
        let time = setup.policy_column(policy.id);
        let left = &self.progress.left_partitions;
        let extra = match policy.kind {
            PolicyKind::Orphan => Some(setup.orphan_test(policy.relid).clone()),
            PolicyKind::Expire if left.is_empty() => None,
            PolicyKind::Expire => Some((
                sqlgen::not_in_tables("t", left),
                sqlgen::not_in_tables("x", left),
            )),
        };
        // A sweep's batch in a leaf partition reads and deletes from the
        // partition itself (`ONLY leaf`, by its name now that it is
        // locked), under its guard.
        let leaf;
        let (table, guard) = match start {
            Start::Sweep(heap, ..) if heap.relid != policy.relid => {
                let Some(qualified) = crate::catalog::lock_partition_path(&heap.links) else {
                    return Ok(self.end_sweep(policy, &no_longer_sweepable(&heap.qualified)));
                };
                leaf = TableShape {
                    relid: heap.relid,
                    qualified,
                    plain_table: true,
                    partitioned: false,
                    has_inheritors: false,
                    excluded_inheritors: Vec::new(),
                    ..shape.clone()
                };
                (&leaf, heap.guard.clone())
            }
            _ => (shape, None),
        };
        let batch = RootBatch {
            table,
            time,
            start: match start {
                Start::First => BatchStart::First,
                Start::After(_) => BatchStart::After,
                Start::Keys(..) => BatchStart::Keys,
                Start::Sweep(..) => BatchStart::Sweep,
            },
            extra,
            guard,
        };
        let start_values: Vec<Value> = match start {
            Start::First | Start::Sweep(..) => Vec::new(),
            Start::After(after) => after.to_vec(),
            Start::Keys(keys, range) => {
                vec![keys.array_value(&self.progress.memory.batch, range.clone())]
            }
        };
        let range = match start {
            Start::Sweep(_, from, to) => Some((*from, *to)),
            _ => None,
        };
        let root_args = || {
            let mut args: Vec<DatumWithOid> = vec![policy.cutoff.into(), root_limit.into()];
            args.extend(start_values.iter().map(Value::param));
            if let Some((from, to)) = range {
                args.extend([tid_datum(from).into(), tid_datum(to).into()]);
            }
            args
        };
        let time_type = type_info(shape, time)?;
        let key_types = type_infos(shape, &shape.key)?;
        // Orphans take the two statements below: locked by the first, their
        // test is re-checked by the second in a new snapshot, which sees a
        // referencing row committed after the first statement's snapshot
        // (and none can be added after the lock: its foreign key check waits
        // for it). In one statement, such a row would be invisible to the
        // re-check, and the delete would cascade to it.
        if policy.kind == PolicyKind::Expire && !clears_dependents(setup, policy) && !self.lock_free
        {
            if let Start::Sweep(_, from, to) = start {
                // A rule on the heap would rewrite the batch's DELETE before
                // any of its conditions is read: looked for first (with its
                // triggers), the heap locked by the batch's start, so that
                // none can come before the DELETE. A partition with one is
                // no longer swept.
                let heap = batch.table.relid;
                let hooks = crate::catalog::delete_hooks(heap);
                if hooks.rules {
                    if heap != policy.relid {
                        return Ok(
                            self.end_sweep(policy, &no_longer_sweepable(&batch.table.qualified))
                        );
                    }
                    refuse_delete_rules(client, heap, &relation_name(client, heap)?)?;
                }
                if self.progress.lock_rows_next {
                    return self.root_batch_sweep_locked(client, policy, &batch, root_args());
                }
                let budget = (root_limit, (*from, *to));
                let keeps_rows = hooks.before_row_trigger;
                return self.root_batch_sweep_budgeted(
                    client,
                    policy,
                    &batch,
                    root_args(),
                    budget,
                    keeps_rows,
                );
            }
            let args = root_args();
            let by_ctid = setup.deletes_by_ctid(policy.relid);
            let lock = self.progress.lock_rows_next || !by_ctid;
            return self.root_batch_single_statement(
                client,
                &batch,
                (by_ctid, lock),
                &args,
                time_type,
                &key_types,
            );
        }
        // A batch sized from the measured fan-out usually holds at most a
        // statement's worth of children: one statement does it all. If the
        // count says otherwise, it deleted nothing and the walk below runs.
        if sized {
            if let Some(children) = setup.fused_children(policy.relid) {
                let mut fused_args = root_args();
                fused_args.push(statement_limit.into());
                let types = (time_type, key_types.as_slice());
                let sweep = range.is_some();
                if let Some(done) =
                    self.root_batch_fused(client, &batch, &children, &fused_args, types, sweep)?
                {
                    return Ok(done);
                }
            }
        }
        let args = root_args();

        // Select and lock the batch, clear its dependents, then delete it.
        let mut types = vec![time_type];
        types.extend(type_infos(shape, &shape.carried)?);
        let batch_memory = &self.progress.memory.batch;
        let rows = self
            .progress
            .statements
            .rows(client, &batch.select_sql(!self.lock_free), &args, |r| {
                let tid = match range {
                    Some(_) => get::<pgrx::pg_sys::ItemPointerData>(r, types.len() + 1)?,
                    None => None,
                };
                let values = (0..types.len())
                    .map(|i| Value::read(batch_memory, r, i + 1, &types[i]))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok((values, tid))
            })
            .map_err(internal)?;
        let last_tid = range.and_then(|(_, to)| {
            rows.iter()
                .filter_map(|(_, tid)| tid.map(tid_of))
                .filter(|t| *t < to)
                .max()
        });
        let selected: Vec<Vec<Value>> = rows.into_iter().map(|(values, _)| values).collect();
        let Some(last_row) = selected.last().cloned() else {
            return Ok(RootProgress::EMPTY);
        };
        let one_time = selected[0][0].same_as(&last_row[0]);
        let carried = to_columns(&selected, 1, &types);
        // Foreign keys bind the table's own rows, not those of the tables
        // inheriting from it (whose keys may be the same values).
        let own: Vec<Vec<Value>> = selected
            .iter()
            .filter(|row| {
                !shape.has_inheritors || !shape.plain_table || in_table(&row[1], policy.relid)
            })
            .cloned()
            .collect();
        let parents = to_columns(&own, 1, &types);
        if clears_dependents(setup, policy)
            && !self.clear_dependents(client, policy.relid, &parents, statement_limit)?
        {
            return Ok(RootProgress {
                selected: selected.len() as i64,
                last: None,
                complete: false,
                one_time,
                last_tid,
            });
        }
        let deleted = self.delete_by_keys(
            client,
            shape,
            &carried,
            Recheck::Expired {
                time,
                extra: batch.extra.as_ref().map(|(_, on_x)| on_x.as_str()),
            },
            vec![policy.cutoff.into()],
        )?;
        // Without row locks, a row may have changed since it was selected and
        // its dependents deleted: then it was kept, and so must they be.
        if self.lock_free && deleted < selected.len() as i64 && clears_dependents(setup, policy) {
            return Err(RetentionError::ChangedDuringBatch(format!(
                "rows of {} changed while their dependents were deleted",
                shape.qualified
            )));
        }
        let key_len = shape.key.len();
        Ok(RootProgress {
            selected: selected.len() as i64,
            last: Some(last_row[..1 + key_len].to_vec()),
            complete: true,
            one_time,
            last_tid,
        })
    }

    /// A sweep's batch with row locks, in one statement
    /// ([`RootBatch::sweep_locked_delete_sql`]). The history's oldest and
    /// newest are those of the rows the batch found expired, counted for
    /// the policy's table. A leaf partition found no longer sweepable ends
    /// the sweep: the batch is taken again by keyset, through the policy's
    /// table.
    fn root_batch_sweep_locked(
        &mut self,
        client: &mut SpiClient<'_>,
        policy: &Policy,
        batch: &RootBatch<'_>,
        args: Vec<DatumWithOid<'_>>,
    ) -> Result<RootProgress> {
        let (selected, (deleted, oldest, newest), last, sweepable) = self
            .progress
            .statements
            .rows(client, &batch.sweep_locked_delete_sql(), &args, |r| {
                Ok((
                    get::<i64>(r, 1)?.unwrap_or_default(),
                    summary_row_at(r, 2)?,
                    get::<pgrx::pg_sys::ItemPointerData>(r, 5)?,
                    get::<bool>(r, 6)?.unwrap_or_default(),
                ))
            })
            .map_err(internal)?
            .into_iter()
            .next()
            .unwrap_or_default();
        if !sweepable {
            return Ok(self.end_sweep(policy, &no_longer_sweepable(&batch.table.qualified)));
        }
        self.tally(policy.relid, deleted, oldest, newest);
        Ok(RootProgress {
            selected,
            last: None,
            complete: true,
            one_time: false,
            last_tid: last.map(tid_of),
        })
    }

    /// A sweep's batch without row locks, in one statement
    /// ([`RootBatch::sweep_budget_delete_sql`]): the range's expired rows,
    /// as many as its budget admits ([`crate::sweep_budget`]). The next
    /// batch starts before the first row refused. A statement that deleted
    /// nothing tells whether its guard held by the guard alone. A table
    /// whose BEFORE DELETE row trigger may keep rows the budget admitted
    /// (`keeps_rows`) gets the deleted rows' own times, at the price of a
    /// second fetch.
    fn root_batch_sweep_budgeted(
        &mut self,
        client: &mut SpiClient<'_>,
        policy: &Policy,
        batch: &RootBatch<'_>,
        args: Vec<DatumWithOid<'_>>,
        (limit, range): (i64, (Tid, Tid)),
        keeps_rows: bool,
    ) -> Result<RootProgress> {
        let statements = &mut self.progress.statements;
        let time_type = batch.time.type_oid;
        let (outcome, taken) = crate::sweep_budget::with_budget(limit, range, time_type, || {
            with_lock_timeout(row_wait_ms(), || {
                if keeps_rows {
                    let sql = batch.sweep_budget_delete_returning_sql();
                    let summary = statements.rows(client, &sql, &args, summary_row)?;
                    Ok(summary
                        .into_iter()
                        .next()
                        .map(|(n, o, y)| (n, Some((o, y)))))
                } else {
                    let sql = batch.sweep_budget_delete_sql();
                    statements
                        .processed(client, &sql, &args)
                        .map(|n| Some((n, None)))
                }
            })
        });
        let (deleted, returned) = outcome.map_err(internal)?.unwrap_or_default();
        if deleted == 0 {
            if let Some(guard) = &batch.guard {
                if !guard_holds(client, guard)? {
                    return Ok(self.end_sweep(policy, &no_longer_sweepable(&batch.table.qualified)));
                }
            }
        }
        let (oldest, newest) = match (returned, taken.range()) {
            (Some(times), _) => times,
            (None, Some((oldest, newest))) if deleted > 0 => {
                (Some(summary_us(oldest)), Some(summary_us(newest)))
            }
            _ => (None, None),
        };
        self.tally(policy.relid, deleted, oldest, newest);
        // The next batch starts just before the first row refused. A row
        // refused first in the range (the budget spent before it, by rows
        // checked again after an update or by a trigger's calls) would leave
        // the sweep where it is: the keyset takes over.
        let last = taken
            .first_refused
            .map(|(block, offset)| (block, offset.saturating_sub(1)));
        if last.is_some_and(|last| last <= range.0) {
            let why = format!("the sweep of {} stopped moving", batch.table.qualified);
            return Ok(self.end_sweep(policy, &why));
        }
        Ok(RootProgress {
            selected: taken.rows,
            last: None,
            complete: true,
            one_time: false,
            last_tid: last,
        })
    }

    /// Ends the policy's sweep before a batch, for the reason `why`: the
    /// batch is taken again by keyset, and so is the rest of the policy.
    fn end_sweep(&mut self, policy: &Policy, why: &str) -> RootProgress {
        pgrx::debug1!(
            "pg_retention: {} (expire): {why}; the rest goes by keyset",
            self.setup.name(policy.relid),
        );
        self.progress.sweep = None;
        RootProgress {
            complete: false,
            ..RootProgress::EMPTY
        }
    }

    fn root_batch_single_statement(
        &mut self,
        client: &mut SpiClient<'_>,
        batch: &RootBatch<'_>,
        (by_ctid, lock): (bool, bool),
        args: &[DatumWithOid<'_>],
        time_type: TypeInfo,
        key_types: &[TypeInfo],
    ) -> Result<RootProgress> {
        let memory = &self.progress.memory.batch;
        let statements = &mut self.progress.statements;
        let found = waiting_briefly_unless(lock, || {
            statements.rows(client, &batch.delete_sql(by_ctid, lock), args, |r| {
                batch_row(r, 5, memory, time_type, key_types)
            })
        })
        .map_err(internal)?;
        match found.into_iter().next() {
            None => Ok(RootProgress::EMPTY),
            Some((selected, (deleted, oldest, newest), last, one_time)) => {
                self.tally(batch.table.relid, deleted, oldest, newest);
                Ok(RootProgress {
                    selected,
                    last: Some(last),
                    complete: true,
                    one_time,
                    last_tid: None,
                })
            }
        }
    }

    /// One root batch in one statement ([`sqlgen::RootBatch::fused_sql`]),
    /// its children deleted by their cascade and counted from their tables'
    /// statistics. `None` when a child table holds more than a statement's
    /// worth of the batch's rows: nothing was deleted (the batch stays locked).
    fn root_batch_fused(
        &mut self,
        client: &mut SpiClient<'_>,
        batch: &RootBatch<'_>,
        children: &[FusedChild<'_>],
        args: &[DatumWithOid<'_>],
        (time_type, key_types): (TypeInfo, &[TypeInfo]),
        sweep: bool,
    ) -> Result<Option<RootProgress>> {
        let last_ctid_at = 7 + 1 + key_types.len() + 1;
        let memory = &self.progress.memory.batch;
        let mut cascaded: Vec<RelId> = children.iter().map(|c| c.table.relid).collect();
        cascaded.sort_unstable();
        cascaded.dedup();
        let before: Vec<i64> = cascaded.iter().map(|r| xact_tuples_deleted(*r)).collect();
        let found = self
            .progress
            .statements
            .rows(client, &batch.fused_sql(children), args, |r| {
                let last_ctid = if sweep {
                    get::<pgrx::pg_sys::ItemPointerData>(r, last_ctid_at)?
                } else {
                    None
                };
                Ok((
                    batch_row(r, 7, memory, time_type, key_types)?,
                    get::<bool>(r, 6)?.unwrap_or(false),
                    last_ctid,
                ))
            })
            .map_err(internal)?;
        let Some(((selected, (deleted, oldest, newest), last, one_time), allowed, last_ctid)) =
            found.into_iter().next()
        else {
            return Ok(Some(RootProgress::EMPTY));
        };
        if !allowed {
            return Ok(None);
        }
        for (relid, before) in cascaded.iter().zip(before) {
            self.tally(*relid, xact_tuples_deleted(*relid) - before, None, None);
        }
        self.tally(batch.table.relid, deleted, oldest, newest);
        Ok(Some(RootProgress {
            selected,
            last: Some(last),
            complete: true,
            one_time,
            last_tid: last_ctid.map(tid_of),
        }))
    }

    /// Removes one partition whole, in a subtransaction of its own, as the
    /// policy's table owner, and records it. A partition that cannot be
    /// removed (its locks busy past `pg_retention.partition_lock_timeout`,
    /// a view on it, changed since it was listed) keeps its rows for the
    /// batches; one to keep that cannot be kept is left whole for the next
    /// run (the policy's batches keep out of it). Either way the run goes
    /// on.
    fn remove_whole(
        &mut self,
        client: &mut SpiClient<'_>,
        policy: &Policy,
        partition: WholePartition,
        statement_limit: i64,
    ) -> std::result::Result<(), BatchFailure> {
        self.pending.clear();
        self.progress.memory.batch.reset();
        deferred_constraints_immediate(client).map_err(internal)?;
        // The partition's dependents and the partition go in one
        // transaction, whatever a step's row budget: committed apart, the
        // dependents of rows that are still there would be gone.
        let budget = self.budget.take();
        let outcome = in_subtransaction(|| {
            as_table_owner(policy.owner, || {
                self.detach_and_drop(client, policy, &partition, statement_limit)
            })
        });
        self.budget = budget;
        let pending = std::mem::take(&mut self.pending);
        let mut entry = TableCount {
            relid: partition.relid,
            relation: partition.qualified.clone(),
            ..Default::default()
        };
        match outcome {
            Ok(removed) => {
                if let Some(sweep) = self.progress.sweep.as_mut() {
                    sweep.forget(&partition.members);
                }
                for (rel, t) in pending {
                    self.progress
                        .done
                        .entry(rel)
                        .or_default()
                        .add(t.deleted, t.oldest, t.newest);
                }
                entry.deleted = removed.rows;
                entry.oldest = removed.oldest;
                entry.newest = removed.newest;
                entry.bytes = removed.bytes;
                entry.partition = Some(
                    match policy
                        .partition_action
                        .as_ref()
                        .unwrap_or(&PartitionAction::Drop)
                    {
                        PartitionAction::Drop => "dropped".to_string(),
                        PartitionAction::Detach(None) => "detached".to_string(),
                        PartitionAction::Detach(Some(schema)) => {
                            format!("detached, moved to schema {schema}")
                        }
                    },
                );
            }
            Err(f) if f.is_cancel() => return Err(f),
            // A partition to keep goes to the batches only when it no longer
            // qualifies (40001); if keeping it fails (no CREATE on the
            // schema, a table of that name there), its rows wait for the
            // DBA, whole, rather than being deleted.
            Err(f)
                if matches!(policy.partition_action, Some(PartitionAction::Detach(_)))
                    && f.sqlstate != "40001" =>
            {
                entry.partition = Some(format!(
                    "left whole for the next run: {} (SQLSTATE {})",
                    f.message, f.sqlstate
                ));
                if let Some(sweep) = self.progress.sweep.as_mut() {
                    sweep.forget(&partition.members);
                }
                self.progress
                    .left_partitions
                    .extend(partition.members.iter().copied());
            }
            Err(f) => {
                entry.partition = Some(format!(
                    "not removed whole, its rows are deleted in batches: {} (SQLSTATE {})",
                    f.message, f.sqlstate
                ));
            }
        }
        self.progress.partition_counts.push((policy.relid, entry));
        Ok(())
    }

    /// Locks the partition against writes (reads and row locks go on),
    /// checks it again, counts its rows (all expired, or it stays), deletes
    /// the rows that reference them, then detaches and drops it.
    fn detach_and_drop(
        &mut self,
        client: &mut SpiClient<'_>,
        policy: &Policy,
        listed: &WholePartition,
        statement_limit: i64,
    ) -> Result<RemovedPartition> {
        let setup = self.setup;
        let time = setup.policy_column(policy.id);
        // From here no row of the partition can change or move. New rows
        // referencing one are not held off: a writer's foreign key check,
        // planned once for all partitions, locks every partition of the
        // table it references, so a stronger lock here would stop every
        // writer while the dependents are deleted. One added meanwhile
        // makes the detach fail (23503): the partition is rolled back and
        // left to the batches.
        // Without dependents to delete first, the locks detaching takes come
        // first, in the order writers take them (the tables referenced,
        // then the partitioned table, then its partition): otherwise a
        // session updating the partitioned table (its lock held, waiting
        // for this partition's) and this run (this partition's lock held,
        // waiting for the partitioned table's) wait for each other.
        let early = !clears_dependents(setup, policy);
        // Locked by oid, the partition and those below it, then read
        // again: bound, triggers and members stay what they are now.
        with_partition_lock_timeout(|| {
            if early {
                for &referenced in &listed.referenced {
                    lock_relation(referenced, pgrx::pg_sys::ShareRowExclusiveLock);
                }
                lock_relation(listed.parent, pgrx::pg_sys::AccessExclusiveLock);
            }
            for &member in &listed.members {
                lock_relation(member, pgrx::pg_sys::ShareLock);
            }
        });
        let changed = || {
            RetentionError::ChangedDuringBatch(format!(
                "partition {} changed since the run listed it",
                listed.qualified
            ))
        };
        let partition = &partitions::still_whole(client, setup, policy, listed)?
            .filter(|p| p.members == listed.members)
            .ok_or_else(changed)?;
        let members: Vec<pgrx::pg_sys::Oid> = partition
            .members
            .iter()
            .map(|r| pgrx::pg_sys::Oid::from(*r))
            .collect();
        let (removed, young) = rows_mut(
            client,
            &sqlgen::partition_summary_sql(&partition.qualified, time),
            &[members.into(), policy.cutoff.into()],
            |r| {
                Ok((
                    RemovedPartition {
                        rows: get::<i64>(r, 1)?.unwrap_or_default(),
                        oldest: get::<i64>(r, 2)?,
                        newest: get::<i64>(r, 3)?,
                        bytes: get::<i64>(r, 4)?,
                    },
                    get::<i64>(r, 5)?.unwrap_or_default(),
                ))
            },
        )
        .map_err(internal)?
        .into_iter()
        .next()
        .unwrap_or_default();
        // Every row it holds must be one the batches would delete, by
        // their own test (a bound converted across a daylight saving gap
        // can hold a row that is not).
        if young > 0 {
            return Err(RetentionError::ChangedDuringBatch(format!(
                "{young} rows of partition {} are not older than the cutoff",
                partition.qualified
            )));
        }
        if clears_dependents(setup, policy) {
            setup.pin_dependents(policy)?;
            self.clear_partition_dependents(client, policy, partition, statement_limit)?;
        }
        // Detaching checks that no row references the partition's rows any
        // more (23503 otherwise: the partition stays, rolled back).
        with_partition_lock_timeout(|| {
            for &referenced in &partition.referenced {
                lock_relation(referenced, pgrx::pg_sys::ShareRowExclusiveLock);
            }
            client.update(
                &sqlgen::detach_partition_sql(&partition.parent_qualified, &partition.qualified),
                None,
                &[],
            )?;
            // DDL takes names, and a schema renamed meanwhile (which locks no
            // table) can give them to other tables: each statement is
            // checked by oid, and a mismatch rolls everything back.
            let oid = pgrx::pg_sys::Oid::from(partition.relid);
            verified(client, sqlgen::DETACHED_SQL, &[oid.into()])?;
            match policy
                .partition_action
                .as_ref()
                .unwrap_or(&PartitionAction::Drop)
            {
                PartitionAction::Drop => {
                    client.update(&sqlgen::drop_table_sql(&partition.qualified), None, &[])?;
                    verified(client, sqlgen::DROPPED_SQL, &[oid.into()])?;
                }
                PartitionAction::Detach(None) => {}
                PartitionAction::Detach(Some(schema)) => {
                    client.update(
                        &sqlgen::set_schema_sql(&partition.qualified, schema),
                        None,
                        &[],
                    )?;
                    verified(
                        client,
                        sqlgen::MOVED_SQL,
                        &[oid.into(), schema.as_str().into()],
                    )?;
                }
            }
            Ok::<_, pgrx::spi::SpiError>(())
        })
        .map_err(internal)?;
        Ok(removed)
    }

    /// Deletes what references the rows of a partition about to go, through
    /// the foreign keys to its partitioned table, a statement's worth of
    /// its rows at a time (in key order), children first as for a batch.
    fn clear_partition_dependents(
        &mut self,
        client: &mut SpiClient<'_>,
        policy: &Policy,
        partition: &WholePartition,
        statement_limit: i64,
    ) -> Result<()> {
        let shape = self.setup.shape(policy.relid);
        let types = type_infos(shape, &shape.carried)?;
        let key_len = shape.key.len();
        let keyset = OwnedContext::new(c"pg_retention partition keyset");
        let mut after: Option<Vec<Value>> = None;
        loop {
            self.progress.memory.batch.reset();
            let memory = &self.progress.memory.batch;
            let mut args: Vec<DatumWithOid> = vec![statement_limit.into()];
            args.extend(after.iter().flatten().map(Value::param));
            // A new snapshot per statement (rows added to the partition
            // before it was locked are seen).
            let read = rows_mut(
                client,
                &sqlgen::partition_keys_sql(&partition.qualified, shape, after.is_some()),
                &args,
                |r| {
                    (0..types.len())
                        .map(|i| Value::read(memory, r, i + 1, &types[i]))
                        .collect::<std::result::Result<Vec<_>, _>>()
                },
            )
            .map_err(internal)?;
            let Some(last) = read.last() else {
                return Ok(());
            };
            let parents = to_columns(&read, 0, &types);
            self.clear_dependents(client, policy.relid, &parents, statement_limit)?;
            if (read.len() as i64) < statement_limit {
                return Ok(());
            }
            // The previous keyset was used by the statement above.
            keyset.reset();
            after = Some(
                last[..key_len]
                    .iter()
                    .map(|v| v.copied_to(&keyset))
                    .collect(),
            );
        }
    }

    /// Deletes every row that references the given parent rows through a
    /// walked foreign key, and their own dependents first. `false` when the
    /// step's budget ran out before all were gone.
    fn clear_dependents(
        &mut self,
        client: &mut SpiClient<'_>,
        parent: RelId,
        parent_rows: &Columns,
        statement_limit: i64,
    ) -> Result<bool> {
        let setup = self.setup;
        let edges: Vec<&ForeignKey> = setup.plan.child_edges(parent).collect();
        for edge in edges {
            if !self.clear_edge(client, edge, parent_rows, statement_limit)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn clear_edge(
        &mut self,
        client: &mut SpiClient<'_>,
        edge: &ForeignKey,
        parent_rows: &Columns,
        statement_limit: i64,
    ) -> Result<bool> {
        let setup = self.setup;
        let parent = setup.shape(edge.parent);
        let child = setup.shape(edge.child);
        let positions: Vec<usize> = edge
            .parent_columns
            .iter()
            .map(|c| {
                parent.carried_index(c).ok_or_else(|| {
                    RetentionError::NotReady(format!(
                        "column {c} of {} was not read",
                        parent.qualified
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let values: Columns = positions.iter().map(|i| parent_rows[*i].clone()).collect();
        let leaf = !setup.has_walked_children(edge.child);
        let by_ctid = setup.deletes_by_ctid(edge.child);
        let sql = if leaf {
            sqlgen::child_delete_sql(child, edge, by_ctid)
        } else {
            sqlgen::child_select_sql(child, edge, !self.lock_free)
        };
        // Usually all of a chunk's leaf children fit one statement. Deleted
        // by ctid, `sql` is that statement: one pass over the foreign key's
        // index and a TID scan, and it tells whether more are left. Deleted by
        // key (a table with inheritance children, Citus), `sql` probes the
        // key's index once per row: the chunk's first statement then deletes
        // them in one pass over the foreign key's index instead, after
        // counting that they fit, and only when there are more falls back to
        // `sql`.
        let one_pass_sql = leaf.then(|| sqlgen::child_delete_all_sql(child, edge));
        let child_types = if leaf {
            Vec::new()
        } else {
            type_infos(child, &child.carried)?
        };

        let total = values.first().map_or(0, ValueColumn::len);
        let mut chunk = self
            .progress
            .chunk_hint
            .get(&edge.name)
            .copied()
            .unwrap_or(total)
            .clamp(1, total.max(1));
        let mut start = 0;
        while start < total {
            let end = (start + chunk).min(total);
            let mut args: Vec<DatumWithOid> = values
                .iter()
                .map(|v| v.array_param(&self.progress.memory.batch, start..end))
                .collect();
            args.push(statement_limit.into());
            let mut statements = 0;
            let mut rows_in_chunk = 0;
            let mut one_pass_next = !by_ctid;
            loop {
                statements += 1;
                let one_pass = one_pass_sql
                    .as_deref()
                    .filter(|_| std::mem::take(&mut one_pass_next));
                let (got, cleared) = if let Some(one_pass) = one_pass {
                    let (n, found) = self.delete_counted(client, edge.child, one_pass, &args)?;
                    (n, found <= statement_limit)
                } else if leaf {
                    let (n, selected) = self.delete_counted(client, edge.child, &sql, &args)?;
                    if n < selected.min(statement_limit) {
                        // A row it selected was not deleted: another
                        // session deleted it, or updated it, and the delete's
                        // re-check kept the new version (a TID scan re-checks
                        // its ctid on some releases) though it may still
                        // reference a parent of the chunk. The next statement
                        // deletes by foreign key, which follows it.
                        one_pass_next = true;
                        (n, false)
                    } else {
                        // It selected one more than it may delete: at most
                        // the limit, and it has seen every child of the chunk.
                        (n, selected <= statement_limit)
                    }
                } else {
                    let memory = &self.progress.memory.batch;
                    let selected = self
                        .progress
                        .statements
                        .rows(client, &sql, &args, |r| {
                            (0..child_types.len())
                                .map(|i| Value::read(memory, r, i + 1, &child_types[i]))
                                .collect::<std::result::Result<Vec<_>, _>>()
                        })
                        .map_err(internal)?;
                    if !selected.is_empty() {
                        let carried = to_columns(&selected, 0, &child_types);
                        if !self.clear_dependents(client, edge.child, &carried, statement_limit)? {
                            return Ok(false);
                        }
                        // Not locked, a row may have been re-pointed to
                        // another parent meanwhile: it stays, and so must
                        // the dependents just deleted.
                        let (recheck, parents) = if self.lock_free {
                            let memory = &self.progress.memory.batch;
                            let parents: Vec<DatumWithOid> = values
                                .iter()
                                .map(|v| v.array_param(memory, start..end))
                                .collect();
                            (Recheck::References(edge), parents)
                        } else {
                            (Recheck::Nothing, Vec::new())
                        };
                        let deleted =
                            self.delete_by_keys(client, child, &carried, recheck, parents)?;
                        if self.lock_free && deleted < selected.len() as i64 {
                            return Err(RetentionError::ChangedDuringBatch(format!(
                                "rows of {} changed while their dependents were deleted",
                                child.qualified
                            )));
                        }
                    }
                    let got = selected.len() as i64;
                    // Every selected row is locked, so no new child of these
                    // parents can appear: a short statement means none are left.
                    (got, got < statement_limit)
                };
                rows_in_chunk += got;
                if self.over_budget() {
                    self.progress.chunk_hint.insert(edge.name.clone(), chunk);
                    return Ok(false);
                }
                if cleared {
                    break;
                }
            }
            start = end;
            // Aim for about one statement per chunk next time.
            if statements > 1 {
                chunk = (chunk / 2).max(1);
            } else if rows_in_chunk < statement_limit / 2 {
                chunk = chunk.saturating_mul(2);
            }
        }
        self.progress.chunk_hint.insert(edge.name.clone(), chunk);
        Ok(true)
    }

    /// Runs a child statement that returns the deleted summary then a count
    /// ([`sqlgen::child_delete_all_sql`], [`sqlgen::child_delete_sql`]);
    /// tallies the deleted rows and returns how many, with the count.
    fn delete_counted(
        &mut self,
        client: &mut SpiClient<'_>,
        child: RelId,
        sql: &str,
        args: &[DatumWithOid<'_>],
    ) -> Result<(i64, i64)> {
        let (n, lo, hi, counted) = self
            .progress
            .statements
            .rows(client, sql, args, |r| {
                let (n, lo, hi) = summary_row(r)?;
                Ok((n, lo, hi, get::<i64>(r, 4)?.unwrap_or_default()))
            })
            .map_err(internal)?
            .into_iter()
            .next()
            .unwrap_or_default();
        self.tally(child, n, lo, hi);
        Ok((n, counted))
    }

    /// Deletes the rows whose key values are given (the first columns of
    /// `rows`), re-checking what `recheck` says with `recheck_args`; returns
    /// how many it deleted.
    fn delete_by_keys(
        &mut self,
        client: &mut SpiClient<'_>,
        table: &TableShape,
        rows: &Columns,
        recheck: Recheck<'_>,
        recheck_args: Vec<DatumWithOid<'_>>,
    ) -> Result<i64> {
        let memory = &self.progress.memory.batch;
        let mut args: Vec<DatumWithOid> = rows[..table.key.len()]
            .iter()
            .map(|v| v.array_param(memory, 0..v.len()))
            .collect();
        args.extend(recheck_args);
        let sql = sqlgen::delete_by_keys_sql(table, recheck);
        let (n, lo, hi) = summary(
            self.progress
                .statements
                .rows(client, &sql, &args, summary_row)
                .map_err(internal)?,
        );
        self.tally(table.relid, n, lo, hi);
        Ok(n)
    }
}

/// The limits of one step: root rows in its batch, rows per statement, and
/// whether the root limit was sized from the measured fan-out with each
/// root's dependents fitting one statement.
#[derive(Clone, Copy)]
struct Limits {
    root: i64,
    statement: i64,
    sized: bool,
}

/// Rows of `relid` this transaction has deleted so far (subtransactions in
/// progress included), as its statistics entry counts them: cascades too.
/// Only differences between two readings in one statement's step are used.
fn xact_tuples_deleted(relid: RelId) -> i64 {
    let oid = pgrx::pg_sys::Oid::from(relid);
    // SAFETY: a builtin taking one non-null oid and returning int8; it only
    // reads this backend's pending statistics.
    unsafe {
        pgrx::direct_function_call::<i64>(
            pgrx::pg_sys::pg_stat_get_xact_tuples_deleted,
            &[pgrx::IntoDatum::into_datum(oid)],
        )
    }
    .unwrap_or_default()
}

/// Locks a relation by its oid (a partition's name may have changed hands
/// since it was listed; a referenced table's owner may be another role,
/// whose table detaching locks all the same), waiting under the session's
/// lock_timeout. `SHARE` on a partition about to go keeps writes out and
/// lets reads and row locks (a writer's foreign key check) in.
fn lock_relation(relid: RelId, mode: u32) {
    // SAFETY: takes a lock on a relation oid; an oid no longer in use is
    // harmless (the check after it finds no such partition). Errors are
    // raised as Postgres errors.
    unsafe {
        pgrx::pg_sys::LockRelationOid(
            pgrx::pg_sys::Oid::from(relid),
            mode as pgrx::pg_sys::LOCKMODE,
        )
    }
}

/// Runs `check` (a query of one boolean over the partition's oid) and
/// raises when it is not true: the statement before it acted on another
/// table than the partition.
fn verified(
    client: &mut SpiClient<'_>,
    check: &str,
    args: &[DatumWithOid<'_>],
) -> std::result::Result<(), pgrx::spi::SpiError> {
    let ok = rows_mut(client, check, args, |r| get::<bool>(r, 1))?;
    if ok.into_iter().next().flatten() != Some(true) {
        pgrx::error!("pg_retention: a partition's name led to another table (a schema renamed during the run); nothing was removed");
    }
    Ok(())
}

/// What a partition removed whole held, read just before it went.
#[derive(Default)]
struct RemovedPartition {
    rows: i64,
    oldest: Option<i64>,
    newest: Option<i64>,
    bytes: Option<i64>,
}

/// Runs `f` with `lock_timeout` set to `pg_retention.partition_lock_timeout`
/// (0: as the session has it).
fn with_partition_lock_timeout<R>(f: impl FnOnce() -> R) -> R {
    match crate::gucs::PARTITION_LOCK_TIMEOUT.get() {
        0 => f(),
        ms => with_lock_timeout(ms, f),
    }
}

/// Whether a policy's root batches clear dependents before they are deleted
/// (else each batch is selected and deleted in one statement).
fn clears_dependents(setup: &Setup, policy: &Policy) -> bool {
    policy.kind == PolicyKind::Expire && setup.has_walked_children(policy.relid)
}

type Summary = (i64, Option<i64>, Option<i64>);

/// The row a one-statement root batch returns: rows selected (column 1),
/// deleted with oldest and newest (2-4); the last row's time and key from
/// column `last_at` on (copied into `memory`), and whether the batch's first
/// time, in the column after them, is the same.
type BatchRow = (i64, Summary, Vec<Value>, bool);

fn batch_row(
    r: &pgrx::spi::SpiHeapTupleData<'_>,
    last_at: usize,
    memory: &OwnedContext,
    time_type: TypeInfo,
    key_types: &[TypeInfo],
) -> std::result::Result<BatchRow, pgrx::spi::SpiError> {
    let selected = get::<i64>(r, 1)?.unwrap_or_default();
    let (deleted, oldest, newest) = summary_row_at(r, 2)?;
    let last = std::iter::once(&time_type)
        .chain(key_types)
        .enumerate()
        .map(|(i, ty)| Value::read(memory, r, last_at + i, ty))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let one_time = get::<bool>(r, last_at + last.len())?.unwrap_or(false);
    Ok((selected, (deleted, oldest, newest), last, one_time))
}

/// Runs `f` as is when its statement locks its rows first (`locked`), else
/// waiting at most [`row_wait_ms`] for a row another session holds.
fn waiting_briefly_unless<R>(locked: bool, f: impl FnOnce() -> R) -> R {
    if locked {
        f()
    } else {
        with_lock_timeout(row_wait_ms(), f)
    }
}

/// How long a one-statement batch without row locks waits for a row
/// another session holds ([`ROW_WAIT_SHARE_OF_DEADLOCK_TIMEOUT`]).
fn row_wait_ms() -> i32 {
    // SAFETY: plain integer settings of this backend.
    let (deadlock_timeout, lock_timeout) =
        unsafe { (pgrx::pg_sys::DeadlockTimeout, pgrx::pg_sys::LockTimeout) };
    let share = deadlock_timeout / ROW_WAIT_SHARE_OF_DEADLOCK_TIMEOUT;
    if lock_timeout > 0 {
        share.min(lock_timeout)
    } else {
        share
    }
    .max(1)
}

/// A finite time as microseconds since the Unix epoch, as the batches'
/// summaries give times ([`sqlgen::NEG_INFINITY_US`] aside).
fn unix_us(ts: pgrx::datum::TimestampWithTimeZone) -> Option<i64> {
    /// 2000-01-01 (PostgreSQL's epoch) in microseconds since 1970-01-01.
    const POSTGRES_EPOCH_US: i64 = 946_684_800_000_000;
    if ts.is_infinity() || ts.is_neg_infinity() {
        return None;
    }
    ts.into_inner().checked_add(POSTGRES_EPOCH_US)
}

/// Why a sweep ends before a batch in `partition`: detached, dropped, or
/// no longer deleted from as through its table.
fn no_longer_sweepable(partition: &str) -> String {
    format!("partition {partition} can no longer be swept")
}

/// A time as the batches' summaries give it: microseconds since the Unix
/// epoch, the infinities as [`sqlgen::NEG_INFINITY_US`] and
/// [`sqlgen::INFINITY_US`].
fn summary_us(ts: pgrx::datum::TimestampWithTimeZone) -> i64 {
    if ts.is_neg_infinity() {
        sqlgen::NEG_INFINITY_US
    } else {
        unix_us(ts).unwrap_or(sqlgen::INFINITY_US)
    }
}

/// Whether a sweep's `guard` holds now.
fn guard_holds(client: &SpiClient<'_>, guard: &str) -> Result<bool> {
    let held = crate::catalog::rows(client, &format!("SELECT {guard}"), &[], |r| {
        get::<bool>(r, 1)
    })
    .map_err(internal)?;
    Ok(held.into_iter().flatten().next().unwrap_or(false))
}

fn tid_datum((block, offset): Tid) -> pgrx::pg_sys::ItemPointerData {
    let mut tid = pgrx::pg_sys::ItemPointerData::default();
    pgrx::itemptr::item_pointer_set_all(&mut tid, block, offset);
    tid
}

fn tid_of(tid: pgrx::pg_sys::ItemPointerData) -> Tid {
    pgrx::itemptr::item_pointer_get_both(tid)
}

fn summary_row(
    r: &pgrx::spi::SpiHeapTupleData<'_>,
) -> std::result::Result<Summary, pgrx::spi::SpiError> {
    summary_row_at(r, 1)
}

/// Rows deleted, oldest and newest, from column `at` on.
fn summary_row_at(
    r: &pgrx::spi::SpiHeapTupleData<'_>,
    at: usize,
) -> std::result::Result<Summary, pgrx::spi::SpiError> {
    Ok((
        get::<i64>(r, at)?.unwrap_or_default(),
        get::<i64>(r, at + 1)?,
        get::<i64>(r, at + 2)?,
    ))
}

fn summary(found: Vec<Summary>) -> Summary {
    found.into_iter().next().unwrap_or_default()
}
