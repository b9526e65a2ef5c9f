#!/usr/bin/env bash
# Runs the client examples of docs/clients.md and the README's Quick start
# against a running cluster with pg_retention installed (scripts/test.sh runs
# it on the PostgreSQL 15 test cluster):
#
#   eval "$(bash scripts/cluster.sh env test 55432)"; bash tests/clients/run.sh
#
# Needs psycopg 3 for python3 and `npm ci` done in tests/clients
# (scripts/install-deps.sh does both). Runs every test, then says how many
# passed and failed; exits non-zero when one failed.
set -uo pipefail
cd "$(dirname "$0")"

: "${PGHOST:?set PGHOST, PGPORT and PGUSER: eval \"\$(bash scripts/cluster.sh env test 55432)\"}"
if [ ! -f node_modules/pg/package.json ]; then
  echo "run.sh: tests/clients/node_modules has no pg: run scripts/install-deps.sh (npm ci in tests/clients)" >&2
  exit 1
fi

passed=0
failed=()
run() {
  echo "--> $*"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed+=("$*")
  fi
}
run python3 doc_blocks.py
run bash psql.sh
run python3 python_psycopg.py
run node node_pg.js
run bash quick_start.sh

echo "clients: $passed passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'clients: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
