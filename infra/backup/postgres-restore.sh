#!/bin/sh
# Restores each database from $BACKUP_DIR/<db>.dump as its owner: objects in the dump are
# dropped and recreated in one transaction (pg_restore --clean --if-exists), so a failure
# leaves the database as it was. The databases and logins exist (the postgres-init Job).
set -eu
for db in $DATABASES; do
  password="$(printenv "PASSWORD_$(echo "$db" | tr '[:lower:]' '[:upper:]')")"
  PGPASSWORD="$password" pg_restore --clean --if-exists --no-owner --no-privileges \
    --single-transaction --exit-on-error --no-password --username="$db" --dbname="$db" \
    "$BACKUP_DIR/$db.dump"
  echo "restored ${db}"
done
