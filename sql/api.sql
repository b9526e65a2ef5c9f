-- pg_retention: the public SQL API. Thin wrappers over the Rust functions,
-- carrying the fixed signatures; every reference is schema-qualified so the
-- caller's search_path cannot redirect them.

CREATE FUNCTION retention_add_policy(
    relation regclass,
    time_column name,
    retain interval,
    label text DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    enabled boolean DEFAULT true
) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_add_policy($1::pg_catalog.oid, $2::pg_catalog.text, $3, $4, $5, $6, 'expire') $$;

CREATE FUNCTION retention_add_orphan_policy(
    relation regclass,
    time_column name,
    grace interval,
    label text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_add_policy($1::pg_catalog.oid, $2::pg_catalog.text, $3, $4, NULL, true, 'orphan') $$;

CREATE FUNCTION retention_alter_policy(
    relation regclass,
    retain interval DEFAULT NULL,
    label text DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    enabled boolean DEFAULT NULL,
    kind text DEFAULT 'expire'
) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_alter_policy($1::pg_catalog.oid, $6, $2, $3, $4, $5) $$;

CREATE FUNCTION retention_pause(relation regclass) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_set_enabled($1::pg_catalog.oid, false) $$;

CREATE FUNCTION retention_resume(relation regclass) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_set_enabled($1::pg_catalog.oid, true) $$;

CREATE FUNCTION retention_remove_policy(relation regclass, kind text DEFAULT NULL) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_remove_policy($1::pg_catalog.oid, $2) $$;

CREATE VIEW retention_policies AS
SELECT p.id,
       p.relid AS relation,
       p.kind,
       p.time_column,
       p.retain,
       p.label,
       p.batch_size,
       p.enabled,
       pg_catalog.now() OPERATOR(pg_catalog.-) p.retain AS cutoff,
       p.created_at
FROM @extschema@.retention_config p;

CREATE FUNCTION retention_stats(label text DEFAULT NULL, exact boolean DEFAULT false)
RETURNS TABLE (
    policy_id bigint,
    relation regclass,
    kind text,
    label text,
    time_column name,
    retain interval,
    cutoff timestamptz,
    enabled boolean,
    total_rows bigint,
    total_rows_exact boolean,
    expired_rows bigint,
    oldest timestamptz,
    newest timestamptz,
    total_bytes bigint,
    total_size text,
    time_column_indexed boolean,
    unindexed_foreign_keys text[],
    last_run_at timestamptz,
    last_run_status text
)
LANGUAGE sql STABLE
AS $$
SELECT s.policy_id, s.relid::pg_catalog.regclass, s.kind, s.label, s.time_column::pg_catalog.name, s.retain,
       s.cutoff, s.enabled, s.total_rows, s.total_rows_exact, s.expired_rows, s.oldest, s.newest,
       s.total_bytes, pg_catalog.pg_size_pretty(s.total_bytes), s.time_column_indexed,
       s.unindexed_foreign_keys, s.last_run_at, s.last_run_status
FROM @extschema@._retention_stats($1, $2) s
$$;

CREATE FUNCTION retention_preview(label text DEFAULT NULL)
RETURNS TABLE (
    step integer,
    relation regclass,
    reason text,
    rows_to_delete bigint,
    oldest timestamptz,
    newest timestamptz
)
LANGUAGE sql STABLE
AS $$
SELECT p.step, p.relid::pg_catalog.regclass, p.reason, p.rows_to_delete, p.oldest, p.newest
FROM @extschema@._retention_preview($1) p
$$;

-- Runs now, in the caller's transaction, and returns the run's history row.
-- PL/pgSQL so that the history row written by the run is visible to the
-- statement that reads it back.
CREATE FUNCTION retention_execute(batch_size integer DEFAULT 1000, label text DEFAULT NULL)
RETURNS @extschema@.cleanup_runs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    run_id bigint := @extschema@._retention_execute(batch_size, label, 'retention_execute');
    result @extschema@.cleanup_runs;
BEGIN
    SELECT * INTO result FROM @extschema@.cleanup_runs r WHERE r.id OPERATOR(pg_catalog.=) run_id;
    RETURN result;
END
$$;

COMMENT ON TABLE retention_config IS 'pg_retention policies (configuration, kept by pg_dump); read it through the retention_policies view';
COMMENT ON TABLE cleanup_runs IS 'pg_retention run history: one row per run, with per-table counts, date ranges and any error';
COMMENT ON VIEW retention_policies IS 'pg_retention policies, readable: relation, kind, time column, retention, label, batch size, enabled, current cutoff';
COMMENT ON FUNCTION retention_add_policy(regclass, name, interval, text, integer, boolean) IS 'Rows of relation whose time_column is older than now() - retain expire; their dependents go first';
COMMENT ON FUNCTION retention_add_orphan_policy(regclass, name, interval, text) IS 'Rows of relation that nothing references and whose time_column is older than now() - grace are deleted after the expirations';
COMMENT ON FUNCTION retention_alter_policy(regclass, interval, text, integer, boolean, text) IS 'Changes the given settings of a policy (NULL keeps a setting)';
COMMENT ON FUNCTION retention_pause(regclass) IS 'Disables the policies of a table without removing them';
COMMENT ON FUNCTION retention_resume(regclass) IS 'Enables the policies of a table again';
COMMENT ON FUNCTION retention_remove_policy(regclass, text) IS 'Removes the policies of a table (of one kind, or all)';
COMMENT ON FUNCTION retention_stats(text, boolean) IS 'Per policy: rows (estimate, or exact), expired rows, time range, size, cutoff, missing indexes, last run';
COMMENT ON FUNCTION retention_preview(text) IS 'What the next run deletes, table by table in the order it deletes them';
COMMENT ON FUNCTION retention_execute(integer, text) IS 'Runs the enabled policies now in batches, children first, in the caller''s transaction; returns the history row';
