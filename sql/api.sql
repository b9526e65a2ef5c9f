-- pg_retention: the public SQL API. Thin wrappers over the Rust functions,
-- carrying the fixed signatures; every reference is schema-qualified so the
-- caller's search_path cannot redirect them.

-- if_not_exists: a table that already has a policy of the kind keeps it as
-- it is (a NOTICE says so) and its id is returned, as CREATE ... IF NOT
-- EXISTS does. The lookup reads retention_config as the caller: a table the
-- caller does not own shows no policy, and _retention_add_policy refuses it.
CREATE FUNCTION retention_add_policy(
    relation regclass,
    time_column name,
    retain interval,
    label text DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    enabled boolean DEFAULT true,
    if_not_exists boolean DEFAULT false
) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    existing bigint;
BEGIN
    IF if_not_exists THEN
        existing := @extschema@._retention_existing_policy(relation, 'expire');
        IF existing IS NOT NULL THEN
            RETURN existing;
        END IF;
    END IF;
    RETURN @extschema@._retention_add_policy(relation::pg_catalog.oid, time_column::pg_catalog.text, retain,
                                             label, batch_size, enabled, 'expire');
END
$$;

CREATE FUNCTION retention_add_orphan_policy(
    relation regclass,
    time_column name,
    grace interval,
    label text DEFAULT NULL,
    if_not_exists boolean DEFAULT false
) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    existing bigint;
BEGIN
    IF if_not_exists THEN
        existing := @extschema@._retention_existing_policy(relation, 'orphan');
        IF existing IS NOT NULL THEN
            RETURN existing;
        END IF;
    END IF;
    RETURN @extschema@._retention_add_policy(relation::pg_catalog.oid, time_column::pg_catalog.text, grace,
                                             label, NULL, true, 'orphan');
END
$$;

-- The id of the table's policy of this kind, with a NOTICE, or NULL.
CREATE FUNCTION _retention_existing_policy(relation regclass, kind text) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    existing bigint;
BEGIN
    SELECT c.id INTO existing FROM @extschema@.retention_config c
     WHERE c.relid::pg_catalog.oid OPERATOR(pg_catalog.=) relation::pg_catalog.oid
       AND c.kind OPERATOR(pg_catalog.=) _retention_existing_policy.kind;
    IF existing IS NOT NULL THEN
        RAISE NOTICE 'table % already has an % policy (id %), skipping', relation, kind, existing
            USING HINT = 'Its settings are as they were; change them with retention_alter_policy.';
    END IF;
    RETURN existing;
END
$$;

-- reset: settings to clear (NULL means keep for the others): 'label' (the
-- policy runs in unlabelled runs again) and 'batch_size' (the run's own).
CREATE FUNCTION retention_alter_policy(
    relation regclass,
    retain interval DEFAULT NULL,
    label text DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    enabled boolean DEFAULT NULL,
    kind text DEFAULT 'expire',
    reset text[] DEFAULT NULL
) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_alter_policy_reset($1::pg_catalog.oid, $6, $2, $3, $4, $5, $7) $$;

CREATE FUNCTION retention_set_partition_action(relation regclass, action text DEFAULT 'drop', schema name DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@._retention_set_partition_action($1::pg_catalog.oid, $2, $3::pg_catalog.text) $$;

-- if_exists: a table without a policy gives 0 and a NOTICE instead of the
-- 42704 error (a table the caller does not own still fails with 42501).
CREATE FUNCTION retention_pause(relation regclass, if_exists boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN @extschema@._retention_set_enabled(relation::pg_catalog.oid, false);
EXCEPTION WHEN undefined_object THEN
    IF NOT if_exists THEN
        RAISE;
    END IF;
    RAISE NOTICE 'table % has no retention policy, skipping', relation;
    RETURN 0;
END
$$;

CREATE FUNCTION retention_resume(relation regclass, if_exists boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN @extschema@._retention_set_enabled(relation::pg_catalog.oid, true);
EXCEPTION WHEN undefined_object THEN
    IF NOT if_exists THEN
        RAISE;
    END IF;
    RAISE NOTICE 'table % has no retention policy, skipping', relation;
    RETURN 0;
END
$$;

-- A label left without policies while a pg_cron job of the caller runs it
-- gets a WARNING: the job's runs would fail from now on (42704).
CREATE FUNCTION retention_remove_policy(relation regclass, kind text DEFAULT NULL, if_exists boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    removed bigint;
    labels text[];
    orphaned text;
BEGIN
    SELECT pg_catalog.array_agg(DISTINCT c.label) INTO labels FROM @extschema@.retention_config c
     WHERE c.relid::pg_catalog.oid OPERATOR(pg_catalog.=) relation::pg_catalog.oid AND c.label IS NOT NULL;
    removed := @extschema@._retention_remove_policy(relation::pg_catalog.oid, kind);
    -- Nested: the privilege test fails on a schema that does not exist.
    IF labels IS NOT NULL AND pg_catalog.to_regclass('cron.job') IS NOT NULL THEN
      IF pg_catalog.has_schema_privilege('cron', 'USAGE') THEN
        FOR orphaned IN
            SELECT l.label FROM pg_catalog.unnest(labels) AS l(label)
            WHERE NOT EXISTS (SELECT 1 FROM @extschema@.retention_config c WHERE c.label OPERATOR(pg_catalog.=) l.label)
              AND EXISTS (SELECT 1 FROM cron.job j
                          WHERE j.jobname OPERATOR(pg_catalog.=) @extschema@._retention_job_name(l.label)
                            AND j.username OPERATOR(pg_catalog.=) CURRENT_USER)
        LOOP
            RAISE WARNING 'label "%" has no policy left; its pg_cron job % fails from now on', orphaned,
                @extschema@._retention_job_name(orphaned)
                USING HINT = pg_catalog.format('SELECT retention_unschedule(%L);', orphaned);
        END LOOP;
      END IF;
    END IF;
    RETURN removed;
EXCEPTION WHEN undefined_object THEN
    IF NOT if_exists THEN
        RAISE;
    END IF;
    RAISE NOTICE 'table % has no such retention policy, skipping', relation;
    RETURN 0;
END
$$;

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
-- yield_ratio stands for pg_retention.yield_ratio in this run (set for the
-- transaction that starts the run, where the run reads it): a setting
-- passed with the CALL, since "SET ...; CALL ..." in one string cannot run.
CREATE PROCEDURE retention_run(
    batch_size integer DEFAULT 1000,
    label text DEFAULT NULL,
    max_rows bigint DEFAULT NULL,
    max_duration interval DEFAULT NULL,
    batch_pause interval DEFAULT NULL,
    lock_timeout interval DEFAULT NULL,
    origin text DEFAULT NULL,
    yield_ratio real DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
DECLARE
    run_id bigint;
    state text := 'more';
    failure record;
BEGIN
    IF yield_ratio IS NOT NULL THEN
        -- NaN compares above every number: refused with the infinities.
        IF NOT (yield_ratio OPERATOR(pg_catalog.>=) 0 AND yield_ratio OPERATOR(pg_catalog.<=) 1000) THEN
            RAISE EXCEPTION 'yield_ratio must be between 0 and 1000, not %', yield_ratio USING ERRCODE = '22023';
        END IF;
        PERFORM pg_catalog.set_config('pg_retention.yield_ratio', yield_ratio::pg_catalog.text, true);
    END IF;
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
-- updates the job instead of adding one; an argument not given (NULL) keeps
-- what the label's job has (its schedule, and each run argument as it
-- stands in the job's command), or for a new job takes the default
-- ('0 3 * * *'; the run's own defaults). The job runs as its scheduler,
-- often a superuser: every argument of its command is cast to its type, so
-- that no procedure of another signature (one taking text, created in this
-- schema by a role that may create there) is a better match for the CALL.
CREATE FUNCTION retention_schedule(
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

-- The value of argument `name` in a job command written by
-- retention_schedule (name => 'value'::type; 0.4.0 wrote batch_size => 500),
-- or NULL. Only the command's text before its label is read: a label may
-- hold anything, "x, max_rows => '1'" included.
CREATE FUNCTION _retention_job_argument(command text, name text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
SELECT COALESCE(pg_catalog.replace(m.a[1], '''''', ''''), m.a[2])
FROM pg_catalog.regexp_match(
         CASE WHEN pg_catalog.strpos(command, 'label => ') OPERATOR(pg_catalog.=) 0 THEN command
              ELSE pg_catalog.left(command, pg_catalog.strpos(command, 'label => ') OPERATOR(pg_catalog.-) 1) END,
         '[(,] *' OPERATOR(pg_catalog.||) name OPERATOR(pg_catalog.||) ' => (?:''((?:[^'']|'''')*)''|([0-9]+))') AS m(a)
$$;

CREATE FUNCTION retention_unschedule(label text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    job_id bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', pg_catalog.current_database()
            USING ERRCODE = '55000', HINT = 'CREATE EXTENSION pg_cron';
    END IF;
    IF NOT pg_catalog.has_schema_privilege('cron', 'USAGE') THEN
        RAISE EXCEPTION 'role % may not use schema cron (pg_cron)', CURRENT_USER
            USING ERRCODE = '42501',
                  HINT = 'A superuser grants it: GRANT USAGE ON SCHEMA cron TO the role; pg_cron then lets it schedule and see its own jobs.';
    END IF;
    -- pg_cron names jobs per role: this role's job of the label, not
    -- another role's of the same name.
    SELECT j.jobid INTO job_id FROM cron.job j
     WHERE j.jobname OPERATOR(pg_catalog.=) @extschema@._retention_job_name(label)
       AND j.username OPERATOR(pg_catalog.=) CURRENT_USER;
    IF job_id IS NULL THEN
        RETURN false;
    END IF;
    RETURN cron.unschedule(job_id);
END
$$;

CREATE FUNCTION _retention_job_name(label text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT 'pg_retention' OPERATOR(pg_catalog.||) COALESCE(':' OPERATOR(pg_catalog.||) label, '') $$;

COMMENT ON TABLE retention_config IS 'pg_retention policies (configuration, kept by pg_dump); read it through the retention_policies view';
COMMENT ON TABLE cleanup_runs IS 'pg_retention run history: one row per run, with per-table counts, date ranges and any error';
COMMENT ON VIEW retention_policies IS 'pg_retention policies, readable: relation, kind, time column, retention, label, batch size, enabled, current cutoff, what becomes of whole partitions';
COMMENT ON FUNCTION retention_add_policy(regclass, name, interval, text, integer, boolean, boolean) IS 'Rows of relation whose time_column is older than now() - retain expire; their dependents go first';
COMMENT ON FUNCTION retention_add_orphan_policy(regclass, name, interval, text, boolean) IS 'Rows of relation that nothing references and whose time_column is older than now() - grace are deleted after the expirations';
COMMENT ON FUNCTION retention_alter_policy(regclass, interval, text, integer, boolean, text, text[]) IS 'Changes the given settings of a policy (NULL keeps a setting; reset clears label or batch_size)';
COMMENT ON FUNCTION retention_set_partition_action(regclass, text, name) IS 'What the expire policy of a table partitioned by its time column does with partitions wholly older than the cutoff: drop (default), or detach and keep them (in schema, when given)';
COMMENT ON FUNCTION retention_pause(regclass, boolean) IS 'Disables the policies of a table without removing them';
COMMENT ON FUNCTION retention_resume(regclass, boolean) IS 'Enables the policies of a table again';
COMMENT ON FUNCTION retention_remove_policy(regclass, text, boolean) IS 'Removes the policies of a table (of one kind, or all)';
COMMENT ON FUNCTION retention_stats(text, boolean) IS 'Per policy: rows (estimate, or exact), expired rows, time range, size, cutoff, missing indexes, last run; for a policy that cannot run, why';
COMMENT ON FUNCTION retention_partitions(text) IS 'Per expire policy on a partitioned table: its partitions, bounds, estimated rows, size, and what the next run does with each';
COMMENT ON FUNCTION retention_preview(text) IS 'What the next run deletes, table by table in the order it deletes them';
COMMENT ON FUNCTION retention_execute(integer, text) IS 'Runs the enabled policies now in batches, children first, in the caller''s transaction; returns the history row';
COMMENT ON PROCEDURE retention_run(integer, text, bigint, interval, interval, interval, text, real) IS 'Runs the enabled policies, committing after every batch (the path to schedule); caps default to the pg_retention.* settings';
COMMENT ON FUNCTION retention_schedule(text, integer, text, bigint, interval, interval, interval, real) IS 'Schedules CALL retention_run() with pg_cron (one job per label; scheduling again updates it, keeping what is not given); returns the job id';
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

-- ---------------------------------------------------------------------------
-- New in 0.5.0 (the upgrade script sql/pg_retention--0.4.0--0.5.0.sql
-- creates the same objects).

-- What is scheduled and how it went, one row per pg_cron job of this
-- database that calls retention_run and that the caller may see (pg_cron
-- shows a role its own jobs, cleanup_runs its own runs). runs, failures and
-- skipped count the job's runs in the history (kept for
-- pg_retention.history_retention); cron_status / cron_message are pg_cron's
-- word on the job's last start (cron.job_run_details, when cron.log_run is
-- on): a job that fails before it runs (a missing function, say) shows there
-- only. PL/pgSQL: the cron schema need not exist when this is created.
CREATE FUNCTION retention_jobs()
RETURNS TABLE (
    jobid bigint,
    jobname text,
    label text,
    schedule text,
    active boolean,
    username text,
    command text,
    runs bigint,
    failures bigint,
    skipped bigint,
    last_run_id bigint,
    last_status text,
    last_started_at timestamptz,
    last_duration interval,
    last_deleted bigint,
    last_stop_reason text,
    last_error text,
    last_success_at timestamptz,
    cron_status text,
    cron_message text
)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', pg_catalog.current_database()
            USING ERRCODE = '55000', HINT = 'CREATE EXTENSION pg_cron';
    END IF;
    IF NOT pg_catalog.has_schema_privilege('cron', 'USAGE') THEN
        RAISE EXCEPTION 'role % may not use schema cron (pg_cron)', CURRENT_USER
            USING ERRCODE = '42501',
                  HINT = 'A superuser grants it: GRANT USAGE ON SCHEMA cron TO the role; pg_cron then lets it schedule and see its own jobs.';
    END IF;
    RETURN QUERY
    WITH jobs AS (
        SELECT j.jobid::pg_catalog.int8 AS id, j.jobname::pg_catalog.text AS name, j.schedule::pg_catalog.text AS sched,
               j.active AS on_, j.username::pg_catalog.text AS who, j.command::pg_catalog.text AS cmd,
               CASE WHEN j.jobname::pg_catalog.text OPERATOR(pg_catalog.=) 'pg_retention' THEN NULL
                    WHEN j.jobname::pg_catalog.text OPERATOR(pg_catalog.^@) 'pg_retention:'
                    THEN pg_catalog.substr(j.jobname::pg_catalog.text, 14)
                    ELSE @extschema@._retention_job_argument(j.command, 'label') END AS lbl
        FROM cron.job j
        WHERE j.command OPERATOR(pg_catalog.~) 'retention_run'
          AND j.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
    )
    SELECT jobs.id, jobs.name, jobs.lbl, jobs.sched, jobs.on_, jobs.who, jobs.cmd,
           h.runs, h.failures, h.skipped,
           l.id, l.status, pg_catalog.date_trunc('second', l.started_at),
           pg_catalog.date_trunc('milliseconds', l.duration), l.total_deleted, l.stop_reason, l.error,
           pg_catalog.date_trunc('second', h.last_success),
           d.status, d.return_message
    FROM jobs
    LEFT JOIN LATERAL (
        SELECT pg_catalog.count(*) AS runs,
               pg_catalog.count(*) FILTER (WHERE r.status OPERATOR(pg_catalog.=) ANY ('{failed,cancelled,abandoned}')) AS failures,
               pg_catalog.count(*) FILTER (WHERE r.status OPERATOR(pg_catalog.=) 'skipped') AS skipped,
               pg_catalog.max(r.finished_at) FILTER (WHERE r.status OPERATOR(pg_catalog.=) 'succeeded') AS last_success
        FROM @extschema@.cleanup_runs r
        WHERE r.origin OPERATOR(pg_catalog.=) 'pg_cron'
          AND r.started_by::pg_catalog.text OPERATOR(pg_catalog.=) jobs.who
          AND (r.label OPERATOR(pg_catalog.=) jobs.lbl OR (r.label IS NULL AND jobs.lbl IS NULL))
    ) h ON true
    LEFT JOIN LATERAL (
        SELECT r.* FROM @extschema@.cleanup_runs r
        WHERE r.origin OPERATOR(pg_catalog.=) 'pg_cron'
          AND r.started_by::pg_catalog.text OPERATOR(pg_catalog.=) jobs.who
          AND (r.label OPERATOR(pg_catalog.=) jobs.lbl OR (r.label IS NULL AND jobs.lbl IS NULL))
        ORDER BY r.id DESC LIMIT 1
    ) l ON true
    LEFT JOIN LATERAL (
        SELECT x.status::pg_catalog.text, x.return_message::pg_catalog.text FROM cron.job_run_details x
        WHERE x.jobid OPERATOR(pg_catalog.=) jobs.id
        ORDER BY x.runid DESC LIMIT 1
    ) d ON true
    ORDER BY jobs.id;
END
$$;

-- The history, narrow enough for psql: one row per run, times to the
-- second, durations to the millisecond; note is the error, or why the run
-- stopped early. security_invoker: the reader's row-level security on
-- cleanup_runs applies (a role reads the runs it started).
CREATE VIEW retention_history WITH (security_invoker = true) AS
SELECT r.id,
       pg_catalog.date_trunc('second', r.started_at) AS started_at,
       r.label,
       r.origin,
       r.status,
       pg_catalog.date_trunc('milliseconds', r.duration) AS duration,
       r.total_deleted AS deleted,
       pg_catalog.jsonb_array_length(r.tables) AS tables,
       COALESCE(r.error, r.stop_reason) AS note
FROM @extschema@.cleanup_runs r;

-- One row per table per run (as cron.job_run_details has one per job run),
-- in the order the run deleted from them.
CREATE VIEW retention_history_tables WITH (security_invoker = true) AS
SELECT r.id AS run_id,
       pg_catalog.date_trunc('second', r.started_at) AS started_at,
       r.label,
       r.status,
       t.step::pg_catalog.int4 AS step,
       t.entry OPERATOR(pg_catalog.->>) 'relation' AS relation,
       (t.entry OPERATOR(pg_catalog.->>) 'deleted')::pg_catalog.int8 AS deleted,
       pg_catalog.date_trunc('second', (t.entry OPERATOR(pg_catalog.->>) 'oldest')::pg_catalog.timestamptz) AS oldest,
       pg_catalog.date_trunc('second', (t.entry OPERATOR(pg_catalog.->>) 'newest')::pg_catalog.timestamptz) AS newest,
       t.entry OPERATOR(pg_catalog.->>) 'partition' AS partition
FROM @extschema@.cleanup_runs r,
     pg_catalog.jsonb_array_elements(r.tables) WITH ORDINALITY AS t(entry, step);

-- Runs in progress, as pg_stat_progress_* shows maintenance commands. A
-- CALL retention_run commits its history row after every batch, so another
-- session sees it move; retention_execute's row is its own transaction's
-- until it commits. expected_rows: the planner's estimate, at the start, of
-- the policies' own expired rows (dependents come on top); done_rows: the
-- rows deleted from the policies' own tables so far.
CREATE VIEW retention_progress WITH (security_invoker = true) AS
SELECT r.id AS run_id,
       r.backend_pid AS pid,
       r.label,
       r.origin,
       r.started_by,
       pg_catalog.date_trunc('second', r.started_at) AS started_at,
       pg_catalog.date_trunc('second', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) r.started_at) AS elapsed,
       r.total_deleted AS deleted,
       r.tables OPERATOR(pg_catalog.->) -1 OPERATOR(pg_catalog.->>) 'relation' AS current_table,
       p.expected AS expected_rows,
       p.done AS done_rows,
       CASE WHEN p.expected OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.round(LEAST(100, 100.0 OPERATOR(pg_catalog.*) p.done OPERATOR(pg_catalog./) p.expected), 1) END AS percent,
       CASE WHEN p.done OPERATOR(pg_catalog.>) 0 AND p.expected OPERATOR(pg_catalog.>) p.done
            THEN pg_catalog.date_trunc('second', (r.finished_at OPERATOR(pg_catalog.-) r.started_at)
                 OPERATOR(pg_catalog.*) ((p.expected OPERATOR(pg_catalog.-) p.done)::pg_catalog.float8 OPERATOR(pg_catalog./) p.done)) END AS eta,
       pg_catalog.date_trunc('milliseconds', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) r.finished_at) AS since_last_batch
FROM @extschema@.cleanup_runs r,
     LATERAL (
         SELECT CASE WHEN pg_catalog.sum((pol OPERATOR(pg_catalog.->>) 'expected_rows')::pg_catalog.int8) OPERATOR(pg_catalog.>) 0
                     THEN pg_catalog.sum((pol OPERATOR(pg_catalog.->>) 'expected_rows')::pg_catalog.int8)::pg_catalog.int8 END AS expected,
                COALESCE(pg_catalog.sum((SELECT pg_catalog.sum((t OPERATOR(pg_catalog.->>) 'deleted')::pg_catalog.int8)
                                           FROM pg_catalog.jsonb_array_elements(r.tables) t
                                          WHERE (t OPERATOR(pg_catalog.->>) 'relid') OPERATOR(pg_catalog.=) (pol OPERATOR(pg_catalog.->>) 'relid'))), 0)::pg_catalog.int8
                OPERATOR(pg_catalog.+)
                -- Partitions removed whole: rows of the policies' own tables.
                COALESCE((SELECT pg_catalog.sum((t OPERATOR(pg_catalog.->>) 'deleted')::pg_catalog.int8)
                            FROM pg_catalog.jsonb_array_elements(r.tables) t
                           WHERE t OPERATOR(pg_catalog.?) 'partition'), 0)::pg_catalog.int8 AS done
         FROM pg_catalog.jsonb_array_elements(r.policies) pol
     ) p
WHERE r.status OPERATOR(pg_catalog.=) 'running';

GRANT SELECT ON retention_history, retention_history_tables, retention_progress TO PUBLIC;

COMMENT ON FUNCTION retention_jobs() IS 'pg_cron jobs that call retention_run: schedule, command, runs, failures, skipped runs, the last run and the last success';
COMMENT ON VIEW retention_history IS 'cleanup_runs, one narrow row per run: start, label, status, duration, rows deleted, tables, error or stop reason';
COMMENT ON VIEW retention_history_tables IS 'cleanup_runs, one row per table per run: rows deleted, oldest and newest, what became of a whole partition';
COMMENT ON VIEW retention_progress IS 'Runs in progress: elapsed, rows deleted, current table, expected rows, percent, ETA';
COMMENT ON FUNCTION _retention_existing_policy(regclass, text) IS 'internal: if_not_exists of retention_add_policy / retention_add_orphan_policy';
COMMENT ON FUNCTION _retention_job_argument(text, text) IS 'internal: an argument of a job command written by retention_schedule';
COMMENT ON FUNCTION _retention_alter_policy_reset(oid, text, interval, text, integer, boolean, text[]) IS 'internal: use retention_alter_policy';

-- Every column of the two tables says what it holds (\d+ shows them).
COMMENT ON COLUMN retention_config.id IS 'policy id';
COMMENT ON COLUMN retention_config.relid IS 'the table (stored by oid: follows renames; its policies go when it is dropped)';
COMMENT ON COLUMN retention_config.kind IS 'expire: rows older than the cutoff go; orphan: unreferenced rows older than the cutoff go';
COMMENT ON COLUMN retention_config.time_column IS 'the timestamptz, timestamp or date column the cutoff applies to';
COMMENT ON COLUMN retention_config.retain IS 'expire: how long rows are kept; orphan: the grace period. cutoff = now() - retain at the start of a run';
COMMENT ON COLUMN retention_config.label IS 'runs and schedules with this label run this policy; NULL: runs without a label only';
COMMENT ON COLUMN retention_config.batch_size IS 'root rows per batch for this policy; NULL: the run''s batch_size';
COMMENT ON COLUMN retention_config.enabled IS 'false: paused (retention_pause), runs leave it alone';
COMMENT ON COLUMN retention_config.created_at IS 'when the policy was added';
COMMENT ON COLUMN retention_config.partition_action IS 'drop or detach: what becomes of a partition wholly older than the cutoff';
COMMENT ON COLUMN retention_config.partition_schema IS 'detach: the schema detached partitions are moved to (NULL: left where they are)';
COMMENT ON COLUMN cleanup_runs.id IS 'run id';
COMMENT ON COLUMN cleanup_runs.started_at IS 'when the run started';
COMMENT ON COLUMN cleanup_runs.finished_at IS 'when it ended; while running, when it last committed a batch';
COMMENT ON COLUMN cleanup_runs.duration IS 'finished_at - started_at';
COMMENT ON COLUMN cleanup_runs.status IS 'running, succeeded, stopped (a cap), failed, cancelled, skipped (another run held its policies), abandoned (its backend died)';
COMMENT ON COLUMN cleanup_runs.origin IS 'retention_execute, retention_run or pg_cron';
COMMENT ON COLUMN cleanup_runs.started_by IS 'the role that started the run';
COMMENT ON COLUMN cleanup_runs.backend_pid IS 'the backend that ran it';
COMMENT ON COLUMN cleanup_runs.label IS 'the run''s label argument';
COMMENT ON COLUMN cleanup_runs.batch_size IS 'the run''s batch_size argument';
COMMENT ON COLUMN cleanup_runs.total_deleted IS 'rows deleted, all tables';
COMMENT ON COLUMN cleanup_runs.tables IS 'per table, in deletion order: relation, relid, deleted, oldest, newest (and partition, bytes for a partition removed whole); one row each in retention_history_tables';
COMMENT ON COLUMN cleanup_runs.policies IS 'per policy: policy_id, relation, relid, kind, the cutoff fixed at the start, expected_rows (planner estimate)';
COMMENT ON COLUMN cleanup_runs.stop_reason IS 'why the run stopped before the end, or what it left for the next run';
COMMENT ON COLUMN cleanup_runs.lock_timeouts IS 'batches rolled back because a lock was not granted within lock_timeout';
COMMENT ON COLUMN cleanup_runs.error IS 'why it failed: the message (no row values)';
COMMENT ON COLUMN cleanup_runs.sqlstate IS 'the SQLSTATE of error';

-- Policies as code (docs/reference.md, "Policies as code"). The export
-- names tables schema-qualified and quoted, as regclass input reads them.
CREATE FUNCTION retention_export(label text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
SELECT pg_catalog.jsonb_build_object('version', 1, 'policies', COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'table', pg_catalog.format('%I.%I', n.nspname, c.relname),
           'kind', p.kind,
           'time_column', p.time_column,
           'retain', p.retain::pg_catalog.text,
           'label', p.label,
           'batch_size', p.batch_size,
           'enabled', p.enabled,
           'partition_action', CASE WHEN p.kind OPERATOR(pg_catalog.=) 'expire' THEN p.partition_action END,
           'partition_schema', p.partition_schema) ORDER BY n.nspname, c.relname, p.kind), '[]'::pg_catalog.jsonb))
FROM @extschema@.retention_config p
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relid::pg_catalog.oid
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE $1 IS NULL OR p.label OPERATOR(pg_catalog.=) $1
$$;

-- dry_run (the default) only says what applying would change.
CREATE FUNCTION retention_apply(declaration jsonb, dry_run boolean DEFAULT true, prune boolean DEFAULT false)
RETURNS TABLE (action text, relation text, kind text, changes text)
LANGUAGE sql VOLATILE
AS $$ SELECT * FROM @extschema@._retention_apply($1, $2, $3, pg_catalog.current_schemas(true)::pg_catalog.text[]) $$;

COMMENT ON FUNCTION retention_export(text) IS 'The policies (of a label) as a JSON declaration that retention_apply reads';
COMMENT ON FUNCTION retention_apply(jsonb, boolean, boolean) IS 'Makes the policies what the declaration says (dry_run, the default: only says what would change; prune: removes undeclared policies)';
COMMENT ON FUNCTION _retention_apply(jsonb, boolean, boolean, text[]) IS 'internal: use retention_apply';

-- 0.6.0: the row budget of a heap sweep's batch (src/sweep_budget.rs), one
-- function per time type a policy accepts: the run's DELETEs call them with
-- arguments cast to exactly these types. In pg_catalog, where only
-- superusers create or rename: no other function can take the call. Table
-- owners call them inside those DELETEs, so they keep EXECUTE for PUBLIC;
-- outside a run's statement they admit nothing. COST 1000: the call comes
-- after every other condition of the DELETE.
CREATE FUNCTION pg_catalog._retention_sweep_take("row" tid, "time" timestamptz) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c AS 'MODULE_PATHNAME', 'sweep_take_timestamptz_wrapper';
CREATE FUNCTION pg_catalog._retention_sweep_take("row" tid, "time" timestamp) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c AS 'MODULE_PATHNAME', 'sweep_take_timestamp_wrapper';
CREATE FUNCTION pg_catalog._retention_sweep_take("row" tid, "time" date) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c AS 'MODULE_PATHNAME', 'sweep_take_date_wrapper';
COMMENT ON FUNCTION pg_catalog._retention_sweep_take(tid, timestamptz) IS 'internal: admits a heap sweep''s rows up to its batch size, inside a run''s DELETE';
COMMENT ON FUNCTION pg_catalog._retention_sweep_take(tid, timestamp) IS 'internal: admits a heap sweep''s rows up to its batch size, inside a run''s DELETE';
COMMENT ON FUNCTION pg_catalog._retention_sweep_take(tid, date) IS 'internal: admits a heap sweep''s rows up to its batch size, inside a run''s DELETE';
