-- pgbench script: a live writer adding a snapshot with 4 market odds, now,
-- to the partitioned variant (bench/partitions.sql).
\set ev random(1, :live_events)
WITH s AS (
    INSERT INTO odds_snapshots (id, event_id, bookmaker, captured_at)
    VALUES (nextval('bench_ids'), :ev, 'live', now())
    RETURNING id, captured_at)
INSERT INTO market_odds (id, snapshot_id, snapshot_at, market, price)
    SELECT nextval('bench_ids'), s.id, s.captured_at, 'm' || m, 2.5 FROM s, generate_series(1, 4) m;
