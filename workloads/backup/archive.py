"""The backups on the S3 target: object keys, upload, retention and download.

An object's key is `<prefix>/<store>/<database>/<UTC timestamp>.<extension>[.enc]`: the prefix
is the platform's namespace, the store `postgres` or `redis`, the database each Postgres
database (or `rdb` for Redis), and the timestamp one backup run's start (`20261130T020000Z`),
which sorts as it reads and names the backup to restore.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from workloads.backup import crypto

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_KEY = re.compile(r"^(?P<stamp>[0-9]{8}T[0-9]{6}Z)\.[a-z]+(?P<enc>\.enc)?$")
EXTENSIONS = {"postgres": "dump", "redis": "rdb"}


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"backup {text!r}: must be `latest` or a UTC timestamp such as 20261130T020000Z"
        ) from None


@dataclass(frozen=True)
class Target:
    """A bucket and the key prefix the platform's backups live under."""

    bucket: str
    prefix: str
    client: Any

    @staticmethod
    def from_env(env: dict[str, str]) -> Target:
        """The target the Job's environment names: BACKUP_BUCKET, BACKUP_PREFIX and the usual
        AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."""
        client = boto3.client(
            "s3",
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            region_name=env.get("AWS_DEFAULT_REGION") or None,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
        )
        return Target(env["BACKUP_BUCKET"], env["BACKUP_PREFIX"].strip("/"), client)

    def folder(self, store: str, database: str) -> str:
        return f"{self.prefix}/{store}/{database}/"

    def key(self, store: str, database: str, stamp: str, encrypted: bool) -> str:
        suffix = crypto.SUFFIX if encrypted else ""
        return f"{self.folder(store, database)}{stamp}.{EXTENSIONS[store]}{suffix}"

    def backups(self, store: str, database: str) -> list[tuple[str, str]]:
        """(timestamp, key) of every backup of one database, oldest first."""
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.folder(store, database)
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                match = _KEY.match(name)
                if match:
                    found.append((match["stamp"], item["Key"]))
        return sorted(found)

    def upload(
        self, path: Path, store: str, database: str, stamp: str, secret: str | None
    ) -> tuple[str, int]:
        """Uploads one dump (encrypted first when a secret is given); its key and size."""
        source = path
        if secret:
            source = path.with_name(path.name + crypto.SUFFIX)
            crypto.encrypt(path, source, secret)
        key = self.key(store, database, stamp, encrypted=bool(secret))
        self.client.upload_file(str(source), self.bucket, key)
        return key, source.stat().st_size

    def prune(
        self, store: str, database: str, now: datetime, retention_days: int, keep_last: int
    ) -> list[str]:
        """Deletes backups older than the retention, but never the newest `keep_last`."""
        backups = self.backups(store, database)
        cutoff = now - timedelta(days=retention_days)
        kept = backups[-keep_last:] if keep_last > 0 else []
        doomed = [
            key
            for stamp, key in backups
            if (stamp, key) not in kept and parse_timestamp(stamp) < cutoff
        ]
        for key in doomed:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return doomed

    def choose(self, store: str, database: str, backup: str) -> tuple[str, str]:
        """The (timestamp, key) of the named backup (`latest` or a timestamp) of one database."""
        backups = self.backups(store, database)
        if not backups:
            raise LookupError(
                f"no backup of {store}/{database} under s3://{self.bucket}/{self.prefix}/"
            )
        if backup == "latest":
            return backups[-1]
        parse_timestamp(backup)
        for stamp, key in backups:
            if stamp == backup:
                return stamp, key
        have = ", ".join(stamp for stamp, _ in backups[-5:])
        raise LookupError(f"no backup {backup} of {store}/{database}; the newest: {have}")

    def download(self, key: str, target: Path, secret: str | None) -> int:
        """Downloads one backup to `target` (decrypted when it was encrypted); its size."""
        if not key.endswith(crypto.SUFFIX):
            self.client.download_file(self.bucket, key, str(target))
            return target.stat().st_size
        if not secret:
            raise ValueError(f"{key} is encrypted: BACKUP_ENCRYPTION_KEY is not set")
        sealed = target.with_name(target.name + crypto.SUFFIX)
        self.client.download_file(self.bucket, key, str(sealed))
        crypto.decrypt(sealed, target, secret)
        sealed.unlink()
        return target.stat().st_size
