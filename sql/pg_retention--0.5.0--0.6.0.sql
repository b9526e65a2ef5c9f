-- pg_retention 0.5.0 -> 0.6.0: a heap sweep's batch in one statement
-- (issue 17), the extension's schema required to be a superuser's, and two
-- functions replaced (retention_schedule, _retention_forget_dropped).
-- Written by hand; mirrors sql/bootstrap.sql's check and sql/api.sql.
-- Policies, history and pg_cron jobs are kept as they are.
\echo Use "ALTER EXTENSION pg_retention UPDATE TO '0.6.0'" to load this file. \quit

-- As at CREATE EXTENSION (sql/bootstrap.sql): the update is refused while the
-- extension's schema is not a superuser's.
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

-- One function per time type a policy accepts: the run's DELETEs call them
-- with arguments cast to exactly these types. In pg_catalog, where only
-- superusers create or rename: no other function can take the call. Table
-- owners call them inside those DELETEs, so they keep EXECUTE for PUBLIC;
-- outside a run's statement they admit nothing.
CREATE FUNCTION pg_catalog._retention_sweep_take("row" tid, "time" timestamptz) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c
AS 'MODULE_PATHNAME', 'sweep_take_timestamptz_wrapper';

CREATE FUNCTION pg_catalog._retention_sweep_take("row" tid, "time" timestamp) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c
AS 'MODULE_PATHNAME', 'sweep_take_timestamp_wrapper';

CREATE FUNCTION pg_catalog._retention_sweep_take("row" tid, "time" date) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c
AS 'MODULE_PATHNAME', 'sweep_take_date_wrapper';

COMMENT ON FUNCTION pg_catalog._retention_sweep_take(tid, timestamptz) IS 'internal: admits a heap sweep''s rows up to its batch size, inside a run''s DELETE';
COMMENT ON FUNCTION pg_catalog._retention_sweep_take(tid, timestamp) IS 'internal: admits a heap sweep''s rows up to its batch size, inside a run''s DELETE';
COMMENT ON FUNCTION pg_catalog._retention_sweep_take(tid, date) IS 'internal: admits a heap sweep''s rows up to its batch size, inside a run''s DELETE';

-- retention_schedule: the job's command names the schema as it is
-- ('@extschema@' is already an identifier); it quoted it a second time, so
-- a schema whose name needs quotes ("Retention Jobs") got a command that
-- failed.
CREATE OR REPLACE FUNCTION retention_schedule(
    schedule text DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    label text DEFAULT NULL,
    max_rows bigint DEFAULT NULL,
    max_duration interval DEFAULT NULL,
    batch_pause interval DEFAULT NULL,
    lock_timeout interval DEFAULT NULL,
    yield_ratio real DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    job record;
    command text;
    arguments text := '';
    job_id bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', pg_catalog.current_database()
            USING ERRCODE = '55000',
                  HINT = 'CREATE EXTENSION pg_cron; it needs shared_preload_libraries = ''pg_cron'' and runs in the database named by cron.database_name. For data in another database, schedule CALL retention_run() there with cron.schedule_in_database().';
    END IF;
    IF NOT pg_catalog.has_schema_privilege('cron', 'USAGE') THEN
        RAISE EXCEPTION 'role % may not use schema cron (pg_cron)', CURRENT_USER
            USING ERRCODE = '42501',
                  HINT = 'A superuser grants it: GRANT USAGE ON SCHEMA cron TO the role; pg_cron then lets it schedule and see its own jobs.';
    END IF;
    IF label IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM @extschema@.retention_config c WHERE c.label OPERATOR(pg_catalog.=) retention_schedule.label) THEN
        RAISE EXCEPTION 'no retention policy has label "%"', label
            USING ERRCODE = '42704',
                  HINT = 'Give policies the label first (retention_add_policy or retention_alter_policy with label =>): a run of a label without policies fails.';
    END IF;
    SELECT j.jobid, j.schedule, j.command, j.active INTO job FROM cron.job j
     WHERE j.jobname OPERATOR(pg_catalog.=) @extschema@._retention_job_name(label)
       AND j.username OPERATOR(pg_catalog.=) CURRENT_USER;
    schedule := COALESCE(schedule, job.schedule, '0 3 * * *');
    batch_size := COALESCE(batch_size, @extschema@._retention_job_argument(job.command, 'batch_size')::pg_catalog.int4, 1000);
    max_rows := COALESCE(max_rows, @extschema@._retention_job_argument(job.command, 'max_rows')::pg_catalog.int8);
    max_duration := COALESCE(max_duration, @extschema@._retention_job_argument(job.command, 'max_duration')::pg_catalog.interval);
    batch_pause := COALESCE(batch_pause, @extschema@._retention_job_argument(job.command, 'batch_pause')::pg_catalog.interval);
    lock_timeout := COALESCE(lock_timeout, @extschema@._retention_job_argument(job.command, 'lock_timeout')::pg_catalog.interval);
    yield_ratio := COALESCE(yield_ratio, @extschema@._retention_job_argument(job.command, 'yield_ratio')::pg_catalog.float4);
    IF batch_size OPERATOR(pg_catalog.<=) 0 THEN
        RAISE EXCEPTION 'batch_size must be a positive number of rows, not %', batch_size USING ERRCODE = '22023';
    END IF;
    IF max_rows OPERATOR(pg_catalog.<) 0
       OR NOT (yield_ratio OPERATOR(pg_catalog.>=) 0 AND yield_ratio OPERATOR(pg_catalog.<=) 1000)
       OR max_duration OPERATOR(pg_catalog.<) '0'::pg_catalog.interval
       OR batch_pause OPERATOR(pg_catalog.<) '0'::pg_catalog.interval
       OR lock_timeout OPERATOR(pg_catalog.<) '0'::pg_catalog.interval THEN
        RAISE EXCEPTION 'max_rows, max_duration, batch_pause and lock_timeout must not be negative, yield_ratio must be between 0 and 1000'
            USING ERRCODE = '22023';
    END IF;
    -- One "name => 'value'::type" per argument given, the label last: what
    -- _retention_job_argument reads back (before the label, which may hold
    -- any text) when the label is scheduled again.
    arguments := pg_catalog.concat(
        CASE WHEN max_rows IS NOT NULL THEN pg_catalog.format(', max_rows => %L::pg_catalog.int8', max_rows) END,
        CASE WHEN max_duration IS NOT NULL THEN pg_catalog.format(', max_duration => %L::pg_catalog.interval', max_duration) END,
        CASE WHEN batch_pause IS NOT NULL THEN pg_catalog.format(', batch_pause => %L::pg_catalog.interval', batch_pause) END,
        CASE WHEN lock_timeout IS NOT NULL THEN pg_catalog.format(', lock_timeout => %L::pg_catalog.interval', lock_timeout) END,
        CASE WHEN yield_ratio IS NOT NULL THEN pg_catalog.format(', yield_ratio => %L::pg_catalog.float4', yield_ratio) END);
    -- '@extschema@' is already an identifier, quoted when it needs to be.
    command := pg_catalog.format(
        'CALL %s.retention_run(batch_size => %L::pg_catalog.int4, origin => %L::pg_catalog.text%s, label => %L::pg_catalog.text)',
        '@extschema@', batch_size, 'pg_cron', arguments, label);
    job_id := cron.schedule(@extschema@._retention_job_name(label), schedule, command);
    IF job.active IS FALSE THEN
        RAISE NOTICE 'pg_cron job % (%) is paused; when active it runs % at "%"',
            job_id, @extschema@._retention_job_name(label), command, schedule
            USING HINT = pg_catalog.format('SELECT cron.alter_job(%s, active => true)', job_id);
    ELSE
        RAISE NOTICE 'pg_cron job % (%) runs % at "%"', job_id, @extschema@._retention_job_name(label), command, schedule;
    END IF;
    RETURN job_id;
END
$$;

-- The event trigger deletes the policies of dropped objects through the
-- schema's name, as the extension's owner: now only while the name is the
-- extension's schema and a superuser owns it.
CREATE OR REPLACE FUNCTION _retention_forget_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone record;
    trusted boolean;
BEGIN
    -- The policies are deleted through the schema's name, as the
    -- extension's owner: only while that name still names the extension's
    -- schema and a superuser (or the extension's owner) owns it, the rule
    -- every other entry point checks (security::check_extension_schema).
    -- Otherwise whoever controls the name would choose what runs here; the
    -- DROP itself goes on.
    SELECT n.oid OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace('@extschema@')
           AND COALESCE((SELECT r.rolsuper OR r.oid OPERATOR(pg_catalog.=) e.extowner
                           FROM pg_catalog.pg_roles r
                          WHERE r.oid OPERATOR(pg_catalog.=)
                                CASE WHEN n.nspowner OPERATOR(pg_catalog.=) 'pg_database_owner'::pg_catalog.regrole
                                     THEN d.datdba ELSE n.nspowner END), false)
      INTO trusted
      FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
      JOIN pg_catalog.pg_database d ON d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
     WHERE e.extname OPERATOR(pg_catalog.=) 'pg_retention';
    IF NOT COALESCE(trusted, false) THEN
        RAISE WARNING 'pg_retention: the policies of dropped objects are kept: its schema was renamed, or is owned by a role that is not a superuser'
            USING HINT = 'docs/security.md, "Installing"';
        RETURN;
    END IF;
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
