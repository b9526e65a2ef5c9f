-- pg_retention 0.2.0 -> 0.3.0: the security model of docs/security.md.
-- Written by hand; mirrors the privilege section of sql/api.sql. Every
-- statement of a policy now runs as the owner of the policy's table (in the
-- library); policies and history are written by the extension's functions
-- as the extension's owner, so PUBLIC keeps only SELECT on them.
\echo Use "ALTER EXTENSION pg_retention UPDATE TO '0.3.0'" to load this file. \quit

REVOKE INSERT, UPDATE, DELETE ON @extschema@.retention_config FROM PUBLIC;
REVOKE USAGE ON SEQUENCE @extschema@.retention_config_id_seq FROM PUBLIC;

REVOKE INSERT, UPDATE, DELETE ON @extschema@.cleanup_runs FROM PUBLIC;
REVOKE USAGE ON SEQUENCE @extschema@.cleanup_runs_id_seq FROM PUBLIC;
DROP POLICY cleanup_runs_insert ON @extschema@.cleanup_runs;
DROP POLICY cleanup_runs_update ON @extschema@.cleanup_runs;
DROP POLICY cleanup_runs_delete ON @extschema@.cleanup_runs;
-- A role reads the runs it (or a role it belongs to) started: a run's error
-- and policies may speak of other roles' tables.
ALTER POLICY cleanup_runs_read ON @extschema@.cleanup_runs
    USING (EXISTS (SELECT FROM pg_catalog.pg_roles r
                   WHERE r.rolname OPERATOR(pg_catalog.=) started_by
                     AND pg_catalog.pg_has_role(CURRENT_USER, r.oid, 'USAGE')));

-- now() - retain, or NULL when it is out of range (a policy stored with such
-- a retain cannot run; the view still lists it).
CREATE FUNCTION @extschema@._retention_cutoff(retain interval) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.now() OPERATOR(pg_catalog.-) retain;
EXCEPTION WHEN datetime_field_overflow THEN
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION @extschema@._retention_cutoff(interval) IS 'internal: a policy''s cutoff, NULL when out of range';

-- security_barrier: the reader's own WHERE clauses run only on the rows the
-- ownership test let through; the cutoff no longer fails the whole view.
CREATE OR REPLACE VIEW @extschema@.retention_policies WITH (security_barrier) AS
SELECT p.id,
       p.relid AS relation,
       p.kind,
       p.time_column,
       p.retain,
       p.label,
       p.batch_size,
       p.enabled,
       @extschema@._retention_cutoff(p.retain) AS cutoff,
       p.created_at
FROM @extschema@.retention_config p
-- A view reads its tables as its owner, whom row-level security does not
-- restrict: apply the same rule here (current_user is the reader). A policy
-- whose table was dropped shows to everyone.
WHERE COALESCE(pg_catalog.pg_has_role(CURRENT_USER,
          (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.relid::pg_catalog.oid), 'USAGE'), true);


-- retention_stats() has an error column: a policy that cannot run (its time
-- column renamed, its key dropped, a cycle, a cutoff out of range) shows why
-- in its own row instead of failing the whole report; retention_monitor
-- shows it too, and a -infinity time has no age (NULL, not an error). The
-- return type changes, so the function and the views over it are made anew.
DROP VIEW @extschema@.retention_label_totals;
DROP VIEW @extschema@.retention_monitor;
DROP FUNCTION @extschema@.retention_stats(text, boolean);
DROP FUNCTION @extschema@._retention_stats(text, boolean);

CREATE FUNCTION @extschema@."_retention_stats"(
	"label" TEXT,
	"exact" bool
) RETURNS TABLE (
	"policy_id" bigint,
	"relid" oid,
	"kind" TEXT,
	"label" TEXT,
	"time_column" TEXT,
	"retain" interval,
	"cutoff" timestamp with time zone,
	"enabled" bool,
	"total_rows" bigint,
	"total_rows_exact" bool,
	"expired_rows" bigint,
	"oldest" timestamp with time zone,
	"newest" timestamp with time zone,
	"total_bytes" bigint,
	"time_column_indexed" bool,
	"unindexed_foreign_keys" TEXT[],
	"last_run_at" timestamp with time zone,
	"last_run_status" TEXT,
	"error" TEXT
)
STABLE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_retention_stats_wrapper';
COMMENT ON FUNCTION @extschema@._retention_stats(text, boolean) IS 'internal: use retention_stats';

-- Reports read the policies in subtransactions (a cutoff out of range fails
-- alone): not in parallel workers.
ALTER FUNCTION @extschema@._retention_preview(text) PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.retention_stats(label text DEFAULT NULL, exact boolean DEFAULT false)
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
    last_run_status text,
    error text
)
LANGUAGE sql STABLE
AS $$
SELECT s.policy_id, s.relid::pg_catalog.regclass, s.kind, s.label, s.time_column::pg_catalog.name, s.retain,
       s.cutoff, s.enabled, s.total_rows, s.total_rows_exact, s.expired_rows, s.oldest, s.newest,
       s.total_bytes, pg_catalog.pg_size_pretty(s.total_bytes), s.time_column_indexed,
       s.unindexed_foreign_keys, s.last_run_at, s.last_run_status, s.error
FROM @extschema@._retention_stats($1, $2) s
$$;

COMMENT ON FUNCTION @extschema@.retention_stats(text, boolean) IS 'Per policy: rows (estimate, or exact), expired rows, time range, size, cutoff, missing indexes, last run; for a policy that cannot run, why';

-- For dashboards: one row per policy. lag_rows are expired rows waiting for
-- the next run; a lag that grows from run to run means retention does not
-- keep up with inserts. oldest_expired_age is for expire policies (an orphan
-- policy's oldest row need not be an orphan).
CREATE VIEW @extschema@.retention_monitor AS
SELECT s.policy_id,
       s.relation,
       s.label,
       s.kind,
       s.enabled,
       s.last_run_status,
       s.last_run_at,
       -- Rows the last run of this policy deleted from its table (0 when it
       -- deleted none: the history lists only tables it deleted from).
       (SELECT COALESCE((SELECT pg_catalog.sum((t OPERATOR(pg_catalog.->>) 'deleted')::pg_catalog.int8)::pg_catalog.int8
                           FROM pg_catalog.jsonb_array_elements(r.tables) t
                          WHERE (t OPERATOR(pg_catalog.->>) 'relid')::pg_catalog.oid OPERATOR(pg_catalog.=) s.relation::pg_catalog.oid), 0)
          FROM @extschema@.cleanup_runs r
         WHERE r.status OPERATOR(pg_catalog.<>) 'skipped'
           AND r.policies OPERATOR(pg_catalog.@>) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('policy_id', s.policy_id))
         ORDER BY r.id DESC LIMIT 1) AS last_run_deleted,
       s.expired_rows AS lag_rows,
       CASE WHEN s.kind OPERATOR(pg_catalog.=) 'expire' AND s.oldest OPERATOR(pg_catalog.<) s.cutoff
                 AND pg_catalog.isfinite(s.oldest)
            THEN pg_catalog.date_trunc('second', pg_catalog.now() OPERATOR(pg_catalog.-) s.oldest) END AS oldest_expired_age,
       s.total_rows,
       s.total_size,
       s.error
FROM @extschema@.retention_stats() s;

-- Per label: policies, rows waiting, and how the last run of the label went.
CREATE VIEW @extschema@.retention_label_totals AS
SELECT m.label,
       pg_catalog.count(*) AS policies,
       pg_catalog.sum(m.lag_rows)::pg_catalog.int8 AS lag_rows,
       pg_catalog.max(m.oldest_expired_age) AS oldest_expired_age,
       pg_catalog.sum(m.total_rows)::pg_catalog.int8 AS total_rows,
       pg_catalog.max(m.last_run_at) AS last_run_at,
       pg_catalog.bool_and(m.last_run_status OPERATOR(pg_catalog.=) 'succeeded') AS all_last_runs_succeeded
FROM @extschema@.retention_monitor m
GROUP BY m.label;

GRANT SELECT ON @extschema@.retention_monitor, @extschema@.retention_label_totals TO PUBLIC;

COMMENT ON VIEW @extschema@.retention_monitor IS 'Per policy, for dashboards: last run status and time, rows it deleted, expired rows waiting (lag) and the oldest one''s age';
COMMENT ON VIEW @extschema@.retention_monitor IS 'Per policy, for dashboards: last run status and time, rows it deleted, expired rows waiting (lag) and the oldest one''s age';
COMMENT ON VIEW @extschema@.retention_label_totals IS 'Per label: policies, rows waiting, oldest expired age, last run';
