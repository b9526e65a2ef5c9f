#!/usr/bin/env bash
# docs/clients.md's psql examples, run against a test cluster.
#
# The lines between `[doc:NAME]` and `[/doc:NAME]` are quoted in
# docs/clients.md word for word (tests/clients/doc_blocks.py checks it).
# Connects with libpq's environment (PGHOST, PGPORT, PGUSER: `eval "$(bash
# scripts/cluster.sh env test 55432)"`), makes its own database clients_psql,
# and exits non-zero on the first claim that does not hold.
#
#   bash tests/clients/psql.sh
set -euo pipefail

NAME=psql.sh
DB=clients_psql

fail() {
  echo "$NAME: FAIL: $*" >&2
  exit 1
}
# expect ACTUAL EXPECTED WHAT
expect() {
  if [ "$1" != "$2" ]; then
    fail "$3: expected '$2', got '$1'"
  fi
  echo "$NAME: ok: $3 = '$1'"
}
# expect_in OUTPUT TEXT WHAT
expect_in() {
  if ! grep -qF -- "$2" <<<"$1"; then
    printf '%s\n' "$1" >&2
    fail "$3: the output above has no '$2'"
  fi
  echo "$NAME: ok: $3"
}
query() {
  psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "$1"
}

# Errors show their SQLSTATE ("ERROR:  25001: ..."): the examples run with
# the user's psqlrc, so this one says so.
psqlrc=$(mktemp)
trap 'rm -f "$psqlrc"' EXIT
echo '\set VERBOSITY verbose' >"$psqlrc"
export PSQLRC=$psqlrc PGDATABASE=$DB

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_retention;
CREATE TABLE app_events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL);
CREATE INDEX ON app_events (created_at);
-- 250 rows 40 days old (expired under a 30-day window), 20 of today.
INSERT INTO app_events SELECT g, now() - interval '40 days' FROM generate_series(1, 250) g;
INSERT INTO app_events SELECT g, now() - interval '1 hour' FROM generate_series(1001, 1020) g;
CREATE TABLE app_sessions (id bigint PRIMARY KEY, created_at timestamptz NOT NULL);
INSERT INTO app_sessions SELECT g, now() - interval '40 days' FROM generate_series(1, 90) g;
INSERT INTO app_sessions SELECT g, now() - interval '1 hour' FROM generate_series(1001, 1010) g;
SELECT retention_add_policy('app_events', 'created_at', '30 days');
SQL

# A script through psql, autocommit on (psql's default): each statement is
# sent alone, and the CALL commits its batches; settings as its arguments.
out=$(psql -A -t -q -v ON_ERROR_STOP=1 <<'SQL'
-- [doc:psql-script]
CALL retention_run(batch_size => 100, max_duration => '10 minutes', batch_pause => '10ms', lock_timeout => '1s', max_rows => 100000);
SELECT status, total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1;
-- [/doc:psql-script]
SQL
)
expect "$out" "succeeded|250" "a psql script's CALL retention_run: status and total_deleted"
expect "$(query "SELECT count(*) FROM cleanup_runs")" 1 "history rows after one CALL"
expect "$(query "SELECT count(*) FROM app_events")" 20 "app_events rows left"
expect "$(query "SELECT string_agg(t->>'relation' || '=' || (t->>'deleted'), ',') FROM cleanup_runs, jsonb_array_elements(tables) t")" \
  "public.app_events=250" "cleanup_runs.tables"

# AUTOCOMMIT off: psql sends BEGIN before the first statement.
out=$(psql 2>&1 <<'SQL'
-- [doc:psql-autocommit-off]
\set AUTOCOMMIT off
SELECT retention_add_policy('app_sessions', 'created_at', '30 days');
CALL retention_run(1000);   -- ERROR:  25001: retention_run commits after every batch ...
ROLLBACK;                   -- and the policy added above is rolled back with it
-- [/doc:psql-autocommit-off]
SQL
)
printf '%s\n' "$out"
expect_in "$out" "ERROR:  25001: retention_run commits after every batch and cannot run inside a transaction block" \
  "CALL with \\set AUTOCOMMIT off fails with 25001"
expect_in "$out" "HINT:  Send CALL retention_run(...) as a command of its own with autocommit on" "the 25001 hint"
expect "$(query "SELECT count(*) FROM retention_policies WHERE relation = 'app_sessions'::regclass")" 0 \
  "policies on app_sessions after the ROLLBACK (the retention_add_policy was undone)"
expect "$(query "SELECT count(*) FROM cleanup_runs")" 1 "history rows after the refused CALL"

# One -c string holding two statements is one transaction; two -c are two.
command_line() {
  # [doc:psql-command-line]
  psql -c "SET pg_retention.batch_pause = '10ms'; CALL retention_run()"    # ERROR:  25001: one string, one transaction
  psql -c "SET pg_retention.batch_pause = '10ms'" -c "CALL retention_run()" # runs: two commands
  # [/doc:psql-command-line]
}
query "SELECT retention_add_policy('app_sessions', 'created_at', '30 days')" >/dev/null
out=$(command_line 2>&1)
printf '%s\n' "$out"
expect "$(grep -c "ERROR:  25001: retention_run commits after every batch" <<<"$out")" 1 \
  "'SET ...; CALL ...' in one -c fails with 25001 (and only it)"
expect "$(query "SELECT string_agg(status || ' ' || total_deleted, ',' ORDER BY id) FROM cleanup_runs")" \
  "succeeded 250,succeeded 90" "history after -c 'SET' -c 'CALL'"
expect "$(query "SELECT count(*) FROM app_sessions")" 10 "app_sessions rows left"

# psql --single-transaction wraps a script in BEGIN/COMMIT: no CALL in it.
query "INSERT INTO app_sessions SELECT g, now() - interval '40 days' FROM generate_series(1, 5) g" >/dev/null
if out=$(psql -1 -v ON_ERROR_STOP=1 -c "CALL retention_run()" 2>&1); then
  fail "psql --single-transaction -c 'CALL retention_run()' succeeded: $out"
fi
expect_in "$out" "ERROR:  25001: retention_run commits after every batch" "psql --single-transaction fails with 25001"

# A procedure is not a function: SELECT ... FROM retention_run(...), which is
# what pgJDBC's default escapeSyntaxCallMode=select makes of
# {call retention_run(?)}, is refused before anything runs.
if out=$(psql -v ON_ERROR_STOP=1 -c "SELECT * FROM retention_run(1000)" 2>&1); then
  fail "SELECT * FROM retention_run(1000) succeeded: $out"
fi
expect_in "$out" "ERROR:  42809: retention_run(integer) is a procedure" "SELECT * FROM retention_run(1000) fails with 42809"

# The in-transaction alternative: retention_execute inside BEGIN ... COMMIT.
out=$(psql -X -A -t -q -v ON_ERROR_STOP=1 <<'SQL'
-- [doc:psql-execute]
BEGIN;
SELECT status, total_deleted FROM retention_execute(1000);
COMMIT;
-- [/doc:psql-execute]
SQL
)
expect "$out" "succeeded|5" "retention_execute inside BEGIN ... COMMIT"
expect "$(query "SELECT count(*) FROM app_sessions")" 10 "app_sessions rows left after retention_execute"

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE $DB WITH (FORCE)"
echo "$NAME: passed"
