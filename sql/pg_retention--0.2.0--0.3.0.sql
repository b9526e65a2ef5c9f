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
