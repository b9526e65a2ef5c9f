#!/usr/bin/env bash
# Runs every test: formatting and lints, the planner's and SQL builder's unit
# tests with the in-database #[pg_test]s (cargo pgrx test), then the
# integration tests against a real cluster with several connections.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/install-deps.sh

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
RUN_ROOT=${PG_RETENTION_RUN_DIR:-/var/tmp/pg_retention}
TEST_PORT=${PG_RETENTION_TEST_PORT:-55432}

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy"
cargo clippy --all-targets --features integration -- -D warnings

echo "==> unit tests and #[pg_test] (cargo pgrx test)"
mkdir -p "$RUN_ROOT/pgrx"
chown postgres: "$RUN_ROOT" "$RUN_ROOT/pgrx" 2>/dev/null || true
cargo pgrx test pg15 --runas postgres --pgdata "$RUN_ROOT/pgrx/data"

echo "==> integration tests"
# cargo pgrx test installed its test build; install the real one, and the
# previous release's install script for the upgrade test.
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null
cp sql/archive/pg_retention--*.sql "$("$PG_CONFIG" --sharedir)/extension/"
bash scripts/cluster.sh stop test
bash scripts/cluster.sh stop crash
# The server runs with RUST_BACKTRACE set, as some DBAs' do: no error may
# show Rust internals (tests/integration/security.rs).
RUST_BACKTRACE=1 bash scripts/cluster.sh start test "$TEST_PORT"
eval "$(bash scripts/cluster.sh env test "$TEST_PORT")"
# Two test threads share this server, and a run yields to the other's
# statements (pg_retention.yield_ratio): off here, where only correctness is
# asserted; the test of yielding sets it in its own session.
psql -X -q -d postgres -c "ALTER SYSTEM SET pg_retention.yield_ratio = 0" -c "SELECT pg_reload_conf()" >/dev/null
# The pg_cron test waits for a real minute boundary; run with two threads so
# the rest goes on meanwhile.
cargo test --features integration --test integration -- --test-threads 2
bash scripts/cluster.sh stop test
bash scripts/cluster.sh stop crash

echo "==> benchmark smoke test (tiny scale; the four methods must agree)"
bash bench/run.sh --scale 1 --rounds 1 --out "$(mktemp -d)"
