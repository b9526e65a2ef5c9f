-- pg_retention 0.5.0 -> 0.6.0: a heap sweep's batch in one statement
-- (issue 17). Written by hand; mirrors the functions pgrx generates from
-- src/sweep_budget.rs and their comments in sql/api.sql. Nothing else
-- changes: policies, history and pg_cron jobs are kept as they are.
\echo Use "ALTER EXTENSION pg_retention UPDATE TO '0.6.0'" to load this file. \quit

-- One function per time type a policy accepts: the run's DELETEs call them
-- with arguments cast to exactly these types. Table owners call them inside
-- those DELETEs, so they keep EXECUTE for PUBLIC; outside a run's statement
-- they admit nothing.
CREATE FUNCTION @extschema@."_retention_sweep_take"("row" tid, "time" timestamp with time zone) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c
AS 'MODULE_PATHNAME', 'sweep_take_timestamptz_wrapper';

CREATE FUNCTION @extschema@."_retention_sweep_take"("row" tid, "time" timestamp) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c
AS 'MODULE_PATHNAME', 'sweep_take_timestamp_wrapper';

CREATE FUNCTION @extschema@."_retention_sweep_take"("row" tid, "time" date) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c
AS 'MODULE_PATHNAME', 'sweep_take_date_wrapper';

COMMENT ON FUNCTION @extschema@._retention_sweep_take(tid, timestamptz) IS 'internal: admits a heap sweep''s rows up to its batch size, inside a run''s DELETE';
COMMENT ON FUNCTION @extschema@._retention_sweep_take(tid, timestamp) IS 'internal: admits a heap sweep''s rows up to its batch size, inside a run''s DELETE';
COMMENT ON FUNCTION @extschema@._retention_sweep_take(tid, date) IS 'internal: admits a heap sweep''s rows up to its batch size, inside a run''s DELETE';
