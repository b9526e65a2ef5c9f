-- pg_retention: configuration and history tables (created before the Rust functions).

-- The extension's schema: no login role but the superusers and the role
-- installing the extension (its owner) may act as the schema's owner. One
-- who could would rename the schema during a run and have the run use
-- tables and functions of its own, under the extension's names, as the
-- extension's owner (docs/security.md, "Installing"). The same condition
-- as sqlgen::acts_as_schema_owner, which every entry point checks again.
DO $check_schema$
DECLARE
    schema_owner text;
    able text;
BEGIN
    SELECT n.nspowner::pg_catalog.regrole::pg_catalog.text,
           (SELECT ro.rolname::pg_catalog.text FROM pg_catalog.pg_roles ro
             WHERE ro.rolcanlogin AND NOT ro.rolsuper
               AND ro.oid OPERATOR(pg_catalog.<>) pg_catalog.current_user()::pg_catalog.regrole
               AND (pg_catalog.pg_has_role(ro.oid, n.nspowner, 'MEMBER')
                    OR (ro.rolcreaterole
                        AND n.nspowner OPERATOR(pg_catalog.<>) 'pg_database_owner'::pg_catalog.regrole
                        AND NOT (SELECT so.rolsuper FROM pg_catalog.pg_roles so
                                  WHERE so.oid OPERATOR(pg_catalog.=) n.nspowner)))
             ORDER BY ro.rolname LIMIT 1)
      INTO schema_owner, able
      FROM pg_catalog.pg_namespace n
     WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace;
    IF able IS NOT NULL THEN
        RAISE EXCEPTION 'pg_retention''s schema % is owned by %, as whom % (neither a superuser nor the extension''s owner) can act',
            '@extschema@', schema_owner, pg_catalog.quote_ident(able)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Install it in a schema of its own, created by a superuser: CREATE SCHEMA retention; CREATE EXTENSION pg_retention SCHEMA retention;';
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
