//! Errors a DBA can act on, each with its SQLSTATE.

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

#[derive(Debug)]
pub enum RetentionError {
    /// A required argument is NULL (22004).
    NullArgument(&'static str),
    /// An argument has a value out of range (22023).
    InvalidParameter(String),
    /// The relation does not exist (42P01).
    UndefinedTable(String),
    /// The column does not exist (42703).
    UndefinedColumn(String),
    /// The schema does not exist (3F000).
    UndefinedSchema(String),
    /// The relation is not a table, or a column is not a time type (42809 / 42804).
    WrongObjectType(String),
    DatatypeMismatch(String),
    /// Not the owner of the table (42501).
    InsufficientPrivilege(String),
    /// A policy of that kind exists already (42710).
    DuplicatePolicy(String),
    /// No policy matches (42704).
    UndefinedPolicy(String),
    /// The schema cannot be handled: no key, an FK cycle, a self reference (0A000).
    Unsupported(String),
    /// The extension's own objects are missing or damaged (55000).
    NotReady(String),
    /// A row of a batch without row locks changed before the batch ended
    /// (40001): the batch is rolled back and taken again.
    ChangedDuringBatch(String),
}

impl RetentionError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            Self::NullArgument(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            Self::InvalidParameter(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::UndefinedTable(_) => ERRCODE_UNDEFINED_TABLE,
            Self::UndefinedColumn(_) => ERRCODE_UNDEFINED_COLUMN,
            Self::UndefinedSchema(_) => ERRCODE_INVALID_SCHEMA_NAME,
            Self::WrongObjectType(_) => ERRCODE_WRONG_OBJECT_TYPE,
            Self::DatatypeMismatch(_) => ERRCODE_DATATYPE_MISMATCH,
            Self::InsufficientPrivilege(_) => ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::DuplicatePolicy(_) => ERRCODE_DUPLICATE_OBJECT,
            Self::UndefinedPolicy(_) => ERRCODE_UNDEFINED_OBJECT,
            Self::Unsupported(_) => ERRCODE_FEATURE_NOT_SUPPORTED,
            Self::NotReady(_) => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::ChangedDuringBatch(_) => ERRCODE_T_R_SERIALIZATION_FAILURE,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::NullArgument(arg) => format!("{arg} must not be NULL"),
            Self::InvalidParameter(m)
            | Self::UndefinedTable(m)
            | Self::UndefinedColumn(m)
            | Self::UndefinedSchema(m)
            | Self::WrongObjectType(m)
            | Self::DatatypeMismatch(m)
            | Self::InsufficientPrivilege(m)
            | Self::DuplicatePolicy(m)
            | Self::UndefinedPolicy(m)
            | Self::Unsupported(m)
            | Self::NotReady(m)
            | Self::ChangedDuringBatch(m) => m.clone(),
        }
    }

    /// Raises the error: the statement fails and nothing it did is kept.
    pub fn raise(self) -> ! {
        ErrorReport::new(self.sqlstate(), self.message(), "pg_retention").report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

pub type Result<T> = std::result::Result<T, RetentionError>;

/// Unwraps a result, raising the error as a Postgres ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| e.raise())
    }
}

impl<T> OrRaise<T> for std::result::Result<T, pgrx::spi::SpiError> {
    fn or_raise(self) -> T {
        // SPI errors here are internal (a query of ours that could not run),
        // not something the caller passed in.
        self.unwrap_or_else(|e| {
            ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("pg_retention: SPI failed: {e}"),
                "pg_retention",
            )
            .report(PgLogLevel::ERROR);
            unreachable!("an ERROR report does not return")
        })
    }
}

/// The five-character SQLSTATE of an error code.
pub fn sqlstate_text(code: PgSqlErrorCode) -> String {
    let mut n = code as i32;
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        s.push(char::from(b'0' + (n & 0x3F) as u8));
        n >>= 6;
    }
    s
}
