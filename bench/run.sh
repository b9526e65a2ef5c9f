#!/usr/bin/env bash
# The benchmark: bash bench/run.sh [--scale N] [--rounds R] [--scaling] [--out DIR]
#   --scale N   data size (N=1: ~55,000 rows; default 36: ~2M rows, about half expired)
#   --rounds R  runs of C, A and B, alternating; the report takes medians (default 5)
#   --scaling   also measure retention_run at 10x the scale (per-batch p50 ratio)
#   --out DIR   where to write report.md and batches.svg (default docs/bench)
#   --zoo       instead: the schema zoo (bench/zoo.sql), per shape plain DELETEs,
#               retention_run and pg-batch; writes docs/bench/zoo.md (or --out FILE)
#   --partitions instead: partition drop against row deletion on a partitioned
#               variant of the odds schema (bench/partitions.sql) [--writers N];
#               writes docs/bench/partitions.md (or --out FILE)
#   --citus     instead: on a Citus coordinator and two workers (scripts/citus.sh),
#               retention_run against hand-written Citus DELETEs [--shards N];
#               writes docs/bench/citus.md (or --out FILE)
#   --inflow    instead: the largest steady inflow (rows/s) a scheduled, yielding
#               CALL retention_run keeps up with beside pgbench writers
#               (bench/inflow.py) [--rates R1,R2,... --duration S --smoke];
#               writes docs/bench/inflow.md (or --out FILE)
# It fails if the methods do not delete the same rows (--inflow: if a run leaves
# rows that had expired before it, or the rows do not add up).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/install-deps.sh
export PATH="/usr/lib/postgresql/15/bin:$PATH"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PORT=${PG_RETENTION_BENCH_PORT:-55435}
bash scripts/cluster.sh stop bench
bash scripts/citus.sh stop
# A new inode: another cluster (the tests') may have the old library mapped.
rm -f "$("$PG_CONFIG" --pkglibdir)/pg_retention.so"
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
bash scripts/cluster.sh start bench "$PORT"
eval "$(bash scripts/cluster.sh env bench "$PORT")"
if [ "${1:-}" = "--zoo" ]; then
  shift
  python3 bench/zoo.py "$@"
elif [ "${1:-}" = "--partitions" ]; then
  shift
  python3 bench/partitions.py "$@"
elif [ "${1:-}" = "--inflow" ]; then
  shift
  PG_RETENTION_VIA_RUN_SH=1 python3 bench/inflow.py "$@"
elif [ "${1:-}" = "--citus" ]; then
  shift
  bash scripts/citus.sh start
  python3 bench/citus.py "$@"
  bash scripts/citus.sh stop
else
  python3 bench/run.py "$@"
fi
bash scripts/cluster.sh stop bench
