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

CREATE FUNCTION retention_set_partition_action(relation regclass, action text DEFAULT 'drop', schema name DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_set_partition_action($1::pg_catalog.oid, $2, $3::pg_catalog.text) $$;

CREATE FUNCTION retention_pause(relation regclass) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_set_enabled($1::pg_catalog.oid, false) $$;

CREATE FUNCTION retention_resume(relation regclass) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_set_enabled($1::pg_catalog.oid, true) $$;

CREATE FUNCTION retention_remove_policy(relation regclass, kind text DEFAULT NULL) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_remove_policy($1::pg_catalog.oid, $2) $$;

-- now() - retain, or NULL when it is out of range (a policy stored with such
-- a retain cannot run; the view still lists it).
CREATE FUNCTION _retention_cutoff(retain interval) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.now() OPERATOR(pg_catalog.-) retain;
EXCEPTION WHEN datetime_field_overflow THEN
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION _retention_cutoff(interval) IS 'internal: a policy''s cutoff, NULL when out of range';

-- security_barrier: the reader's own WHERE clauses (a cheap leaky function
-- among them) run only on the rows the ownership test let through.
CREATE VIEW retention_policies WITH (security_barrier) AS
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

CREATE FUNCTION retention_partitions(label text DEFAULT NULL)
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

-- The production path: commits after every batch, so row locks and the xmin
-- horizon are held for one batch only. PL/pgSQL without SET clauses or
-- SECURITY DEFINER and with no EXCEPTION block, so that it may COMMIT.
CREATE PROCEDURE retention_run(
    batch_size integer DEFAULT 1000,
    label text DEFAULT NULL,
    max_rows bigint DEFAULT NULL,
    max_duration interval DEFAULT NULL,
    batch_pause interval DEFAULT NULL,
    lock_timeout interval DEFAULT NULL,
    origin text DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
DECLARE
    run_id bigint;
    state text := 'more';
    failure record;
BEGIN
    run_id := @extschema@._retention_run_begin(
        batch_size, label, max_rows, max_duration, batch_pause, lock_timeout,
        COALESCE(origin, CASE WHEN pg_catalog.current_setting('application_name') OPERATOR(pg_catalog.=) 'pg_cron'
                              THEN 'pg_cron' ELSE 'retention_run' END));
    COMMIT;
    WHILE state OPERATOR(pg_catalog.=) 'more' LOOP
        state := @extschema@._retention_run_step(run_id);
        COMMIT;
    END LOOP;
    IF state OPERATOR(pg_catalog.=) ANY (ARRAY['failed', 'cancelled']) THEN
        SELECT r.error, r.sqlstate INTO failure FROM @extschema@.cleanup_runs r WHERE r.id OPERATOR(pg_catalog.=) run_id;
        RAISE EXCEPTION 'pg_retention run % %: %', run_id, state, failure.error
            USING ERRCODE = COALESCE(failure.sqlstate, 'XX000');
    END IF;
END
$$;

-- pg_cron scheduling. The job is named after the label, so scheduling again
-- updates the job instead of adding one.
CREATE FUNCTION retention_schedule(
    schedule text DEFAULT '0 3 * * *',
    batch_size integer DEFAULT 1000,
    label text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    command text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', pg_catalog.current_database()
            USING ERRCODE = '55000',
                  HINT = 'CREATE EXTENSION pg_cron; it needs shared_preload_libraries = ''pg_cron'' and runs in the database named by cron.database_name. For data in another database, schedule CALL retention_run() there with cron.schedule_in_database().';
    END IF;
    IF schedule IS NULL THEN
        RAISE EXCEPTION 'schedule must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<=) 0 THEN
        RAISE EXCEPTION 'batch_size must be a positive number of rows, not %', COALESCE(batch_size::text, 'NULL')
            USING ERRCODE = CASE WHEN batch_size IS NULL THEN '22004' ELSE '22023' END;
    END IF;
    command := pg_catalog.format('CALL %I.retention_run(batch_size => %s, label => %L, origin => %L)',
                                 '@extschema@', batch_size, label, 'pg_cron');
    RETURN cron.schedule(@extschema@._retention_job_name(label), schedule, command);
END
$$;

CREATE FUNCTION retention_unschedule(label text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', pg_catalog.current_database()
            USING ERRCODE = '55000', HINT = 'CREATE EXTENSION pg_cron';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM cron.job j WHERE j.jobname OPERATOR(pg_catalog.=) @extschema@._retention_job_name(label)) THEN
        RETURN false;
    END IF;
    RETURN cron.unschedule(@extschema@._retention_job_name(label));
END
$$;

CREATE FUNCTION _retention_job_name(label text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT 'pg_retention' OPERATOR(pg_catalog.||) COALESCE(':' OPERATOR(pg_catalog.||) label, '') $$;

COMMENT ON TABLE retention_config IS 'pg_retention policies (configuration, kept by pg_dump); read it through the retention_policies view';
COMMENT ON TABLE cleanup_runs IS 'pg_retention run history: one row per run, with per-table counts, date ranges and any error';
COMMENT ON VIEW retention_policies IS 'pg_retention policies, readable: relation, kind, time column, retention, label, batch size, enabled, current cutoff, what becomes of whole partitions';
COMMENT ON FUNCTION retention_add_policy(regclass, name, interval, text, integer, boolean) IS 'Rows of relation whose time_column is older than now() - retain expire; their dependents go first';
COMMENT ON FUNCTION retention_add_orphan_policy(regclass, name, interval, text) IS 'Rows of relation that nothing references and whose time_column is older than now() - grace are deleted after the expirations';
COMMENT ON FUNCTION retention_alter_policy(regclass, interval, text, integer, boolean, text) IS 'Changes the given settings of a policy (NULL keeps a setting)';
COMMENT ON FUNCTION retention_set_partition_action(regclass, text, name) IS 'What the expire policy of a table partitioned by its time column does with partitions wholly older than the cutoff: drop (default), or detach and keep them (in schema, when given)';
COMMENT ON FUNCTION retention_pause(regclass) IS 'Disables the policies of a table without removing them';
COMMENT ON FUNCTION retention_resume(regclass) IS 'Enables the policies of a table again';
COMMENT ON FUNCTION retention_remove_policy(regclass, text) IS 'Removes the policies of a table (of one kind, or all)';
COMMENT ON FUNCTION retention_stats(text, boolean) IS 'Per policy: rows (estimate, or exact), expired rows, time range, size, cutoff, missing indexes, last run; for a policy that cannot run, why';
COMMENT ON FUNCTION retention_partitions(text) IS 'Per expire policy on a partitioned table: its partitions, bounds, estimated rows, size, and what the next run does with each';
COMMENT ON FUNCTION retention_preview(text) IS 'What the next run deletes, table by table in the order it deletes them';
COMMENT ON FUNCTION retention_execute(integer, text) IS 'Runs the enabled policies now in batches, children first, in the caller''s transaction; returns the history row';
COMMENT ON PROCEDURE retention_run(integer, text, bigint, interval, interval, interval, text) IS 'Runs the enabled policies, committing after every batch (the path to schedule); caps default to the pg_retention.* settings';
COMMENT ON FUNCTION retention_schedule(text, integer, text) IS 'Schedules CALL retention_run() with pg_cron (one job per label; scheduling again updates it); returns the job id';
COMMENT ON FUNCTION retention_unschedule(text) IS 'Removes the pg_cron job of a label; false when there is none';

-- Privileges (docs/security.md). PUBLIC may read policies and history but
-- write neither: the extension's functions write both as the extension's
-- owner, after checking that the caller owns the table (policies) or is the
-- run (history). Row-level security limits each role to the policies of
-- tables it owns (or whose owning role it belongs to). Superusers and the
-- extension's owner bypass it, so a run by a superuser (pg_cron's usual
-- role) sees every policy; a run by another role runs the policies of its
-- own tables only. Either way every statement of a policy runs as the owner
-- of the policy's table.
GRANT SELECT ON retention_config TO PUBLIC;
GRANT SELECT ON retention_policies TO PUBLIC;
ALTER TABLE retention_config ENABLE ROW LEVEL SECURITY;
CREATE POLICY retention_config_owner ON retention_config
    USING (pg_catalog.pg_has_role(CURRENT_USER,
              (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) relid::pg_catalog.oid), 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role(CURRENT_USER,
              (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) relid::pg_catalog.oid), 'USAGE'));

GRANT SELECT ON cleanup_runs TO PUBLIC;
ALTER TABLE cleanup_runs ENABLE ROW LEVEL SECURITY;
-- A role reads the runs it (or a role it belongs to) started: a run's error
-- and policies may speak of other roles' tables. Each policy's last run is
-- in retention_stats() and retention_monitor, for the policies a role sees.
CREATE POLICY cleanup_runs_read ON cleanup_runs FOR SELECT
    USING (EXISTS (SELECT FROM pg_catalog.pg_roles r
                   WHERE r.rolname OPERATOR(pg_catalog.=) started_by
                     AND pg_catalog.pg_has_role(CURRENT_USER, r.oid, 'USAGE')));

-- ---------------------------------------------------------------------------
-- New in 0.2.0 (the upgrade script sql/pg_retention--0.1.0--0.2.0.sql creates
-- the same objects).

-- A dropped table takes its policies with it, and a dropped time column the
-- policies that used it: a run never meets a policy it cannot execute.
-- SECURITY DEFINER because the dropping role may not see the policy rows
-- (row-level security compares against the table's owner, which is gone by
-- now); it only deletes policies of objects that this very command dropped.
CREATE FUNCTION _retention_forget_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone record;
BEGIN
    FOR gone IN
        DELETE FROM @extschema@.retention_config c
        USING pg_catalog.pg_event_trigger_dropped_objects() d
        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.objid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid
          AND (d.objsubid OPERATOR(pg_catalog.=) 0
               OR (d.object_type OPERATOR(pg_catalog.=) 'table column'
                   AND d.address_names[3] OPERATOR(pg_catalog.=) c.time_column::pg_catalog.text))
        RETURNING c.id, c.kind, d.object_identity
    LOOP
        RAISE NOTICE 'pg_retention: % policy % removed with %', gone.kind, gone.id, gone.object_identity;
    END LOOP;
END
$$;
CREATE EVENT TRIGGER pg_retention_forget_dropped ON sql_drop
    EXECUTE FUNCTION _retention_forget_dropped();

-- For dashboards: one row per policy. lag_rows are expired rows waiting for
-- the next run; a lag that grows from run to run means retention does not
-- keep up with inserts. oldest_expired_age is for expire policies (an orphan
-- policy's oldest row need not be an orphan).
CREATE VIEW retention_monitor AS
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
CREATE VIEW retention_label_totals AS
SELECT m.label,
       pg_catalog.count(*) AS policies,
       pg_catalog.sum(m.lag_rows)::pg_catalog.int8 AS lag_rows,
       pg_catalog.max(m.oldest_expired_age) AS oldest_expired_age,
       pg_catalog.sum(m.total_rows)::pg_catalog.int8 AS total_rows,
       pg_catalog.max(m.last_run_at) AS last_run_at,
       pg_catalog.bool_and(m.last_run_status OPERATOR(pg_catalog.=) 'succeeded') AS all_last_runs_succeeded
FROM @extschema@.retention_monitor m
GROUP BY m.label;

GRANT SELECT ON retention_monitor, retention_label_totals TO PUBLIC;

COMMENT ON VIEW retention_monitor IS 'Per policy, for dashboards: last run status and time, rows it deleted, expired rows waiting (lag) and the oldest one''s age';
COMMENT ON VIEW retention_label_totals IS 'Per label: policies, rows waiting, oldest expired age, last run';
COMMENT ON FUNCTION _retention_forget_dropped() IS 'Event trigger: removes the policies of dropped tables and time columns';

COMMENT ON FUNCTION _retention_add_policy(oid, text, interval, text, integer, boolean, text) IS 'internal: use retention_add_policy / retention_add_orphan_policy';
COMMENT ON FUNCTION _retention_alter_policy(oid, text, interval, text, integer, boolean) IS 'internal: use retention_alter_policy';
COMMENT ON FUNCTION _retention_set_enabled(oid, boolean) IS 'internal: use retention_pause / retention_resume';
COMMENT ON FUNCTION _retention_set_partition_action(oid, text, text) IS 'internal: use retention_set_partition_action';
COMMENT ON FUNCTION _retention_remove_policy(oid, text) IS 'internal: use retention_remove_policy';
COMMENT ON FUNCTION _retention_execute(integer, text, text) IS 'internal: use retention_execute';
COMMENT ON FUNCTION _retention_preview(text) IS 'internal: use retention_preview';
COMMENT ON FUNCTION _retention_partitions(text) IS 'internal: use retention_partitions';
COMMENT ON FUNCTION _retention_stats(text, boolean) IS 'internal: use retention_stats';
COMMENT ON FUNCTION _retention_run_begin(integer, text, bigint, interval, interval, interval, text) IS 'internal: first step of CALL retention_run';
COMMENT ON FUNCTION _retention_run_step(bigint) IS 'internal: one batch of CALL retention_run';
COMMENT ON FUNCTION _retention_job_name(text) IS 'internal: pg_cron job name of a label';
