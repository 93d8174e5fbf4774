#!/bin/sh
# Copies Redis's dataset as an RDB file (`redis-cli --rdb`, a replica's full sync) into
# $BACKUP_DIR/rdb.rdb. The password comes from REDISCLI_AUTH, never the command line. A failure
# leaves $BACKUP_DIR/rdb.failed instead, and the script exits 0 so the upload step reports it.
set -u
tls=""
if [ "${REDIS_TLS:-false}" = "true" ]; then tls="--tls"; fi
# shellcheck disable=SC2086 # $tls is one flag or nothing
if redis-cli $tls -h "$REDIS_HOST" -p "$REDIS_PORT" --rdb "$BACKUP_DIR/rdb.rdb" \
  >"$BACKUP_DIR/rdb.log" 2>&1; then
  echo "dumped rdb: $(wc -c <"$BACKUP_DIR/rdb.rdb") bytes"
else
  rm -f "$BACKUP_DIR/rdb.rdb"
  mv "$BACKUP_DIR/rdb.log" "$BACKUP_DIR/rdb.failed"
  echo "dump of rdb failed: $(cat "$BACKUP_DIR/rdb.failed")"
fi
