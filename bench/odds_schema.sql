-- The sports-odds schema of SPEC.md: own and competitor chains,
--   tournaments <- events <- odds_snapshots <- market_odds
-- and a generator for data at a chosen scale. Shared by the demo, the
-- integration tests and the benchmark.
--
-- Times are placed so that no row is within 30 minutes of a cutoff that is a
-- whole number of hours from now(): events kick off at -N days -12 h,
-- snapshots are captured 30 min + 3 h*k before kickoff. Counts computed in
-- plain SQL a few minutes apart therefore agree with the run's.

CREATE OR REPLACE FUNCTION odds_create_schema(prefix text DEFAULT '') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE %I (
        id bigint PRIMARY KEY,
        name text NOT NULL,
        created_at timestamptz NOT NULL)', prefix || 'tournaments');
    EXECUTE format('CREATE TABLE %I (
        id bigint PRIMARY KEY,
        tournament_id bigint NOT NULL REFERENCES %I (id),
        name text NOT NULL,
        kickoff timestamptz NOT NULL)', prefix || 'events', prefix || 'tournaments');
    EXECUTE format('CREATE TABLE %I (
        id bigint PRIMARY KEY,
        event_id bigint NOT NULL REFERENCES %I (id),
        bookmaker text NOT NULL,
        captured_at timestamptz NOT NULL)', prefix || 'odds_snapshots', prefix || 'events');
    EXECUTE format('CREATE TABLE %I (
        id bigint PRIMARY KEY,
        snapshot_id bigint NOT NULL REFERENCES %I (id) ON DELETE CASCADE,
        market text NOT NULL,
        price numeric(8,3) NOT NULL)', prefix || 'market_odds', prefix || 'odds_snapshots');
    EXECUTE format('CREATE INDEX ON %I (tournament_id)', prefix || 'events');
    EXECUTE format('CREATE INDEX ON %I (kickoff)', prefix || 'events');
    EXECUTE format('CREATE INDEX ON %I (event_id)', prefix || 'odds_snapshots');
    EXECUTE format('CREATE INDEX ON %I (captured_at)', prefix || 'odds_snapshots');
    EXECUTE format('CREATE INDEX ON %I (snapshot_id)', prefix || 'market_odds');
END
$$;

-- Rows are stored in the order a live feed writes them: snapshots by capture
-- time, each snapshot's market odds together with it.
--
-- scale 1: 300 events, 10 snapshots per event, 8 market odds per snapshot
-- (27,330 rows per chain). Events spread over the last 120 days; tournaments
-- are old, plus a few made this hour with no event yet (inside any grace).
CREATE OR REPLACE FUNCTION odds_generate(scale integer, prefix text DEFAULT '') RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n_events bigint := 300 * scale;
    n_tournaments bigint := 30 * scale;
    snapshots_per_event int := 10;
    odds_per_snapshot int := 8;
    base timestamptz := date_trunc('hour', now());
BEGIN
    EXECUTE format('INSERT INTO %I (id, name, created_at)
        SELECT t, ''tournament '' || t, $1 - interval ''200 days''
        FROM generate_series(1, $2) t', prefix || 'tournaments')
        USING base, n_tournaments;
    -- Brand-new tournaments, no events yet: an orphan rule must not take them.
    EXECUTE format('INSERT INTO %I (id, name, created_at)
        SELECT $2 + t, ''new tournament '' || t, $1 - interval ''10 minutes''
        FROM generate_series(1, 3) t', prefix || 'tournaments')
        USING base, n_tournaments;
    -- Events come in blocks of 10 per tournament, on 10 consecutive days from
    -- a day that moves by 13 per block: a tournament whose days are all old
    -- becomes an orphan once its events expire.
    EXECUTE format('INSERT INTO %I (id, tournament_id, name, kickoff)
        SELECT e, ((e - 1) / 10) %% $3 + 1, ''event '' || e,
               $1 - ((((e - 1) / 10) * 13 + (e - 1) %% 10) %% 120) * interval ''1 day'' - interval ''12 hours''
        FROM generate_series(1, $2) e', prefix || 'events')
        USING base, n_events, n_tournaments;
    -- Snapshot ids come from the feed's sequence: in capture order.
    EXECUTE format('INSERT INTO %I (id, event_id, bookmaker, captured_at)
        SELECT row_number() OVER (ORDER BY s.captured_at, s.event_id, s.k), s.event_id, ''book '' || (s.k %% 3), s.captured_at
        FROM (SELECT e.id AS event_id, k, e.kickoff - interval ''30 minutes'' - k * interval ''3 hours'' AS captured_at
              FROM %I e, generate_series(1, $1) k) s
        ORDER BY 1', prefix || 'odds_snapshots', prefix || 'events')
        USING snapshots_per_event;
    EXECUTE format('INSERT INTO %I (id, snapshot_id, market, price)
        SELECT (s.id - 1) * $1 + m, s.id, ''market '' || m, 1 + ((s.id * m) %% 500) / 100.0
        FROM %I s, generate_series(1, $1) m
        ORDER BY s.captured_at, s.id, m', prefix || 'market_odds', prefix || 'odds_snapshots')
        USING odds_per_snapshot;
    EXECUTE format('ANALYZE %I, %I, %I, %I', prefix || 'tournaments', prefix || 'events',
                   prefix || 'odds_snapshots', prefix || 'market_odds');
END
$$;
