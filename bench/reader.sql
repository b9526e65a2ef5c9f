-- pgbench script: an odds API reading a live event's latest snapshot with
-- its market odds.
\set ev random(1, :live_events)
SELECT m.market, m.price
  FROM odds_snapshots s JOIN market_odds m ON m.snapshot_id = s.id
 WHERE s.event_id = (SELECT event_id FROM bench_live_events WHERE n = :ev)
   AND s.captured_at = (SELECT max(captured_at) FROM odds_snapshots
                         WHERE event_id = (SELECT event_id FROM bench_live_events WHERE n = :ev));
