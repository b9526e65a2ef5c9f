//! pg_retention: keeps tables to a retention window from inside Postgres.
//!
//! Public SQL functions are thin wrappers in `sql/api.sql` (they carry the
//! fixed signatures, with `regclass` and `name` arguments); the work is done
//! by the `_retention_*` functions of these modules.

mod catalog;
mod declarative;
mod deleter;
mod errors;
mod execute;
mod gucs;
mod history;
mod partitions;
pub mod planner;
mod policies;
mod scheduling;
mod security;
pub mod sqlgen;
mod stats;
mod strategy;
mod subxact;
mod sweep_budget;
mod values;

::pgrx::pg_module_magic!();

#[allow(non_snake_case)]
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx attaches a Rust backtrace to the DETAIL of every Postgres error
    // that crosses Rust code when the server runs with RUST_BACKTRACE set: a
    // DBA must never see Rust internals. RUST_LIB_BACKTRACE takes precedence
    // for captured backtraces (panic messages in the server log keep
    // RUST_BACKTRACE). A backend is single-threaded here.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    gucs::init();
    security::init();
}

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!("../sql/api.sql", name = "api", finalize);

// The in-database test suite lives at the top level (`pgrx-tests/`), beside
// `tests/`; it is compiled into the extension, as `cargo pgrx test` needs.
#[cfg(any(test, feature = "pg_test"))]
#[path = "../pgrx-tests/pg_tests.rs"]
mod pg_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
