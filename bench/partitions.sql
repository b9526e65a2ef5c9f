-- The partitioned variant of the odds schema, for bench/partitions.py:
-- odds_snapshots and market_odds partitioned by capture day (UTC), 60 days
-- back and 3 ahead, each with a default partition; market_odds references
-- its snapshot (ON DELETE CASCADE) through the capture time, so their
-- partitions line up. part_create(scale): 2,000 * scale snapshots a day,
-- spread over the day (none in the hour after the cutoff), 4 market odds
-- each; 1,000 live events. Each time column is indexed, as the policies
-- advise.

CREATE TABLE events (id bigint PRIMARY KEY, kickoff timestamptz NOT NULL);
CREATE TABLE odds_snapshots (
    id bigint NOT NULL,
    event_id bigint NOT NULL REFERENCES events,
    bookmaker text NOT NULL,
    captured_at timestamptz NOT NULL,
    PRIMARY KEY (id, captured_at)
) PARTITION BY RANGE (captured_at);
CREATE TABLE market_odds (
    id bigint NOT NULL,
    snapshot_id bigint NOT NULL,
    snapshot_at timestamptz NOT NULL,
    market text NOT NULL,
    price numeric(8, 3) NOT NULL,
    PRIMARY KEY (id, snapshot_at),
    FOREIGN KEY (snapshot_id, snapshot_at) REFERENCES odds_snapshots ON DELETE CASCADE
) PARTITION BY RANGE (snapshot_at);
CREATE INDEX ON odds_snapshots (event_id);
CREATE INDEX ON odds_snapshots (captured_at);
CREATE INDEX ON market_odds (snapshot_at);
CREATE INDEX ON market_odds (snapshot_id, snapshot_at);
CREATE SEQUENCE bench_ids START 100000000;

CREATE FUNCTION part_create(scale float8) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    today timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    per_day int := greatest(1, (2000 * scale)::int);
    d int;
BEGIN
    FOR d IN -60..3 LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF odds_snapshots FOR VALUES FROM (%L) TO (%L)',
                       'odds_snapshots_' || to_char(today + d * interval '1 day', 'YYYYMMDD'),
                       today + d * interval '1 day', today + (d + 1) * interval '1 day');
        EXECUTE format('CREATE TABLE %I PARTITION OF market_odds FOR VALUES FROM (%L) TO (%L)',
                       'market_odds_' || to_char(today + d * interval '1 day', 'YYYYMMDD'),
                       today + d * interval '1 day', today + (d + 1) * interval '1 day');
    END LOOP;
    CREATE TABLE odds_snapshots_default PARTITION OF odds_snapshots DEFAULT;
    CREATE TABLE market_odds_default PARTITION OF market_odds DEFAULT;
    INSERT INTO events SELECT g, now() + interval '1 day' FROM generate_series(1, 1000) g;
    INSERT INTO odds_snapshots
        SELECT g, 1 + g % 1000, 'b' || g % 7,
               today - interval '60 days' + (g - 1) * (interval '1 day' / per_day)
        FROM generate_series(1, 60 * per_day) g
        WHERE today - interval '60 days' + (g - 1) * (interval '1 day' / per_day) < now()
          -- Nothing within an hour after the cutoff: methods run minutes
          -- apart delete the same rows.
          AND today - interval '60 days' + (g - 1) * (interval '1 day' / per_day)
              NOT BETWEEN now() - interval '30 days' AND now() - interval '30 days' + interval '1 hour';
    INSERT INTO market_odds
        SELECT s.id * 4 + m, s.id, s.captured_at, 'm' || m, 1.5 + m
        FROM odds_snapshots s, generate_series(0, 3) m;
    PERFORM retention_add_policy('market_odds', 'snapshot_at', '30 days', 'part');
    PERFORM retention_add_policy('odds_snapshots', 'captured_at', '30 days', 'part');
END $$;
