#!/usr/bin/env bash
# A local Citus 13 cluster on PostgreSQL 15 for tests/citus: a coordinator and
# two workers, each its own cluster (scripts/cluster.sh) listening on
# 127.0.0.1, Citus preloaded. scripts/install-deps.sh builds Citus from
# ../shared/citus. Each test makes its own database on all three nodes
# (tests/citus/main.rs); the nodes serve every database.
#
#   scripts/citus.sh start | stop | ports
set -euo pipefail
cd "$(dirname "$0")/.."

COORDINATOR_PORT=${PG_RETENTION_CITUS_PORT:-55440}
WORKER_PORTS="$((COORDINATOR_PORT + 1)) $((COORDINATOR_PORT + 2))"

case "${1:?usage: citus.sh start|stop|ports}" in
  start)
    for port in $COORDINATOR_PORT $WORKER_PORTS; do
      PG_RETENTION_PRELOAD=citus,pg_cron PG_RETENTION_LISTEN=127.0.0.1 \
        bash scripts/cluster.sh start "citus-$port" "$port"
    done
    ;;
  stop)
    for port in $COORDINATOR_PORT $WORKER_PORTS; do
      bash scripts/cluster.sh stop "citus-$port"
    done
    ;;
  ports)
    echo "$COORDINATOR_PORT $WORKER_PORTS"
    ;;
  *)
    echo "unknown command $1" >&2
    exit 2
    ;;
esac
