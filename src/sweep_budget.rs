//! A heap sweep's batch in one statement. The DELETE over a range of pages
//! (`ctid` between two tids, time before the cutoff) ends with a call of
//! `_retention_sweep_take(ctid, time)`, which admits rows until the batch's
//! `batch_size` is reached and refuses the rest: the range is read once, by
//! the statement that deletes it, and a batch still deletes at most
//! `batch_size` rows. The call is the last condition of the statement (its
//! cost puts it after every other, row-level security's included), so only
//! rows about to be deleted are counted.
//!
//! Where the next batch starts does not depend on the order PostgreSQL reads
//! the range in: it starts just before the first refused row (the smallest
//! `ctid` refused), and every row before that one was either admitted or
//! failed another condition. A row updated meanwhile is checked again at its
//! new version (EvalPlanQual) and may be counted twice: the batch is then
//! smaller, never larger.
//!
//! The budget lives in this backend for the one statement
//! ([`with_budget`]); outside it, the function admits nothing, and inside
//! it, calls as another role than the table's owner (another owner's
//! trigger fired by a cascade) or for another time type change nothing. A
//! trigger of the table's owner that calls it during the statement can only
//! spend the budget or move where the next batch starts within the range
//! (the rows deleted are still those the statement's conditions name).
//!
//! The functions live in `pg_catalog`, which only superusers can create in
//! or rename: the statement's call cannot be made to resolve to another
//! function (a schema's owner could rename the extension's schema during a
//! run and put one of its own under the name; a role that may create in it
//! could add an overload that makes the call ambiguous).

use std::cell::Cell;

use pgrx::datum::{Date, Timestamp, TimestampWithTimeZone};
use pgrx::prelude::*;

use crate::strategy::Tid;

/// What one sweep statement admitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Rows admitted (a row checked twice counts twice).
    pub rows: i64,
    /// The smallest `ctid` inside the range that was refused: the next batch
    /// starts just before it. `None`: every row of the range was admitted.
    pub first_refused: Option<Tid>,
    /// The oldest and newest time admitted, as datums of `time_type`.
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
    /// The type of the times admitted: the table's time column's.
    pub time_type: u32,
}

#[derive(Clone, Copy, Debug)]
struct Budget {
    limit: i64,
    /// Rows strictly between these two tids form the range.
    range: (Tid, Tid),
    /// The role the statement runs as (the table's owner) and the type of
    /// the table's time column: calls as another role (a trigger of another
    /// table's owner, fired by a cascade) or for another type are not the
    /// statement's own, and change nothing.
    user: u32,
    taken: Taken,
}

impl Budget {
    fn take(&mut self, row: Tid, time: i64, time_type: u32, user: u32) -> bool {
        if user != self.user || time_type != self.taken.time_type {
            return false;
        }
        if self.taken.rows < self.limit {
            let t = &mut self.taken;
            t.rows += 1;
            t.oldest = Some(t.oldest.map_or(time, |o| o.min(time)));
            t.newest = Some(t.newest.map_or(time, |n| n.max(time)));
            return true;
        }
        // A row's new version, read again after a concurrent update, may lie
        // outside the range: the next batch never starts outside it.
        if self.range.0 < row && row < self.range.1 {
            let first = &mut self.taken.first_refused;
            *first = Some(first.map_or(row, |f| f.min(row)));
        }
        false
    }
}

thread_local! {
    static CURRENT: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// Runs `statement` with a budget of `limit` rows of a time column of type
/// `time_type` over the rows strictly between `range`'s tids, for calls
/// made as the current role, and returns what it admitted. The budget
/// before is restored afterwards, also when `statement` fails.
pub fn with_budget<R>(
    limit: i64,
    range: (Tid, Tid),
    time_type: u32,
    statement: impl FnOnce() -> R,
) -> (R, Taken) {
    struct Restore(Option<Budget>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let budget = Budget {
        limit,
        range,
        // SAFETY: reads the backend's current user id.
        user: unsafe { pg_sys::GetUserId() }.to_u32(),
        taken: Taken {
            time_type,
            ..Taken::default()
        },
    };
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(budget))));
    let result = statement();
    let taken = CURRENT
        .with(|c| c.get())
        .map(|b| b.taken)
        .unwrap_or_default();
    (result, taken)
}

fn take(row: Tid, time: i64, time_type: pg_sys::Oid) -> bool {
    // SAFETY: reads the backend's current user id.
    let user = unsafe { pg_sys::GetUserId() }.to_u32();
    CURRENT.with(|c| match c.get() {
        Some(mut budget) => {
            let admitted = budget.take(row, time, time_type.to_u32(), user);
            c.set(Some(budget));
            admitted
        }
        None => false,
    })
}

impl Taken {
    /// The oldest and newest time admitted as timestamptz, converted as
    /// SQL's cast to timestamptz does (in the session's time zone).
    pub fn range(&self) -> Option<(TimestampWithTimeZone, TimestampWithTimeZone)> {
        let ty = pg_sys::Oid::from(self.time_type);
        Some((
            as_timestamptz(self.oldest?, ty)?,
            as_timestamptz(self.newest?, ty)?,
        ))
    }
}

fn as_timestamptz(raw: i64, time_type: pg_sys::Oid) -> Option<TimestampWithTimeZone> {
    // SAFETY: `raw` is a datum of `time_type` that `take` widened to i64.
    unsafe {
        let datum = pg_sys::Datum::from(raw);
        if time_type == pg_sys::DATEOID {
            let date = Date::from_datum(pg_sys::Datum::from(raw as i32), false);
            date.map(TimestampWithTimeZone::from)
        } else if time_type == pg_sys::TIMESTAMPOID {
            Timestamp::from_datum(datum, false).map(TimestampWithTimeZone::from)
        } else {
            TimestampWithTimeZone::from_datum(datum, false)
        }
    }
}

// One function per time type a policy accepts; the statement's call casts
// its arguments to exactly these types. Their SQL (`pg_catalog`, STRICT,
// VOLATILE, COST 1000) is in sql/api.sql: pgrx writes functions into the
// extension's schema only. They are called for every row of a swept range,
// so they are fmgr V1 functions written by hand: through `#[pg_extern]`'s
// wrapper (a memory context and boxed arguments per call) a call cost 68 ns
// (39 ns by hand): 4.5 ms of a 150,000-row sweep.

/// The arguments of a call: a `tid` is passed by reference, a
/// timestamp(tz) as its int64 and a date as its int32. `None` for a NULL
/// (the functions are STRICT; this holds if a superuser makes one not).
///
/// # Safety
/// `fcinfo` is a call of one of the functions below, with two arguments.
unsafe fn row_and_time(fcinfo: pg_sys::FunctionCallInfo) -> Option<(Tid, pg_sys::Datum)> {
    // SAFETY: per this function's contract; a non-NULL tid points to one.
    unsafe {
        let row =
            pgrx::fcinfo::pg_getarg_datum(fcinfo, 0)?.cast_mut_ptr::<pg_sys::ItemPointerData>();
        let time = pgrx::fcinfo::pg_getarg_datum(fcinfo, 1)?;
        Some((pgrx::itemptr::item_pointer_get_both(*row), time))
    }
}

macro_rules! sweep_take_function {
    ($info:ident, $function:ident, $time_type:expr, $time:expr) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $info() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        /// # Safety
        /// Called by PostgreSQL's fmgr as declared in sql/api.sql.
        #[unsafe(no_mangle)]
        #[pg_guard]
        pub unsafe extern "C-unwind" fn $function(
            fcinfo: pg_sys::FunctionCallInfo,
        ) -> pg_sys::Datum {
            // SAFETY: fmgr calls this with the two arguments the SQL declares.
            let to_i64: fn(pg_sys::Datum) -> i64 = $time;
            let admitted = unsafe { row_and_time(fcinfo) }
                .is_some_and(|(row, time)| take(row, to_i64(time), $time_type));
            pg_sys::Datum::from(admitted)
        }
    };
}

sweep_take_function!(
    pg_finfo_sweep_take_timestamptz_wrapper,
    sweep_take_timestamptz_wrapper,
    pg_sys::TIMESTAMPTZOID,
    |d| d.value() as i64
);
sweep_take_function!(
    pg_finfo_sweep_take_timestamp_wrapper,
    sweep_take_timestamp_wrapper,
    pg_sys::TIMESTAMPOID,
    |d| d.value() as i64
);
sweep_take_function!(
    pg_finfo_sweep_take_date_wrapper,
    sweep_take_date_wrapper,
    pg_sys::DATEOID,
    |d| i64::from(d.value() as i32)
);

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: i64) -> Budget {
        Budget {
            limit,
            range: ((10, 0), (20, 0)),
            user: 10,
            taken: Taken {
                time_type: 1184,
                ..Taken::default()
            },
        }
    }

    #[test]
    fn a_budget_admits_its_limit_and_remembers_the_first_refused_row() {
        let mut b = budget(2);
        assert!(b.take((10, 3), 7, 1184, 10));
        assert!(b.take((10, 1), 5, 1184, 10));
        assert!(!b.take((12, 4), 1, 1184, 10));
        assert!(!b.take((11, 2), 9, 1184, 10));
        assert_eq!(
            b.taken,
            Taken {
                rows: 2,
                first_refused: Some((11, 2)),
                oldest: Some(5),
                newest: Some(7),
                time_type: 1184,
            }
        );
    }

    #[test]
    fn calls_as_another_role_or_for_another_type_change_nothing() {
        let mut b = budget(1);
        assert!(!b.take((11, 1), 7, 1184, 11));
        assert!(!b.take((11, 1), 7, 1082, 10));
        assert!(b.take((11, 1), 7, 1184, 10));
        assert!(!b.take((12, 1), 7, 1184, 11));
        assert_eq!(b.taken.first_refused, None);
        assert_eq!(b.taken.rows, 1);
    }

    #[test]
    fn a_refused_row_outside_the_range_does_not_move_the_next_batch() {
        let mut b = budget(0);
        assert!(!b.take((25, 1), 0, 1184, 10));
        assert!(!b.take((10, 0), 0, 1184, 10));
        assert!(!b.take((20, 0), 0, 1184, 10));
        assert_eq!(b.taken.first_refused, None);
        assert!(!b.take((19, 9), 0, 1184, 10));
        assert_eq!(b.taken.first_refused, Some((19, 9)));
    }
}
