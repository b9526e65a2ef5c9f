#!/usr/bin/env bash
# The demo: installs what is missing, builds and installs the extension,
# starts a local cluster (as the postgres system user), loads the sports-odds
# schema with generated data, and shows stats, preview, one run and the
# history in psql.
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
-- Own data: odds kept 30 days, matches 60 days; orphaned tournaments go after a day.
SELECT retention_add_policy('odds_snapshots', 'captured_at', '30 days', 'own');
SELECT retention_add_policy('events', 'kickoff', '60 days', 'own');
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
\echo '== retention_execute(1000)'
SELECT id, status, total_deleted, duration, batch_size FROM retention_execute(1000);
\echo '== cleanup_runs: per-table counts of the run'
SELECT r.id, t->>'relation' AS relation, (t->>'deleted')::bigint AS deleted,
       (t->>'oldest')::timestamptz::date AS oldest, (t->>'newest')::timestamptz::date AS newest
FROM cleanup_runs r, jsonb_array_elements(r.tables) t ORDER BY r.id, relation;
\echo '== rows left per table'
SELECT 'tournaments' AS t, count(*) FROM tournaments UNION ALL SELECT 'events', count(*) FROM events
UNION ALL SELECT 'odds_snapshots', count(*) FROM odds_snapshots UNION ALL SELECT 'market_odds', count(*) FROM market_odds
UNION ALL SELECT 'competitor_tournaments', count(*) FROM competitor_tournaments UNION ALL SELECT 'competitor_events', count(*) FROM competitor_events
UNION ALL SELECT 'competitor_odds_snapshots', count(*) FROM competitor_odds_snapshots UNION ALL SELECT 'competitor_market_odds', count(*) FROM competitor_market_odds;
\echo '== preview after the run (nothing left to delete)'
SELECT step, relation, rows_to_delete FROM retention_preview();
\echo '== retention_monitor (for dashboards)'
SELECT relation, label, kind, last_run_status, last_run_deleted, lag_rows, oldest_expired_age, total_size FROM retention_monitor;
\echo '== retention_label_totals'
SELECT * FROM retention_label_totals;
SQL

echo
echo "The demo cluster keeps running: $(bash scripts/cluster.sh env demo "$DEMO_PORT"); psql -d odds_demo"
echo "Stop it with: bash scripts/cluster.sh stop demo"
