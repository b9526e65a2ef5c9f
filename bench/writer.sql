-- pgbench script: a live writer adding a snapshot with 8 market odds to a
-- live event, as the odds feed does.
\set ev random(1, :live_events)
BEGIN;
INSERT INTO odds_snapshots (id, event_id, bookmaker, captured_at)
    SELECT nextval('bench_ids'), event_id, 'live', now() FROM bench_live_events WHERE n = :ev
    RETURNING id AS snapshot_id \gset
INSERT INTO market_odds (id, snapshot_id, market, price)
    SELECT nextval('bench_ids'), :snapshot_id, 'm' || m, 2.5 FROM generate_series(1, 8) m;
END;
