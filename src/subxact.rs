//! Runs one batch in a subtransaction, the way PL/pgSQL runs an EXCEPTION
//! block: on error only that batch is rolled back, and the caller records it.

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys::panic::CaughtError;
use pgrx::pg_sys::{self, errcodes::PgSqlErrorCode};
use pgrx::PgTryBuilder;

use crate::errors::{sqlstate_text, RetentionError};

/// Why a batch failed.
#[derive(Clone, Debug)]
pub struct BatchFailure {
    pub message: String,
    pub sqlstate: String,
    pub detail: Option<String>,
    /// The backend was interrupted (pg_cancel_backend, statement_timeout):
    /// the run ends. A 57014 raised by anything else (a table owner's
    /// trigger, say) fails its policy only, like any other error.
    pub interrupted: bool,
    /// A row of a batch without row locks changed before the batch ended
    /// ([`RetentionError::ChangedDuringBatch`]): the batch may be taken again.
    pub changed_during_batch: bool,
}

impl BatchFailure {
    pub fn is_cancel(&self) -> bool {
        self.interrupted
    }
}

impl From<RetentionError> for BatchFailure {
    fn from(e: RetentionError) -> Self {
        BatchFailure {
            changed_during_batch: matches!(e, RetentionError::ChangedDuringBatch(_)),
            message: e.message(),
            sqlstate: sqlstate_text(e.sqlstate()),
            detail: None,
            interrupted: false,
        }
    }
}

fn from_caught(e: CaughtError) -> BatchFailure {
    let report = match &e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    // A real cancel is raised by ProcessInterrupts; SQL can raise the same
    // SQLSTATE and message, but not from there.
    let interrupted = report.sql_error_code() == PgSqlErrorCode::ERRCODE_QUERY_CANCELED
        && report.function_name() == Some("ProcessInterrupts");
    BatchFailure {
        message: report.message().to_string(),
        sqlstate: sqlstate_text(report.sql_error_code()),
        detail: report.detail().map(str::to_string),
        interrupted,
        changed_during_batch: false,
    }
}

/// Runs `f` in a subtransaction: committed into the surrounding transaction
/// when it returns `Ok`, rolled back when it returns `Err` or raises.
pub fn in_subtransaction<T>(
    f: impl FnOnce() -> Result<T, RetentionError>,
) -> Result<T, BatchFailure> {
    // SAFETY: the same sequence PL/pgSQL uses around an EXCEPTION block: keep
    // the caller's memory context and resource owner and restore them after
    // the subtransaction ends either way.
    unsafe {
        let memory_context = pg_sys::CurrentMemoryContext;
        let resource_owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(memory_context);

        let outcome = PgTryBuilder::new(AssertUnwindSafe(|| f().map_err(BatchFailure::from)))
            .catch_others(|e| Err(from_caught(e)))
            .execute();

        if outcome.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(memory_context);
        pg_sys::CurrentResourceOwner = resource_owner;
        outcome
    }
}
