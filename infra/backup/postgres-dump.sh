#!/bin/sh
# Dumps each database (pg_dump, custom format) as its owner into $BACKUP_DIR/<db>.dump. A failed
# dump leaves $BACKUP_DIR/<db>.failed with pg_dump's error instead, and the script still exits
# 0, so the upload step runs and reports the failure to the Pushgateway.
set -u
for db in $DATABASES; do
  password="$(printenv "PASSWORD_$(echo "$db" | tr '[:lower:]' '[:upper:]')")"
  if PGPASSWORD="$password" pg_dump --format=custom --no-password --username="$db" \
    --dbname="$db" --file="$BACKUP_DIR/$db.dump" 2>"$BACKUP_DIR/$db.log"; then
    echo "dumped ${db}: $(wc -c <"$BACKUP_DIR/$db.dump") bytes"
  else
    rm -f "$BACKUP_DIR/$db.dump"
    mv "$BACKUP_DIR/$db.log" "$BACKUP_DIR/$db.failed"
    echo "dump of ${db} failed: $(cat "$BACKUP_DIR/$db.failed")"
  fi
done
