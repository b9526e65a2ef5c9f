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

-- The reader's own WHERE clauses run only on the rows the ownership test let
-- through.
ALTER VIEW @extschema@.retention_policies SET (security_barrier = true);

-- A -infinity time has no age (timestamps cannot be subtracted from it):
-- oldest_expired_age is NULL for it instead of an error.
CREATE OR REPLACE VIEW @extschema@.retention_monitor AS
SELECT s.policy_id,
       s.relation,
       s.label,
       s.kind,
       s.enabled,
       s.last_run_status,
       s.last_run_at,
       (SELECT (t OPERATOR(pg_catalog.->>) 'deleted')::pg_catalog.int8
          FROM @extschema@.cleanup_runs r, pg_catalog.jsonb_array_elements(r.tables) t
         WHERE (t OPERATOR(pg_catalog.->>) 'relid')::pg_catalog.oid OPERATOR(pg_catalog.=) s.relation::pg_catalog.oid
           AND r.status OPERATOR(pg_catalog.<>) 'skipped'
         ORDER BY r.id DESC LIMIT 1) AS last_run_deleted,
       s.expired_rows AS lag_rows,
       CASE WHEN s.kind OPERATOR(pg_catalog.=) 'expire' AND s.oldest OPERATOR(pg_catalog.<) s.cutoff
                 AND pg_catalog.isfinite(s.oldest)
            THEN pg_catalog.date_trunc('second', pg_catalog.now() OPERATOR(pg_catalog.-) s.oldest) END AS oldest_expired_age,
       s.total_rows,
       s.total_size
FROM @extschema@.retention_stats() s;

