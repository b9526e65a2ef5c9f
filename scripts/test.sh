#!/usr/bin/env bash
# Runs every test: formatting and lints once, then for each PostgreSQL
# version (15 from Debian; 16 and 18 from PyPI wheels, scripts/install-deps.sh)
# the planner's and SQL builder's unit tests with the in-database #[pg_test]s
# (cargo pgrx test) and the integration tests against a real cluster of that
# version with several connections; then on 15 the Citus tests (a
# coordinator and two workers, Citus built from ../shared/citus or
# PG_RETENTION_CITUS_DIR by install-deps.sh) and the benchmark smoke tests.
#
#   PG_RETENTION_VERSIONS="15 18" bash scripts/test.sh   # a subset
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/install-deps.sh
# shellcheck source=install-deps.sh
source scripts/install-deps.sh

VERSIONS=${PG_RETENTION_VERSIONS:-15 16 18}
RUN_BASE=${PG_RETENTION_RUN_DIR:-/var/tmp/pg_retention}
TEST_PORT=${PG_RETENTION_TEST_PORT:-55432}

# The Citus clusters load the library installed into PostgreSQL 15: never
# replace it under them.
bash scripts/citus.sh stop

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy"
cargo clippy --all-targets --features integration -- -D warnings

for version in $VERSIONS; do
  pg_config=$(pg_config_of "$version")
  # Each version's clusters live apart (15 where they always did).
  run_root=$RUN_BASE
  if [ "$version" != 15 ]; then
    run_root=$RUN_BASE/pg$version
  fi
  mkdir -p "$run_root/pgrx"
  chown postgres: "$RUN_BASE" "$run_root" "$run_root/pgrx" 2>/dev/null || true

  # Both installs below replace the library: under a new inode, so that a
  # cluster still running the old one (the demo's) keeps its mapping intact
  # (copied over in place, it crashed a backend of the demo cluster).
  library="$("$pg_config" --pkglibdir)/pg_retention.so"
  echo "==> PostgreSQL $version: unit tests and #[pg_test] (cargo pgrx test)"
  rm -f "$library"
  cargo pgrx test "pg$version" --runas postgres --pgdata "$run_root/pgrx/data"

  echo "==> PostgreSQL $version: integration tests"
  # cargo pgrx test installed its test build; install the real one, and the
  # previous releases' install scripts for the upgrade tests.
  rm -f "$library"
  cargo pgrx install --pg-config "$pg_config" >/dev/null
  cp sql/archive/pg_retention--*.sql "$("$pg_config" --sharedir)/extension/"
  export PG_RETENTION_PG_CONFIG=$pg_config PG_RETENTION_RUN_DIR=$run_root
  export PG_RETENTION_PG_BIN
  PG_RETENTION_PG_BIN=$("$pg_config" --bindir)
  bash scripts/cluster.sh stop test
  bash scripts/cluster.sh stop crash
  # The server runs with RUST_BACKTRACE set, as some DBAs' do: no error may
  # show Rust internals (tests/integration/security.rs).
  RUST_BACKTRACE=1 bash scripts/cluster.sh start test "$TEST_PORT"
  eval "$(bash scripts/cluster.sh env test "$TEST_PORT")"
  # Two test threads share this server, and a run yields to the other's
  # statements (pg_retention.yield_ratio): off here, where only correctness is
  # asserted; the test of yielding sets it in its own session.
  # The library defines the setting: loaded first, or ALTER SYSTEM refuses
  # the name (which went unnoticed without ON_ERROR_STOP).
  psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "LOAD 'pg_retention'" \
    -c "ALTER SYSTEM SET pg_retention.yield_ratio = 0" -c "SELECT pg_reload_conf()" >/dev/null
  # What this build lacks, and so what its tests skip or replace.
  if [ ! -f "$("$pg_config" --pkglibdir)/auto_explain.so" ]; then
    echo "    PostgreSQL $version: no auto_explain module in this build: plans::run_batches_use_indexes is skipped"
  fi
  if [ "$(psql -X -A -t -d postgres -c "SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'")" = 0 ]; then
    echo "    PostgreSQL $version: built without ICU: keys::every_key_type_survives_hostile_session_settings uses libc's C.utf8 for text keys"
  fi
  # The pg_cron test waits for a real minute boundary; run with two threads so
  # the rest goes on meanwhile.
  cargo test --features integration --test integration -- --test-threads 2
  if [ "$version" = 15 ]; then
    echo "==> PostgreSQL 15: docs/clients.md's examples (psql, psycopg, node-postgres) and the README's Quick start (tests/clients)"
    bash tests/clients/run.sh
  fi
  bash scripts/cluster.sh stop test
  bash scripts/cluster.sh stop crash
  unset PG_RETENTION_PG_CONFIG PG_RETENTION_RUN_DIR PG_RETENTION_PG_BIN
done

case " $VERSIONS " in
  *" 15 "*)
    echo "==> Citus 13.2.2 on PostgreSQL 15: a coordinator and two workers (tests/citus)"
    bash scripts/citus.sh start
    read -r citus_coordinator citus_workers < <(bash scripts/citus.sh ports | awk '{print $1, $2 " " $3}')
    PGHOST=127.0.0.1 PGPORT=$citus_coordinator PG_RETENTION_CITUS_WORKERS=$citus_workers \
      cargo test --features integration --test citus -- --test-threads 1
    bash scripts/citus.sh stop
    ;;
  *) echo "==> PostgreSQL 15 not among PG_RETENTION_VERSIONS ($VERSIONS): the Citus tests (built on 15) do not run" ;;
esac

echo "==> benchmark smoke test on PostgreSQL 15 (tiny scale; the four methods must agree)"
bash bench/run.sh --scale 1 --rounds 1 --out "$(mktemp -d)"
echo "==> schema zoo smoke test (tiny scale; in every shape the methods must leave the same rows)"
bash bench/run.sh --zoo --scale 0.02 --rounds 1 --out "$(mktemp)"
echo "==> partition benchmark smoke test (tiny scale; drop, rows and plain DELETEs must leave the same rows)"
bash bench/run.sh --partitions --scale 0.05 --rounds 1 --writers 0 --out "$(mktemp)"
echo "==> inflow smoke test (1,000 rows/s for 10 s beside a scheduled, yielding run, which must keep up)"
bash bench/run.sh --inflow --smoke
