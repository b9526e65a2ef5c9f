#!/usr/bin/env bash
# The README's "## Quick start" runs as written: its one ```sql block, taken
# from README.md at every run, goes through `psql -v ON_ERROR_STOP=1` over
# the demo's sports-odds tables (bench/odds_schema.sql, scale 1), and what it
# did is checked against counts computed in plain SQL beforehand.
#
# The block's retention_schedule() needs pg_cron in its database, and pg_cron
# can only be created in cron.database_name ('postgres' in
# scripts/cluster.sh): the test runs there. It refuses to start when that
# database already has pg_retention, a table or function of the odds schema,
# or a pg_cron job named pg_retention, so it never touches another test's
# objects; it creates pg_cron when missing, and on the way out (passed or
# failed) removes the job, the tables, the functions, the extension and the
# pg_cron it created. scripts/test.sh runs it after the integration tests,
# which use the same database.
#
#   eval "$(bash scripts/cluster.sh env test 55432)"; bash tests/clients/quick_start.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

NAME=quick_start.sh
DB=postgres

fail() {
  echo "$NAME: FAIL: $*" >&2
  exit 1
}
expect() {
  if [ "$1" != "$2" ]; then
    fail "$3: expected '$2', got '$1'"
  fi
  echo "$NAME: ok: $3 = '$1'"
}
query() {
  psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "$1"
}

tmp=$(mktemp -d)
cleanup_db=no
created_cron=no
cleanup() {
  if [ "$cleanup_db" = yes ]; then
    psql -X -q -d "$DB" >/dev/null 2>&1 <<SQL || echo "$NAME: cleanup of database $DB failed" >&2
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'pg_retention';
DROP EXTENSION IF EXISTS pg_retention CASCADE;
DROP TABLE IF EXISTS market_odds, odds_snapshots, events, tournaments;
DROP FUNCTION IF EXISTS odds_create_schema(text), odds_generate(integer, text);
$([ "$created_cron" = yes ] && echo "DROP EXTENSION IF EXISTS pg_cron;")
SQL
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The block: the first ```sql ... ``` of the section "## Quick start", which
# must have exactly one.
awk '
  /^## / { section = ($0 == "## Quick start"); if (section) found = 1; next }
  section && !inside && /^```sql$/ { inside = 1; blocks++; next }
  section && inside && /^```$/ { inside = 0; next }
  section && inside && blocks == 1 { print }
  END {
    if (!found) { print "README.md has no \"## Quick start\" section" > "/dev/stderr"; exit 1 }
    if (blocks != 1) { print "README.md'"'"'s Quick start has " blocks + 0 " sql blocks, not one" > "/dev/stderr"; exit 1 }
    if (inside) { print "README.md'"'"'s Quick start sql block is not closed" > "/dev/stderr"; exit 1 }
  }' README.md >"$tmp/quick_start.sql" || fail "could not take the Quick start block from README.md"
echo "$NAME: the README's Quick start block ($(wc -l <"$tmp/quick_start.sql") lines)"

expect "$(query "SHOW cron.database_name")" "$DB" "cron.database_name of the cluster"
taken=$(query "SELECT concat_ws(', ',
    CASE WHEN EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_retention') THEN 'extension pg_retention' END,
    CASE WHEN to_regclass('tournaments') IS NOT NULL OR to_regclass('events') IS NOT NULL
           OR to_regclass('odds_snapshots') IS NOT NULL OR to_regclass('market_odds') IS NOT NULL
         THEN 'a table of the odds schema' END,
    CASE WHEN to_regprocedure('odds_create_schema(text)') IS NOT NULL
           OR to_regprocedure('odds_generate(integer,text)') IS NOT NULL
         THEN 'a function of bench/odds_schema.sql' END)")
if [ -z "$taken" ] && [ "$(query "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'")" = 1 ]; then
  if [ "$(query "SELECT count(*) FROM cron.job WHERE jobname = 'pg_retention'")" != 0 ]; then
    taken="a pg_cron job named pg_retention"
  fi
fi
if [ -n "$taken" ]; then
  fail "database $DB already has $taken: not touching it (drop it, or use a fresh cluster)"
fi
cleanup_db=yes
if [ "$(query "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'")" = 0 ]; then
  query "CREATE EXTENSION pg_cron"
  created_cron=yes
fi

psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f bench/odds_schema.sql
query "SELECT odds_create_schema(); SELECT odds_generate(1);" >/dev/null

# What the block's first run must delete, in plain SQL: events kicked off
# more than 60 days ago; snapshots captured more than 30 days ago or of those
# events; the market odds of those snapshots (ON DELETE CASCADE); tournaments
# made more than a day ago that no remaining event references.
read -r want_market want_snapshots want_events want_tournaments < <(query "
  WITH e AS (SELECT id FROM events WHERE kickoff < now() - interval '60 days'),
       s AS (SELECT id FROM odds_snapshots
             WHERE captured_at < now() - interval '30 days' OR event_id IN (SELECT id FROM e)),
       t AS (SELECT id FROM tournaments x
             WHERE created_at < now() - interval '1 day'
               AND NOT EXISTS (SELECT FROM events y WHERE y.tournament_id = x.id
                                                     AND y.id NOT IN (SELECT id FROM e)))
  SELECT concat_ws(' ',
    (SELECT count(*) FROM market_odds WHERE snapshot_id IN (SELECT id FROM s)),
    (SELECT count(*) FROM s), (SELECT count(*) FROM e), (SELECT count(*) FROM t))")
want_total=$((want_market + want_snapshots + want_events + want_tournaments))
read -r rows_market rows_snapshots rows_events rows_tournaments < <(query "
  SELECT concat_ws(' ', (SELECT count(*) FROM market_odds), (SELECT count(*) FROM odds_snapshots),
                        (SELECT count(*) FROM events), (SELECT count(*) FROM tournaments))")
echo "$NAME: expecting $want_market market_odds, $want_snapshots odds_snapshots, $want_events events, $want_tournaments tournaments"
if [ "$want_total" = 0 ] || [ "$want_tournaments" = 0 ]; then
  fail "odds_generate(1) made nothing to expire: the test would show nothing"
fi

# The block itself, as written.
if ! psql -X -v ON_ERROR_STOP=1 -d "$DB" -f "$tmp/quick_start.sql" >"$tmp/out" 2>&1; then
  cat "$tmp/out" >&2
  fail "the README's Quick start block failed (its output above)"
fi
echo "$NAME: ok: the block ran with ON_ERROR_STOP=1 ($(wc -l <"$tmp/out") lines of output)"

expect "$(query "SELECT string_agg(concat_ws(' ', origin, status, total_deleted), ', ' ORDER BY id) FROM cleanup_runs")" \
  "retention_execute succeeded $want_total, retention_run succeeded 0" \
  "cleanup_runs (retention_execute, then CALL retention_run with nothing left)"
expect "$(query "SELECT string_agg(t->>'relation' || '=' || (t->>'deleted'), ' ' ORDER BY n)
                 FROM cleanup_runs, jsonb_array_elements(tables) WITH ORDINALITY AS x(t, n)
                 WHERE origin = 'retention_execute' AND (t->>'deleted')::bigint > 0")" \
  "public.market_odds=$want_market public.odds_snapshots=$want_snapshots public.events=$want_events public.tournaments=$want_tournaments" \
  "rows deleted per table, children first"
expect "$(query "SELECT concat_ws(' ', (SELECT count(*) FROM market_odds), (SELECT count(*) FROM odds_snapshots),
                                       (SELECT count(*) FROM events), (SELECT count(*) FROM tournaments))")" \
  "$((rows_market - want_market)) $((rows_snapshots - want_snapshots)) $((rows_events - want_events)) $((rows_tournaments - want_tournaments))" \
  "rows left in market_odds, odds_snapshots, events, tournaments"
expect "$(query "SELECT concat_ws('|', jobname, schedule, database, username, command LIKE 'CALL %retention_run(%')
                 FROM cron.job WHERE jobname = 'pg_retention'")" \
  "pg_retention|0 3 * * *|$DB|$(query "SELECT current_user")|t" "the pg_cron job retention_schedule('0 3 * * *') made"
expect "$(query "SELECT retention_unschedule()")" t "retention_unschedule() removes it"
expect "$(query "SELECT count(*) FROM cron.job WHERE jobname = 'pg_retention'")" 0 "pg_cron jobs named pg_retention left"
echo "$NAME: passed"
