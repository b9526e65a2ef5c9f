//! `pg_retention.*` settings: the defaults of `retention_run`'s caps and of
//! history pruning. Each can be set per session, per role, per database or
//! in postgresql.conf; a procedure argument overrides it for one run.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Measured in the benchmark (`docs/bench/README.md`): two writer clients
/// keeping both cores busy kept 75% of their throughput beside a run at full
/// speed, 88-91% with a ratio of 15 (three harness rows), 94-98% with 30.
const DEFAULT_YIELD_RATIO: f64 = 30.0;

pub static MAX_ROWS_PER_RUN: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MAX_RUN_DURATION: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static BATCH_PAUSE: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static YIELD_RATIO: GucSetting<f64> = GucSetting::<f64>::new(DEFAULT_YIELD_RATIO);
pub static LOCK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(5000);
pub static HISTORY_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(90 * 24 * 3600);
pub static HEAP_SWEEP: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static MAX_LAG: GucSetting<i32> = GucSetting::<i32>::new(24 * 3600);
pub static DROP_PARTITIONS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static PARTITION_LOCK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(500);

pub fn init() {
    GucRegistry::define_int_guc(
        c"pg_retention.max_rows_per_run",
        c"Rows a retention_run deletes at most before it stops (0: no cap).",
        c"Checked between batches: a run may exceed it by less than one batch. Status 'stopped' when reached.",
        &MAX_ROWS_PER_RUN,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_retention.max_run_duration",
        c"How long a retention_run may go on before it stops between batches (0: no cap).",
        c"Status 'stopped' when reached; the next run continues where it stopped.",
        &MAX_RUN_DURATION,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"pg_retention.batch_pause",
        c"Pause between the batches of a retention_run (0: none).",
        c"Taken after a batch commits, so no row lock is held during it.",
        &BATCH_PAUSE,
        0,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_float_guc(
        c"pg_retention.yield_ratio",
        c"While other sessions are running statements, a retention_run sleeps this many times each batch's duration after it commits (0: never).",
        c"A session counts while it runs a statement or ended one in the last 100 ms; sessions are looked up at most every 100 ms; a run alone on the server is not slowed. At most one second per batch.",
        &YIELD_RATIO,
        0.0,
        1000.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_retention.max_lag",
        c"A run whose batch deleted rows older than their policy's cutoff by more than this has fallen behind: it yields less (0: never).",
        c"It yields yield_ratio times max_lag divided by how far behind the batch's oldest row was.",
        &MAX_LAG,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"pg_retention.lock_timeout",
        c"lock_timeout for each batch of a retention_run (0: wait forever).",
        c"A batch that times out is rolled back and retried; after three timeouts in a row the policy is left for the next run.",
        &LOCK_TIMEOUT,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"pg_retention.heap_sweep",
        c"Whether a policy whose expired rows are spread over its table, or a large share of it, deletes them in physical order (off: always oldest first).",
        c"Read when a run starts a policy; see docs/design.md, 'Heap sweeps'.",
        &HEAP_SWEEP,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"pg_retention.drop_partitions",
        c"Whether a policy on a table range-partitioned by its time column detaches and drops the partitions whose whole range is older than its cutoff (off: their rows are deleted in batches).",
        c"Read when a run starts a policy; see docs/design.md, 'Partitions that go whole'.",
        &DROP_PARTITIONS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_retention.partition_lock_timeout",
        c"How long removing a partition waits for each lock it takes (the partition's, then its partitioned table's); sessions that come meanwhile queue behind it.",
        c"When it runs out the partition is left, whole, for the next run, and the run goes on (0: wait forever).",
        &PARTITION_LOCK_TIMEOUT,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_retention.history_retention",
        c"How long cleanup_runs keeps finished runs (0: forever).",
        c"Runs prune older history rows themselves when they finish.",
        &HISTORY_RETENTION,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    // Once the library is loaded, a misspelt pg_retention.* name (in SET,
    // ALTER ROLE ... SET) is an error instead of a silent placeholder that
    // no run reads; placeholders set before the load are dropped with a
    // WARNING. PostgreSQL 15 and later.
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    // SAFETY: a static C string; PostgreSQL copies the prefix.
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_retention".as_ptr())
    };
}
