//! Whose privileges each statement runs with, on which search_path, and the
//! run lock nobody else can take.
//!
//! The model is PostgreSQL's own maintenance commands (VACUUM, ANALYZE,
//! CLUSTER, REINDEX since CVE-2022-1552): every statement of a policy runs
//! as the owner of the policy's table, in a security-restricted operation,
//! with `search_path = pg_catalog, pg_temp`. A superuser's run (pg_cron's
//! usual role) therefore runs another role's triggers, RLS policies and
//! cascades with that role's privileges only, and deletes only what that
//! role could delete by hand. The run's own bookkeeping (policies, history)
//! is written as the extension's owner: PUBLIC may read those tables but not
//! write them.

use std::ffi::CStr;

use pgrx::pg_sys;

/// The only search_path any statement of the extension runs with:
/// `pg_temp` is never searched for functions or operators, so every
/// unqualified operator and function resolves in `pg_catalog`, and every
/// type outside `pg_catalog` is spelled with its schema by `format_type`.
const PINNED_SEARCH_PATH: &CStr = c"pg_catalog, pg_temp";

/// Runs `f` with the search_path pinned to `pg_catalog, pg_temp`; restored
/// on return, and by the (sub)transaction abort on error.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    in_guc_level(GucExit::Keep, f)
}

/// What happens, at the end of [`in_guc_level`], to settings changed inside
/// it with a plain SET.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GucExit {
    /// They stay, as after a function with a SET clause (entry points: none
    /// of the extension's own code changes a setting for the session).
    Keep,
    /// Every setting goes back to what it was, as after VACUUM's user code
    /// (a table owner's trigger must not change TimeZone, statement_timeout
    /// or anything else for the rest of a superuser's run or session).
    Restore,
}

fn in_guc_level<R>(exit: GucExit, f: impl FnOnce() -> R) -> R {
    // SAFETY: the same nesting fmgr uses for a function's SET clause.
    let level = unsafe { pg_sys::NewGUCNestLevel() };
    save_setting(c"search_path", PINNED_SEARCH_PATH);
    if merge_right_anti_join_is_broken() {
        save_setting(c"enable_mergejoin", c"off");
    }
    let out = f();
    // SAFETY: closes the nesting level opened above.
    unsafe { pg_sys::AtEOXact_GUC(exit == GucExit::Keep, level) };
    out
}

/// Sets a setting until the GUC nesting level open now closes, as a
/// function's SET clause does. Call inside [`in_guc_level`].
fn save_setting(name: &CStr, value: &CStr) {
    // SAFETY: a plain user-settable option, saved in the current nesting level.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
}

/// Runs `f` with Citus's multi-shard commands on one connection per node,
/// shard after shard, put back on return. A transaction that has modified a
/// distributed table over parallel connections cannot then modify a
/// reference table (nor the reverse): a batch or a run touching both needs
/// this from its first statement.
pub fn with_citus_sequential<R>(f: impl FnOnce() -> R) -> R {
    in_guc_level(GucExit::Keep, || {
        save_setting(c"citus.multi_shard_modify_mode", c"sequential");
        f()
    })
}

/// Runs `f` waiting at most `ms` milliseconds for any lock (`lock_timeout`),
/// put back on return.
pub fn with_lock_timeout<R>(ms: i32, f: impl FnOnce() -> R) -> R {
    let value = std::ffi::CString::new(format!("{}ms", ms.max(1))).expect("digits only");
    in_guc_level(GucExit::Keep, || {
        save_setting(c"lock_timeout", &value);
        f()
    })
}

/// PostgreSQL 16.0 to 16.3 can return wrong rows from a Merge Right Anti
/// Join (bug #18522, fixed in 16.4): an orphan test's `NOT EXISTS` missed a
/// row that no row references (the differential test found it on 16.2),
/// and the same bug can miss a referencing row, which would have a run
/// delete a referenced one. On those versions every statement of a policy,
/// and the extension's own, plans without merge joins. Read at run time:
/// the library built against 16.2's headers may run on 16.4.
fn merge_right_anti_join_is_broken() -> bool {
    thread_local! {
        static BROKEN: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
    }
    BROKEN.with(|broken| {
        *broken.get_or_init(|| {
            // SAFETY: a built-in setting, always present; the string is
            // copied before any other GUC call.
            let version = unsafe {
                let value = pg_sys::GetConfigOption(c"server_version_num".as_ptr(), false, false);
                std::ffi::CStr::from_ptr(value)
                    .to_string_lossy()
                    .into_owned()
            };
            version
                .parse::<u32>()
                .is_ok_and(|v| (160_000..160_004).contains(&v))
        })
    })
}

/// Runs `f` as `role` (user id switched, security context kept plus
/// `flags`). On return the previous user and context are restored; on an
/// error the enclosing (sub)transaction's abort restores them, so callers
/// that catch errors switch inside their subtransaction.
fn as_role<R>(role: pg_sys::Oid, flags: u32, f: impl FnOnce() -> R) -> R {
    let mut saved_user = pg_sys::Oid::INVALID;
    let mut saved_context: std::ffi::c_int = 0;
    // SAFETY: reads and sets this backend's current user, as vacuum.c does.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(role, saved_context | flags as std::ffi::c_int);
    }
    let out = f();
    // SAFETY: restores what was read above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    out
}

/// Runs the statements of a policy as the owner of its table, in a
/// security-restricted operation, with the pinned search_path, every setting
/// changed inside put back on return: what VACUUM and CLUSTER do before they
/// run user code (index expressions, triggers). Reports (stats, preview) run
/// their statements this way too: planning alone can run a table owner's
/// code (an immutable function in a partial index's predicate). Call inside
/// a subtransaction when errors are caught.
pub fn as_table_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    as_role(
        owner,
        pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION,
        || in_guc_level(GucExit::Restore, f),
    )
}

thread_local! {
    /// The extension's owner, read with its schema at every entry point.
    static EXTENSION_OWNER: std::cell::Cell<pg_sys::Oid> =
        const { std::cell::Cell::new(pg_sys::Oid::INVALID) };
    /// The extension's schema, read at every entry point.
    static EXTENSION_SCHEMA: std::cell::Cell<pg_sys::Oid> =
        const { std::cell::Cell::new(pg_sys::Oid::INVALID) };
}

/// Records the extension's owner and schema (read by
/// `catalog::extension_schema`).
pub fn set_extension(owner: pg_sys::Oid, schema: pg_sys::Oid) {
    EXTENSION_OWNER.with(|o| o.set(owner));
    EXTENSION_SCHEMA.with(|o| o.set(schema));
}

/// Refuses the extension's schema unless its owner is a superuser or the
/// extension's owner (for `pg_database_owner`, which owns `public` on
/// PostgreSQL 15 and later: the database's owner). Any other role could
/// rename the schema and put tables and functions of its own under the
/// extension's names, which the extension would then use as its owner, a
/// superuser; so could any code that runs as that role, a trigger of its
/// tables during a run included. Read from the catalog caches: cheap
/// enough for every step of a run. sql/bootstrap.sql checks the same at
/// `CREATE EXTENSION`.
pub fn check_extension_schema() -> Result<(), crate::errors::RetentionError> {
    let extension_owner = EXTENSION_OWNER.with(std::cell::Cell::get);
    let schema = EXTENSION_SCHEMA.with(std::cell::Cell::get);
    let Some((name, owner)) = namespace_name_and_owner(schema) else {
        return Err(crate::errors::RetentionError::NotReady(
            "pg_retention's schema was dropped".into(),
        ));
    };
    // SAFETY: reads this backend's database oid.
    let database = unsafe { pg_sys::MyDatabaseId };
    let database_owner =
        (owner.to_u32() == pg_sys::ROLE_PG_DATABASE_OWNER).then(|| database_owner(database));
    let acting = database_owner.unwrap_or(owner);
    // SAFETY: a catalog lookup by oid.
    if acting == extension_owner || unsafe { pg_sys::superuser_arg(acting) } {
        return Ok(());
    }
    let owner_text = match database_owner {
        Some(db_owner) => format!(
            "pg_database_owner, that is by the database's owner {}",
            crate::catalog::owner_name(db_owner)
        ),
        None => crate::catalog::owner_name(owner),
    };
    Err(crate::errors::RetentionError::InsufficientPrivilege(format!(
        "pg_retention's schema {name} is owned by {owner_text}, who is neither a superuser nor the \
         extension's owner: that role could rename the schema and have pg_retention use tables and \
         functions of its own as the extension's owner. Give the schema to a superuser (ALTER SCHEMA \
         {name} OWNER TO ...) or create the extension in a schema a superuser created \
         (docs/security.md, \"Installing\")"
    )))
}

/// A schema's name (as a DBA would type it) and owner, from the catalog cache.
fn namespace_name_and_owner(schema: pg_sys::Oid) -> Option<(String, pg_sys::Oid)> {
    // SAFETY: a syscache lookup by oid; the tuple is read, then released.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as _,
            pg_sys::Datum::from(schema),
        );
        if tuple.is_null() {
            return None;
        }
        let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_namespace>(tuple);
        let owner = (*form).nspowner;
        let name = std::ffi::CStr::from_ptr((*form).nspname.data.as_ptr())
            .to_string_lossy()
            .into_owned();
        pg_sys::ReleaseSysCache(tuple);
        Some((crate::catalog::quote_ident_if_needed(&name), owner))
    }
}

/// The owner of database `database`, from the catalog cache.
fn database_owner(database: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a syscache lookup of this backend's own database, which exists.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::DATABASEOID as _,
            pg_sys::Datum::from(database),
        );
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tuple)).datdba;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}

/// Runs the extension's bookkeeping (its config and history tables) as the
/// extension's owner: PUBLIC has no write privilege on them. Only fixed
/// statements of the extension run this way, never user code: the tables
/// have no triggers and the statements reference `pg_catalog` only.
pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = EXTENSION_OWNER.with(std::cell::Cell::get);
    assert!(
        owner != pg_sys::Oid::INVALID,
        "the extension's owner is read with its schema before any bookkeeping"
    );
    as_role(
        owner,
        pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION,
        || with_pinned_search_path(f),
    )
}

/// Makes every deferrable constraint of this transaction IMMEDIATE. A
/// security-restricted operation may not queue deferred triggers
/// (PostgreSQL refuses: they would fire at COMMIT, outside it, as the
/// caller), and `DEFERRABLE INITIALLY DEFERRED` foreign keys (every foreign
/// key Django creates) queue theirs on the referenced table's deletes: with
/// them immediate, their checks run at the end of each statement, inside
/// the owner's context. A run deletes children first, so the checks pass.
/// Done before every batch (a table owner's trigger may set them DEFERRED
/// again); in `retention_execute` it holds for the rest of the caller's
/// transaction (and checks what the caller left deferred there).
pub fn deferred_constraints_immediate(
    client: &mut pgrx::spi::SpiClient<'_>,
) -> Result<(), pgrx::spi::SpiError> {
    client.update("SET CONSTRAINTS ALL IMMEDIATE", None, &[])?;
    Ok(())
}

/// The role running the current statement (after any SET ROLE).
pub fn current_role() -> pg_sys::Oid {
    // SAFETY: reads this backend's current user id.
    unsafe { pg_sys::GetUserId() }
}

/// Run locks: locks of the advisory kind whose tags no SQL function can
/// build (`pg_advisory_lock` uses a fourth field of 1 or 2; these use
/// [`LockKind`]), so no role can take them by hand. In `pg_locks` they show
/// as advisory locks with `objsubid` 4 (a policy, `classid`/`objid` its id)
/// or 5 (a running `retention_run`, `classid`/`objid` its history id).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LockKind {
    /// Held by the run working on a policy: two runs never run one policy
    /// at once, and a role can hold only the policies it can run.
    Policy = 4,
    /// Held by a `retention_run` for as long as it runs: a `running` history
    /// row whose lock nobody holds belongs to a run that ended unrecorded.
    RunAlive = 5,
}

fn lock_tag(kind: LockKind, id: i64) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: reads this backend's database oid.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: (id >> 32) as u32,
        locktag_field3: id as u32,
        locktag_field4: kind as u16,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// How long run locks are held: `retention_execute` until its transaction
/// ends, `retention_run` across its commits until [`release_run_locks`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockScope {
    Transaction,
    Session,
}

thread_local! {
    /// Session-level run locks this backend holds, to release them all when
    /// its run ends, or when the next run starts after one that an error
    /// ended outside its batches.
    static SESSION_LOCKS: std::cell::RefCell<Vec<(LockKind, i64)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn try_lock(kind: LockKind, id: i64, scope: LockScope) -> bool {
    let tag = lock_tag(kind, id);
    let session = scope == LockScope::Session;
    // SAFETY: LockAcquire with a valid tag and lock mode; dontWait = true.
    let result = unsafe {
        pg_sys::LockAcquire(
            &tag,
            pg_sys::ExclusiveLock as pg_sys::LOCKMODE,
            session,
            true,
        )
    };
    let got = result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL;
    if got && session {
        SESSION_LOCKS.with(|held| held.borrow_mut().push((kind, id)));
    }
    got
}

/// Takes the lock of each policy that no other run holds, without waiting;
/// returns which policies it got.
pub fn lock_policies(ids: &[i64], scope: LockScope) -> Vec<bool> {
    ids.iter()
        .map(|id| try_lock(LockKind::Policy, *id, scope))
        .collect()
}

/// Marks the `retention_run` with history id `run_id` alive (session level).
pub fn hold_run_alive(run_id: i64) {
    try_lock(LockKind::RunAlive, run_id, LockScope::Session);
}

/// Whether the `retention_run` with history id `run_id` is still running in
/// some backend.
pub fn run_is_alive(run_id: i64) -> bool {
    let tag = lock_tag(LockKind::RunAlive, run_id);
    // SAFETY: a transaction-level try-lock, released at once if granted.
    unsafe {
        let result =
            pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, false, true);
        match result {
            pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => true,
            // Held by this very backend: alive.
            pg_sys::LockAcquireResult::LOCKACQUIRE_ALREADY_HELD => {
                pg_sys::LockRelease(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, false);
                true
            }
            _ => {
                pg_sys::LockRelease(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, false);
                false
            }
        }
    }
}

/// Registers [`release_on_abort`] (from `_PG_init`).
pub fn init() {
    // SAFETY: registers a callback for the life of the backend.
    unsafe { pg_sys::RegisterXactCallback(Some(release_on_abort), std::ptr::null_mut()) }
}

/// A `retention_run` catches every error of its batches in subtransactions;
/// a top-level abort while it holds session-level run locks means an error
/// escaped it (at a COMMIT, a cancel between batches): the run is over, and
/// its locks must not keep other sessions' runs from its policies. Its
/// history row stays `running` and the next run marks it abandoned.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn release_on_abort(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT {
        release_run_locks();
    }
}

/// Releases every session-level run lock this backend holds.
pub fn release_run_locks() {
    let held = SESSION_LOCKS.with(|held| std::mem::take(&mut *held.borrow_mut()));
    for (kind, id) in held {
        let tag = lock_tag(kind, id);
        // SAFETY: a lock this backend took at session level and still holds.
        unsafe {
            pg_sys::LockRelease(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, true);
        }
    }
}
