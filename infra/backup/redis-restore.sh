#!/bin/sh
# Replaces the data of a stopped Redis ($REDIS_DATA) with the RDB in $BACKUP_DIR/rdb.rdb.
# With appendonly on, Redis loads only its AOF at start and ignores dump.rdb, so a private
# loopback server loads the RDB with AOF off, then writes an AOF from it (CONFIG SET appendonly
# yes) and shuts down; the platform's server then starts from that AOF.
set -eu
data="${REDIS_DATA:-/data}"
port="${RESTORE_PORT:-6390}"
cli() { redis-cli -e -h 127.0.0.1 -p "$port" "$@"; }
persistence() { cli info persistence | tr -d '\r'; }
# The official image's entrypoint adds its bundled modules, whose types an RDB may hold.
entry=""
if command -v docker-entrypoint.sh >/dev/null 2>&1; then entry="docker-entrypoint.sh"; fi
rm -rf "$data/appendonlydir" "$data/dump.rdb"
cp "$BACKUP_DIR/rdb.rdb" "$data/dump.rdb"
# shellcheck disable=SC2086 # $entry is one word or nothing
$entry redis-server --bind 127.0.0.1 --port "$port" --dir "$data" --appendonly no --save "" \
  --daemonize no --loglevel warning &
server=$!
until cli ping >/dev/null 2>&1; do
  kill -0 "$server" || { echo "redis-server did not start"; exit 1; }
  sleep 0.2
done
echo "loaded $(cli dbsize) keys from the backup"
cli config set appendonly yes >/dev/null
until persistence | grep -q '^aof_enabled:1' && persistence | grep -q '^aof_rewrite_in_progress:0' \
  && persistence | grep -q '^aof_rewrite_scheduled:0'; do
  sleep 0.2
done
persistence | grep -q '^aof_last_bgrewrite_status:ok' || { echo "AOF rewrite failed"; exit 1; }
cli shutdown >/dev/null 2>&1 || true
wait "$server" || true
rm -f "$data/dump.rdb"
echo "wrote the append-only file in ${data}/appendonlydir"
