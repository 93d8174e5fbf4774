"""The backup Jobs' uploader and the restore Jobs' fetcher.

  python -m workloads.backup upload   # after the dump scripts: upload, prune, push metrics
  python -m workloads.backup fetch    # before the restore scripts: download (and decrypt)

Both read the Job's environment: BACKUP_STORE (postgres or redis), BACKUP_DATABASES (space
separated), BACKUP_DIR (the dumps, `<database>.<dump|rdb>`), the target (archive.Target) and
BACKUP_ENCRYPTION_KEY when backups are encrypted. `upload` also reads BACKUP_RETENTION_DAYS,
BACKUP_KEEP_LAST, BACKUP_INTERVAL_SECONDS and MLOPS_PUSHGATEWAY_URL (none: no metrics);
`fetch` reads BACKUP_ID (`latest` or a timestamp).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from workloads.backup import archive, metrics

FAILED_SUFFIX = ".failed"


def _databases(env: dict[str, str]) -> tuple[str, Path, list[str]]:
    store = env["BACKUP_STORE"]
    if store not in archive.EXTENSIONS:
        raise SystemExit(f"BACKUP_STORE={store!r}: must be one of {', '.join(archive.EXTENSIONS)}")
    return store, Path(env["BACKUP_DIR"]), env["BACKUP_DATABASES"].split()


def upload(env: dict[str, str]) -> int:
    store, folder, databases = _databases(env)
    target = archive.Target.from_env(env)
    now = datetime.now(UTC)
    stamp = archive.timestamp(now)
    secret = env.get("BACKUP_ENCRYPTION_KEY") or None
    gateway = env.get("MLOPS_PUSHGATEWAY_URL")
    failures = 0
    for database in databases:
        dump = folder / f"{database}.{archive.EXTENSIONS[store]}"
        marker = folder / f"{database}{FAILED_SUFFIX}"
        started = time.monotonic()
        size: int | None = None
        if marker.exists() or not dump.exists():
            reason = marker.read_text().strip()[-500:] if marker.exists() else "no dump written"
            print(f"{store}/{database}: dump failed: {reason}", flush=True)
        else:
            try:
                key, size = target.upload(dump, store, database, stamp, secret)
                pruned = target.prune(
                    store,
                    database,
                    now,
                    int(env["BACKUP_RETENTION_DAYS"]),
                    int(env["BACKUP_KEEP_LAST"]),
                )
                print(
                    f"{store}/{database}: uploaded s3://{target.bucket}/{key} ({size} bytes, "
                    f"{time.monotonic() - started:.1f}s); pruned {len(pruned)}",
                    flush=True,
                )
            except Exception as error:
                size = None
                print(f"{store}/{database}: upload failed: {type(error).__name__}: {error}")
        failures += size is None
        if gateway:
            metrics.push_run(
                gateway,
                store,
                database,
                at=now.timestamp(),
                size=size,
                duration=time.monotonic() - started,
                interval_seconds=float(env["BACKUP_INTERVAL_SECONDS"]),
            )
    return 1 if failures else 0


def fetch(env: dict[str, str]) -> int:
    store, folder, databases = _databases(env)
    target = archive.Target.from_env(env)
    secret = env.get("BACKUP_ENCRYPTION_KEY") or None
    backup = env.get("BACKUP_ID", "latest")
    folder.mkdir(parents=True, exist_ok=True)
    for database in databases:
        stamp, key = target.choose(store, database, backup)
        path = folder / f"{database}.{archive.EXTENSIONS[store]}"
        size = target.download(key, path, secret)
        print(f"{store}/{database}: fetched backup {stamp} ({size} bytes) to {path}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    commands = {"upload": upload, "fetch": fetch}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python -m workloads.backup {{{','.join(commands)}}}", file=sys.stderr)
        return 2
    try:
        return commands[argv[0]](dict(os.environ))
    except (LookupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
