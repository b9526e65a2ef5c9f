#!/usr/bin/env bash
# A local PostgreSQL cluster for the demo and the integration tests: Debian's
# 15 by default, another install with PG_RETENTION_PG_CONFIG=<its pg_config>
# (scripts/install-deps.sh puts 16 and 18 under /opt/pg_retention).
# Postgres refuses to run as root: the server runs as the `postgres` system
# user (created by Debian's package), clients connect over a Unix socket in
# the cluster's own directory.
#
#   scripts/cluster.sh start NAME PORT   # initdb if needed, start (idempotent)
#   scripts/cluster.sh stop NAME
#   scripts/cluster.sh env NAME PORT     # prints PGHOST/PGPORT/PGUSER exports
set -euo pipefail

PG_CONFIG=${PG_RETENTION_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=$("$PG_CONFIG" --bindir)
RUN_ROOT=${PG_RETENTION_RUN_DIR:-/var/tmp/pg_retention}
SERVER_USER=${PG_RETENTION_SERVER_USER:-postgres}
# Set when the cluster is created (scripts/citus.sh): libraries to preload,
# and the TCP address to listen on besides the Unix socket.
PRELOAD=${PG_RETENTION_PRELOAD:-pg_cron}
LISTEN=${PG_RETENTION_LISTEN:-}

cmd=${1:?usage: cluster.sh start|stop|env NAME [PORT]}
name=${2:?cluster name}
port=${3:-55432}
dir="$RUN_ROOT/$name"

as_server_user() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$SERVER_USER" -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
      chown "$SERVER_USER": "$RUN_ROOT" "$dir"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_server_user "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
      cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '$LISTEN'
unix_socket_directories = '$dir'
shared_preload_libraries = '$PRELOAD'
cron.database_name = 'postgres'
cron.host = '$dir'
max_connections = 100
log_line_prefix = '%m [%p] %d '
log_lock_waits = on
CONF
    fi
    # A postmaster killed with SIGKILL can linger as a zombie when nothing
    # reaps it; its pid file then looks alive to pg_ctl. It is dead: drop it.
    if [ -f "$dir/data/postmaster.pid" ]; then
      pid=$(head -1 "$dir/data/postmaster.pid")
      state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
      if [ "$state" = Z ]; then
        rm -f "$dir/data/postmaster.pid"
      fi
    fi
    # The port asked for wins over the one the data directory was made
    # with (a cluster of this name made earlier on another port): a running
    # one on another port is restarted on this one.
    if as_server_user "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 \
      && [ "$(sed -n 4p "$dir/data/postmaster.pid" 2>/dev/null)" != "$port" ]; then
      as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    if ! as_server_user "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 60 start >/dev/null
    fi
    ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  env)
    echo "export PGHOST='$dir' PGPORT='$port' PGUSER=postgres"
    ;;
  *)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
