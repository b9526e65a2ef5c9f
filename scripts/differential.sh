#!/usr/bin/env bash
# Runs the randomized differential test alone, with more cases or one seed:
#   PG_RETENTION_DIFF_CASES=5000 bash scripts/differential.sh
#   PG_RETENTION_DIFF_SEED=20261180 PG_RETENTION_DIFF_CASES=1 bash scripts/differential.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/install-deps.sh
TEST_PORT=${PG_RETENTION_TEST_PORT:-55432}
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
# A new inode: a running cluster keeps its mapping of the old library.
rm -f "$("$PG_CONFIG" --pkglibdir)/pg_retention.so"
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null
bash scripts/cluster.sh start test "$TEST_PORT"
eval "$(bash scripts/cluster.sh env test "$TEST_PORT")"
cargo test --features integration --test integration differential -- --nocapture
