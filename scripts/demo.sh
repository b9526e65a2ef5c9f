#!/usr/bin/env bash
# The demo: installs what is missing, builds and installs the extension,
# starts a local cluster (as the postgres system user), loads the sports-odds
# schema (plus a scrape-runs table) with generated data, and shows stats,
# preview, one run and the history in psql.
#
#   scripts/demo.sh [--scale N]     (default 1: about 55,000 rows in all)
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=${2:?--scale needs a number}; shift 2 ;;
    --scale=*) SCALE=${1#--scale=}; shift ;;
    *) echo "usage: scripts/demo.sh [--scale N]" >&2; exit 2 ;;
  esac
done
case "$SCALE" in ''|*[!0-9]*|0) echo "--scale must be a positive whole number" >&2; exit 2 ;; esac

export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/install-deps.sh

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
DEMO_PORT=${PG_RETENTION_DEMO_PORT:-55433}

echo "==> building and installing pg_retention (release)"
# A new inode: a running cluster (the tests', another demo) keeps its mapping.
rm -f "$("$PG_CONFIG" --pkglibdir)/pg_retention.so"
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null

echo "==> starting the demo cluster"
bash scripts/cluster.sh stop demo
bash scripts/cluster.sh start demo "$DEMO_PORT"
eval "$(bash scripts/cluster.sh env demo "$DEMO_PORT")"

psql_demo() { psql -X -q -v ON_ERROR_STOP=1 -d odds_demo "$@"; }

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS odds_demo WITH (FORCE)" -c "CREATE DATABASE odds_demo"
echo "==> loading the odds schema at scale $SCALE"
psql_demo -f bench/odds_schema.sql
psql_demo >/dev/null <<SQL
CREATE EXTENSION pg_retention;
SELECT odds_create_schema(), odds_create_schema('competitor_');
SELECT odds_generate($SCALE), odds_generate($SCALE, 'competitor_');
-- Scrape runs (own data only): each run scraped one event's odds on one day,
-- and each snapshot references the run that captured it. The full chain:
-- market_odds -> odds_snapshots -> scrape_runs -> events -> tournaments.
CREATE TABLE scrape_runs (
    id bigserial PRIMARY KEY,
    event_id bigint NOT NULL REFERENCES events (id),
    started_at timestamptz NOT NULL
);
INSERT INTO scrape_runs (event_id, started_at)
SELECT DISTINCT event_id, date_trunc('day', captured_at) FROM odds_snapshots ORDER BY 2, 1;
ALTER TABLE odds_snapshots ADD COLUMN scrape_run_id bigint;
UPDATE odds_snapshots s SET scrape_run_id = r.id FROM scrape_runs r
 WHERE r.event_id = s.event_id AND r.started_at = date_trunc('day', s.captured_at);
ALTER TABLE odds_snapshots ALTER COLUMN scrape_run_id SET NOT NULL,
    ADD FOREIGN KEY (scrape_run_id) REFERENCES scrape_runs (id);
CREATE INDEX ON odds_snapshots (scrape_run_id);
CREATE INDEX ON scrape_runs (event_id);
ANALYZE;
-- Own data: odds kept 30 days, matches 60 days; scrape runs no snapshot
-- references go after a day, as do orphaned tournaments.
SELECT retention_add_policy('odds_snapshots', 'captured_at', '30 days', 'own');
SELECT retention_add_policy('events', 'kickoff', '60 days', 'own');
SELECT retention_add_orphan_policy('scrape_runs', 'started_at', '1 day', 'own');
SELECT retention_add_orphan_policy('tournaments', 'created_at', '1 day', 'own');
-- Competitor data: odds kept 14 days, matches 45 days.
SELECT retention_add_policy('competitor_odds_snapshots', 'captured_at', '14 days', 'competitor');
SELECT retention_add_policy('competitor_events', 'kickoff', '45 days', 'competitor');
SELECT retention_add_orphan_policy('competitor_tournaments', 'created_at', '1 day', 'competitor');
SQL

psql_demo <<'SQL'
\echo
\echo '== policies'
SELECT id, relation, kind, time_column, retain, label FROM retention_policies ORDER BY id;
\echo '== retention_stats()'
SELECT relation, label, kind, total_rows, expired_rows, oldest::date, newest::date, total_size, time_column_indexed
FROM retention_stats() ORDER BY label, policy_id;
\echo '== retention_preview(): what the run will delete, in its order'
SELECT step, relation, rows_to_delete, oldest::date, newest::date, reason FROM retention_preview();
\echo '== CALL retention_run(1000): commits after every batch'
CALL retention_run(1000);
\echo '== retention_history: one row per run'
SELECT * FROM retention_history ORDER BY id;
\echo '== retention_history_tables: one row per table of the run, in the order it deleted'
SELECT run_id, step, relation, deleted, oldest::date, newest::date FROM retention_history_tables ORDER BY run_id, step;
\echo '== rows left per table'
SELECT 'tournaments' AS t, count(*) FROM tournaments UNION ALL SELECT 'events', count(*) FROM events
UNION ALL SELECT 'scrape_runs', count(*) FROM scrape_runs
UNION ALL SELECT 'odds_snapshots', count(*) FROM odds_snapshots UNION ALL SELECT 'market_odds', count(*) FROM market_odds
UNION ALL SELECT 'competitor_tournaments', count(*) FROM competitor_tournaments UNION ALL SELECT 'competitor_events', count(*) FROM competitor_events
UNION ALL SELECT 'competitor_odds_snapshots', count(*) FROM competitor_odds_snapshots UNION ALL SELECT 'competitor_market_odds', count(*) FROM competitor_market_odds;
\echo '== preview after the run (nothing left to delete)'
SELECT step, relation, rows_to_delete FROM retention_preview();
\echo '== retention_monitor (for dashboards)'
SELECT relation, label, kind, last_run_status, last_run_deleted, lag_rows, oldest_expired_age, total_size FROM retention_monitor;
\echo '== retention_label_totals'
SELECT * FROM retention_label_totals;
\echo '== retention_export(''own''): the policies as code (retention_apply reads it back)'
SELECT jsonb_pretty(retention_export('own'));
SQL

echo
echo "The demo cluster keeps running: $(bash scripts/cluster.sh env demo "$DEMO_PORT"); psql -d odds_demo"
echo "Stop it with: bash scripts/cluster.sh stop demo"
