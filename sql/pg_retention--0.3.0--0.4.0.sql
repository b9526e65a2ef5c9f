-- pg_retention 0.3.0 -> 0.4.0: partitions that go whole (docs/design.md,
-- "Partitions that go whole"). Written by hand; mirrors sql/bootstrap.sql
-- and sql/api.sql. Policies keep their settings; every expire policy
-- starts with partition_action 'drop', the behaviour of the 0.4.0 library
-- on tables partitioned by their time column.
\echo Use "ALTER EXTENSION pg_retention UPDATE TO '0.4.0'" to load this file. \quit

ALTER TABLE @extschema@.retention_config
    ADD COLUMN partition_action text NOT NULL DEFAULT 'drop' CHECK (partition_action IN ('drop', 'detach')),
    ADD COLUMN partition_schema name CHECK (partition_schema IS NULL OR partition_action = 'detach');

CREATE FUNCTION @extschema@._retention_set_partition_action("relation" oid, "action" TEXT, "schema" TEXT) RETURNS bigint
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_retention_set_partition_action_wrapper';

CREATE FUNCTION @extschema@._retention_partitions("label" TEXT) RETURNS TABLE (
	"policy_id" bigint,
	"relid" oid,
	"partition" oid,
	"level" INT,
	"bounds" TEXT,
	"rows_estimate" bigint,
	"bytes" bigint,
	"next_run" TEXT
)
STABLE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_retention_partitions_wrapper';

CREATE FUNCTION @extschema@.retention_partitions(label text DEFAULT NULL)
RETURNS TABLE (
    policy_id bigint,
    relation regclass,
    partition regclass,
    level integer,
    bounds text,
    rows_estimate bigint,
    bytes bigint,
    size text,
    next_run text
)
LANGUAGE sql STABLE
AS $$
SELECT p.policy_id, p.relid::pg_catalog.regclass, p.partition::pg_catalog.regclass, p.level, p.bounds,
       p.rows_estimate, p.bytes, pg_catalog.pg_size_pretty(p.bytes), p.next_run
FROM @extschema@._retention_partitions($1) p
$$;

CREATE FUNCTION @extschema@.retention_set_partition_action(relation regclass, action text DEFAULT 'drop', schema name DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_set_partition_action($1::pg_catalog.oid, $2, $3::pg_catalog.text) $$;

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
       p.created_at,
       p.partition_action,
       p.partition_schema
FROM @extschema@.retention_config p
-- A view reads its tables as its owner, whom row-level security does not
-- restrict: apply the same rule here (current_user is the reader). A policy
-- whose table was dropped shows to everyone.
WHERE COALESCE(pg_catalog.pg_has_role(CURRENT_USER,
          (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.relid::pg_catalog.oid), 'USAGE'), true);

COMMENT ON VIEW @extschema@.retention_policies IS 'pg_retention policies, readable: relation, kind, time column, retention, label, batch size, enabled, current cutoff, what becomes of whole partitions';
COMMENT ON FUNCTION @extschema@.retention_set_partition_action(regclass, text, name) IS 'What the expire policy of a table partitioned by its time column does with partitions wholly older than the cutoff: drop (default), or detach and keep them (in schema, when given)';
COMMENT ON FUNCTION @extschema@._retention_set_partition_action(oid, text, text) IS 'internal: use retention_set_partition_action';
COMMENT ON FUNCTION @extschema@.retention_partitions(text) IS 'Per expire policy on a partitioned table: its partitions, bounds, estimated rows, size, and what the next run does with each';
COMMENT ON FUNCTION @extschema@._retention_partitions(text) IS 'internal: use retention_partitions';
