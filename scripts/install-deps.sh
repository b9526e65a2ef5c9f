#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need on a fresh
# Debian bookworm machine, as root. Idempotent: each step checks first.
set -euo pipefail

PGVER=15
PGRX_VERSION=0.18.0
PG_CONFIG=/usr/lib/postgresql/$PGVER/bin/pg_config

need_pkgs=()
for p in sudo postgresql-$PGVER postgresql-server-dev-$PGVER postgresql-$PGVER-cron \
         libclang-dev clang pkg-config libssl-dev make; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

# Debian's postgresql-common starts a default cluster on 5432; the project
# runs its own clusters, so that one is left alone (and not required).

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION"; then
  echo "==> cargo install cargo-pgrx $PGRX_VERSION"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

if ! grep -qs "pg$PGVER" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  echo "==> cargo pgrx init --pg$PGVER $PG_CONFIG"
  cargo pgrx init --pg$PGVER "$PG_CONFIG"
fi
