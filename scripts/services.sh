#!/usr/bin/env bash
# Local servers the tests run against, on loopback only: start | stop | env.
#
#   ./scripts/services.sh start   # installs (Debian packages) and starts what is missing
#   eval "$(./scripts/services.sh env)"
#   ./scripts/services.sh stop
#
# State lives outside the repository, in $MLOPS_SERVICES_DIR.
set -euo pipefail

STATE="${MLOPS_SERVICES_DIR:-${TMPDIR:-/tmp}/mlops-platform-services}"
PG_PORT="${MLOPS_TEST_POSTGRES_PORT:-55432}"
PG_DATA="$STATE/postgres/data"
PG_SOCKETS="$STATE/postgres/run"

log() { printf '[services] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pg_bin() {
  local bin
  bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] && echo "$bin"
}

install_postgres() {
  if [ -z "$(pg_bin)" ]; then
    log "installing postgresql (Debian package)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
  fi
}

# The server refuses to run as root: run it as the package's postgres user.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  install_postgres
  local bin password_file="$STATE/postgres/password"
  bin=$(pg_bin)
  mkdir -p "$STATE/postgres"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "initialising postgres in $PG_DATA"
    mkdir -p "$PG_DATA" "$PG_SOCKETS"
    head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$password_file"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$STATE/postgres"
    chmod 700 "$PG_DATA"
    as_postgres "$bin/initdb" --pgdata="$PG_DATA" --username=postgres --auth=scram-sha-256 \
      --pwfile="$password_file" --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if as_postgres "$bin/pg_ctl" status --pgdata="$PG_DATA" >/dev/null 2>&1; then
    log "postgres already running on 127.0.0.1:$PG_PORT"
    return
  fi
  as_postgres "$bin/pg_ctl" start --pgdata="$PG_DATA" --wait --log="$STATE/postgres/server.log" \
    --options="-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_SOCKETS" \
    >/dev/null
  log "postgres $("$bin/postgres" --version | awk '{print $3}') running on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
  local bin
  bin=$(pg_bin) || return 0
  if [ -f "$PG_DATA/PG_VERSION" ]; then
    as_postgres "$bin/pg_ctl" stop --pgdata="$PG_DATA" --mode=fast >/dev/null 2>&1 || true
  fi
}

print_env() {
  local bin
  bin=$(pg_bin)
  echo "export MLOPS_TEST_POSTGRES_HOST=127.0.0.1"
  echo "export MLOPS_TEST_POSTGRES_PORT=$PG_PORT"
  echo "export MLOPS_TEST_POSTGRES_USER=postgres"
  echo "export MLOPS_TEST_POSTGRES_PASSWORD_FILE=$STATE/postgres/password"
  echo "export MLOPS_TEST_PG_BIN=$bin"
}

case "${1:-}" in
  start) start_postgres ;;
  stop) stop_postgres ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
