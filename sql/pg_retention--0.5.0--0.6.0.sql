-- pg_retention 0.5.0 -> 0.6.0: a heap sweep's batch in one statement
-- (issue 17). Written by hand; mirrors the end of sql/api.sql. Nothing else
-- changes: policies, history and pg_cron jobs are kept as they are.
\echo Use "ALTER EXTENSION pg_retention UPDATE TO '0.6.0'" to load this file. \quit

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
