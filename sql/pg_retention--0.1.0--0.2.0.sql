-- pg_retention 0.1.0 -> 0.2.0: policies that outlive their table, monitoring views,
-- comments on the internal functions. Written by hand; mirrors the
-- "New in 0.2.0" part of sql/api.sql.
\echo Use "ALTER EXTENSION pg_retention UPDATE TO '0.2.0'" to load this file. \quit


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
       (SELECT (t OPERATOR(pg_catalog.->>) 'deleted')::pg_catalog.int8
          FROM @extschema@.cleanup_runs r, pg_catalog.jsonb_array_elements(r.tables) t
         WHERE (t OPERATOR(pg_catalog.->>) 'relid')::pg_catalog.oid OPERATOR(pg_catalog.=) s.relation::pg_catalog.oid
           AND r.status OPERATOR(pg_catalog.<>) 'skipped'
         ORDER BY r.id DESC LIMIT 1) AS last_run_deleted,
       s.expired_rows AS lag_rows,
       CASE WHEN s.kind OPERATOR(pg_catalog.=) 'expire' AND s.oldest OPERATOR(pg_catalog.<) s.cutoff
            THEN pg_catalog.date_trunc('second', pg_catalog.now() OPERATOR(pg_catalog.-) s.oldest) END AS oldest_expired_age,
       s.total_rows,
       s.total_size
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
COMMENT ON FUNCTION _retention_remove_policy(oid, text) IS 'internal: use retention_remove_policy';
COMMENT ON FUNCTION _retention_execute(integer, text, text) IS 'internal: use retention_execute';
COMMENT ON FUNCTION _retention_preview(text) IS 'internal: use retention_preview';
COMMENT ON FUNCTION _retention_stats(text, boolean) IS 'internal: use retention_stats';
COMMENT ON FUNCTION _retention_run_begin(integer, text, bigint, interval, interval, interval, text) IS 'internal: first step of CALL retention_run';
COMMENT ON FUNCTION _retention_run_step(bigint) IS 'internal: one batch of CALL retention_run';
COMMENT ON FUNCTION _retention_job_name(text) IS 'internal: pg_cron job name of a label';
