-- pg_retention: configuration and history tables (created before the Rust functions).

-- The extension's schema must be owned by a superuser (for
-- pg_database_owner, which owns public on PostgreSQL 15 and later: the
-- database's owner must be one). Any other role could rename it and put
-- tables and functions of its own under the extension's names, which the
-- extension would then use as its owner (docs/security.md, "Installing").
-- security::check_extension_schema checks the same at every entry point
-- and every step of a run.
DO $check_schema$
DECLARE
    schema_owner pg_catalog.oid;
    acting pg_catalog.oid;
BEGIN
    SELECT n.nspowner,
           CASE WHEN n.nspowner OPERATOR(pg_catalog.=) 'pg_database_owner'::pg_catalog.regrole
                THEN d.datdba ELSE n.nspowner END
      INTO schema_owner, acting
      FROM pg_catalog.pg_namespace n, pg_catalog.pg_database d
     WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
       AND d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database();
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) acting) THEN
        RAISE EXCEPTION 'pg_retention''s schema % is owned by %, who is not a superuser',
            '@extschema@',
            CASE WHEN schema_owner OPERATOR(pg_catalog.=) acting THEN acting::pg_catalog.regrole::pg_catalog.text
                 ELSE 'pg_database_owner, that is by the database''s owner '
                      OPERATOR(pg_catalog.||) acting::pg_catalog.regrole::pg_catalog.text END
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Create it in a schema a superuser created: CREATE SCHEMA retention; CREATE EXTENSION pg_retention SCHEMA retention;';
    END IF;
END
$check_schema$;

-- Policies. One row per (relation, kind). Stored by oid (regclass), so a
-- policy follows its table through renames; pg_dump writes the name and a
-- restore resolves it again.
CREATE TABLE retention_config (
    id          bigserial PRIMARY KEY,
    relid       regclass NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('expire', 'orphan')),
    time_column name NOT NULL,
    -- 'expire': rows older than now() - retain expire.
    -- 'orphan': unreferenced rows older than now() - retain (the grace period) go.
    retain      interval NOT NULL CHECK (retain > interval '0'),
    label       text,
    batch_size  integer CHECK (batch_size > 0),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- 'expire' on a table partitioned by range on time_column: what becomes
    -- of a partition wholly older than the cutoff. 'drop': detached and
    -- dropped; 'detach': detached and kept as a table of its own, moved to
    -- partition_schema when that is set (pg_partman's retention_keep_table
    -- and retention_schema).
    partition_action text NOT NULL DEFAULT 'drop' CHECK (partition_action IN ('drop', 'detach')),
    partition_schema name CHECK (partition_schema IS NULL OR partition_action = 'detach'),
    UNIQUE (relid, kind)
);

-- Run history: one row per run, written even when the run fails.
CREATE TABLE cleanup_runs (
    id            bigserial PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at   timestamptz,
    duration      interval GENERATED ALWAYS AS (finished_at - started_at) STORED,
    status        text NOT NULL
                  CHECK (status IN ('running', 'succeeded', 'stopped', 'failed', 'cancelled', 'skipped', 'abandoned')),
    origin        text NOT NULL,
    started_by    name NOT NULL DEFAULT CURRENT_USER,
    backend_pid   integer NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
    label         text,
    batch_size    integer,
    total_deleted bigint NOT NULL DEFAULT 0,
    -- [{"relation": ..., "deleted": n, "oldest": ts, "newest": ts}, ...] in deletion order
    tables        jsonb NOT NULL DEFAULT '[]',
    -- [{"policy_id": n, "relation": ..., "kind": ..., "cutoff": ts}, ...] fixed at the start
    policies      jsonb NOT NULL DEFAULT '[]',
    -- why a run stopped before finishing (a cap), or what it left for the next run
    stop_reason   text,
    -- batches rolled back because a lock was not granted within pg_retention.lock_timeout
    lock_timeouts integer NOT NULL DEFAULT 0,
    error         text,
    sqlstate      text
);
CREATE INDEX cleanup_runs_started_at_idx ON cleanup_runs (started_at);
CREATE INDEX cleanup_runs_running_idx ON cleanup_runs (status) WHERE status = 'running';

-- Policies are configuration: pg_dump keeps them. History is operational data
-- and is not dumped (it describes deletions in the source database).
SELECT pg_catalog.pg_extension_config_dump('retention_config', '');
SELECT pg_catalog.pg_extension_config_dump('retention_config_id_seq', '');
