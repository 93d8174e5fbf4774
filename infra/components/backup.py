"""Backups: a CronJob per stateful store, and the restore Jobs' templates.

Each backup pod dumps with the server's own image (pg_dump of each database in custom format
as its owner; Redis's RDB through `redis-cli --rdb`), in an init container, into a memory-free
emptyDir; then the workloads image uploads the dumps (encrypted with the stack's key when
`backups.encrypt`), deletes those past the retention and pushes the run's metrics to the
Pushgateway (workloads/backup). The scripts live in infra/backup/, shipped in one ConfigMap.

The restore Jobs are suspended CronJobs that never run on their own: `mlops restore`
instantiates each as a Job with the backup to restore set on its fetch container, so the
restore runs exactly the rendered pod: fetch (and decrypt) with the workloads image, then
pg_restore or the RDB swap with the server's image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import cron, kube, network, sizes, versions
from infra.components.postgres import PostgresDatabase
from infra.components.redis import RedisEndpoint
from infra.config import BackupsConfig
from infra.configtypes import reveal
from infra.observability import Telemetry

COMPONENT = "backup"
SECRET_NAME = "backup"
SCRIPTS = "backup-scripts"
SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "backup"
SCRIPT_FILES = ("postgres-dump.sh", "redis-dump.sh", "postgres-restore.sh", "redis-restore.sh")
BACKUP_DIR = "/backup"
# Both stores' images run as 999; the upload container runs the workloads image as that user
# too, so the dumps' emptyDir and Redis's volume are writable by every container.
UID = versions.POSTGRES_UID
DUMP_SIZE = sizes.Resources.of("50m", "64Mi", "1", "512Mi")
UPLOAD_SIZE = sizes.Resources.of("50m", "192Mi", "1", "512Mi")
UPLOAD = ["python", "-m", "workloads.backup", "upload"]
FETCH = ["python", "-m", "workloads.backup", "fetch"]
# A restore template's schedule: suspended, it never fires (February 31st does not exist).
NEVER = "0 0 31 2 *"
# Where the restore-redis pod mounts the Redis StatefulSet's volume claim (data-redis-0).
REDIS_CLAIM = "data-redis-0"
METRICS = frozenset(
    {
        "mlops_backup_last_success_timestamp_seconds",
        "mlops_backup_last_run_timestamp_seconds",
        "mlops_backup_failed",
        "mlops_backup_interval_seconds",
        "mlops_backup_size_bytes",
        "mlops_backup_duration_seconds",
    }
)


@dataclass(frozen=True)
class BackupTarget:
    """Where backups go: the platform's object store (its `backups` bucket) or external S3."""

    url: str
    region: str
    bucket: str
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]
    # Where the backup pods connect to reach it (the object store's listener, or outside).
    address: network.Address


@dataclass(frozen=True)
class BackupArgs:
    config: BackupsConfig
    namespace: str
    target: BackupTarget
    # Each Postgres database to dump (none without Postgres).
    databases: Mapping[str, PostgresDatabase]
    redis: RedisEndpoint | None
    # True when Redis runs in the cluster: its restore swaps the files on its volume.
    redis_in_cluster: bool
    workloads_image: str
    # None without monitoring: the runs push no metrics.
    pushgateway_url: str | None = None
    pushgateway: network.Address | None = None
    image_pull: kube.ImagePull | None = None
    # False when another component already creates the namespace's pull Secret.
    owns_image_pull: bool = True
    # What must be ready before the first run: the stores and the logins it dumps with.
    needs: Sequence[pulumi.Resource] = ()


def scripts() -> dict[str, str]:
    return {name: (SCRIPTS_DIR / name).read_text() for name in SCRIPT_FILES}


class Backup(pulumi.ComponentResource):
    telemetry: Telemetry
    # The backup and restore pods connect to the stores, the target and the Pushgateway.
    network: network.Network
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Backup", name, None, opts)
        cfg, ns = args.config, args.namespace
        self.args = args
        child = pulumi.ResourceOptions(parent=self)
        data: dict[str, Any] = {
            "access-key-id": args.target.access_key,
            "secret-access-key": args.target.secret_key,
        }
        if cfg.encrypt:
            data["encryption-key"] = reveal(cfg.encryption_key)
        secret = kube.secret(SECRET_NAME, ns, COMPONENT, "backup", data, self)
        script_map = k8s.core.v1.ConfigMap(
            SCRIPTS,
            metadata=kube.metadata(SCRIPTS, ns, COMPONENT, "backup"),
            data=scripts(),
            opts=child,
        )
        self.needs: list[pulumi.Resource] = [secret, script_map, *args.needs]
        if args.image_pull is not None and args.owns_image_pull:
            self.needs.append(kube.image_pull_secret(ns, COMPONENT, args.image_pull, child))
        self.interval = cron.longest_interval_seconds(cfg.schedule)
        reaches = [args.target.address, *([args.pushgateway] if args.pushgateway else [])]
        stores = []
        if args.databases:
            self._postgres()
            reaches.append(next(iter(args.databases.values())).address)
            stores.append("postgres")
        if args.redis is not None:
            self._redis(args.redis)
            reaches.append(args.redis.address)
            stores.append("redis")
        pods = network.component_pods(COMPONENT, ns, kube.selector(COMPONENT))
        self.network = network.Network(
            COMPONENT, pods=(pods,), edges=tuple(network.Edge(pods, to) for to in reaches)
        )
        self.telemetry = Telemetry(
            COMPONENT,
            metrics=METRICS if args.pushgateway_url else frozenset(),
            rules=("backups.yaml",) if args.pushgateway_url else (),
        )
        self.outputs = {
            "backups": {
                "bucket": args.target.bucket,
                "endpoint": args.target.url,
                "prefix": ns,
                "schedule": cfg.schedule,
                "stores": stores,
                "encrypted": cfg.encrypt,
            }
        }
        self.register_outputs(self.outputs)

    def _common_env(self, store: str, databases: list[str]) -> list[kube.Spec]:
        args = self.args
        env = [
            {"name": "BACKUP_STORE", "value": store},
            {"name": "BACKUP_DATABASES", "value": " ".join(databases)},
            {"name": "BACKUP_DIR", "value": BACKUP_DIR},
            {"name": "BACKUP_BUCKET", "value": args.target.bucket},
            {"name": "BACKUP_PREFIX", "value": args.namespace},
            {"name": "AWS_ENDPOINT_URL", "value": args.target.url},
            {"name": "AWS_DEFAULT_REGION", "value": args.target.region},
            kube.secret_env("AWS_ACCESS_KEY_ID", SECRET_NAME, "access-key-id"),
            kube.secret_env("AWS_SECRET_ACCESS_KEY", SECRET_NAME, "secret-access-key"),
            {"name": "HOME", "value": "/tmp"},
        ]
        if args.config.encrypt:
            env.append(kube.secret_env("BACKUP_ENCRYPTION_KEY", SECRET_NAME, "encryption-key"))
        return env

    def _python(self, name: str, command: list[str], env: list[kube.Spec]) -> kube.Spec:
        return kube.job_container(
            name,
            self.args.workloads_image,
            UPLOAD_SIZE,
            command=command,
            workingDir="/app",
            env=env,
            volumeMounts=[
                {"name": "backup", "mountPath": BACKUP_DIR},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        )

    def _server_step(
        self, name: str, image: str, script: str, env: list[kube.Spec], *mounts: kube.Spec
    ) -> kube.Spec:
        return kube.job_container(
            name,
            image,
            DUMP_SIZE,
            command=["/bin/sh", f"/scripts/{script}"],
            env=[
                *env,
                {"name": "BACKUP_DIR", "value": BACKUP_DIR},
                {"name": "HOME", "value": "/tmp"},
            ],
            volumeMounts=[
                {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
                {"name": "backup", "mountPath": BACKUP_DIR},
                {"name": "tmp", "mountPath": "/tmp"},
                *mounts,
            ],
        )

    def _upload_env(self, store: str, databases: list[str]) -> list[kube.Spec]:
        cfg = self.args.config
        env = [
            *self._common_env(store, databases),
            {"name": "BACKUP_RETENTION_DAYS", "value": str(cfg.retention_days)},
            {"name": "BACKUP_KEEP_LAST", "value": str(cfg.keep_last)},
            {"name": "BACKUP_INTERVAL_SECONDS", "value": str(self.interval)},
        ]
        if self.args.pushgateway_url:
            env.append({"name": "MLOPS_PUSHGATEWAY_URL", "value": self.args.pushgateway_url})
        return env

    def _postgres(self) -> None:
        databases = self.args.databases
        names = sorted(databases)
        first = databases[names[0]]
        env = [
            {"name": "PGHOST", "value": first.host},
            {"name": "PGPORT", "value": str(first.port)},
            {"name": "PGSSLMODE", "value": first.ssl_mode},
            {"name": "PGCONNECT_TIMEOUT", "value": "10"},
            {"name": "DATABASES", "value": " ".join(names)},
        ] + [
            kube.secret_env(f"PASSWORD_{db.upper()}", databases[db].secret_name, "password")
            for db in names
        ]
        image = versions.POSTGRES_IMAGE
        self._cron_job(
            "backup-postgres",
            dump=self._server_step("dump", image, "postgres-dump.sh", env),
            upload=self._python("upload", UPLOAD, self._upload_env("postgres", names)),
        )
        self._restore_template(
            "restore-postgres",
            fetch=self._python("fetch", FETCH, self._fetch_env("postgres", names)),
            restore=self._server_step("restore", image, "postgres-restore.sh", env),
        )

    def _redis(self, redis: RedisEndpoint) -> None:
        env = [
            {"name": "REDIS_HOST", "value": redis.host},
            {"name": "REDIS_PORT", "value": str(redis.port)},
            {"name": "REDIS_TLS", "value": "true" if redis.tls else "false"},
            kube.secret_env("REDISCLI_AUTH", redis.secret_name, "password"),
        ]
        image = versions.REDIS_IMAGE
        self._cron_job(
            "backup-redis",
            dump=self._server_step("dump", image, "redis-dump.sh", env),
            upload=self._python("upload", UPLOAD, self._upload_env("redis", ["rdb"])),
        )
        if not self.args.redis_in_cluster:
            # A managed Redis is restored through its provider's import (docs/operations.md).
            return
        data = {"name": "data", "mountPath": "/data"}
        self._restore_template(
            "restore-redis",
            fetch=self._python("fetch", FETCH, self._fetch_env("redis", ["rdb"])),
            restore=self._server_step(
                "restore",
                image,
                "redis-restore.sh",
                [{"name": "REDIS_DATA", "value": "/data"}],
                data,
            ),
            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": REDIS_CLAIM}}],
        )

    def _fetch_env(self, store: str, databases: list[str]) -> list[kube.Spec]:
        # `mlops restore` sets BACKUP_ID on the Job it creates; the template restores the newest.
        return [*self._common_env(store, databases), {"name": "BACKUP_ID", "value": "latest"}]

    def _pod(self, first: kube.Spec, second: kube.Spec, volumes: list[kube.Spec]) -> kube.Spec:
        return kube.pod_spec(
            UID,
            [second],
            initContainers=[first],
            restartPolicy="Never",
            volumes=[
                {"name": "scripts", "configMap": {"name": SCRIPTS}},
                kube.empty_dir("backup", "20Gi"),
                kube.empty_dir("tmp", "256Mi"),
                *volumes,
            ],
            **kube.image_pull_fields(self.args.image_pull),
        )

    def _cron_job(self, name: str, dump: kube.Spec, upload: kube.Spec) -> None:
        self._cron(name, "backup", self.args.config.schedule, self._pod(dump, upload, []), 1)

    def _restore_template(
        self,
        name: str,
        fetch: kube.Spec,
        restore: kube.Spec,
        volumes: list[kube.Spec] | None = None,
    ) -> None:
        self._cron(
            name, "restore", NEVER, self._pod(fetch, restore, volumes or []), 0, suspend=True
        )

    def _cron(
        self,
        name: str,
        part: str,
        schedule: str,
        pod: kube.Spec,
        backoff: int,
        suspend: bool = False,
    ) -> None:
        # A run missed by more than an hour (the controller down) is skipped; six hours at most.
        kube.cron_job(
            name,
            self.args.namespace,
            COMPONENT,
            part,
            schedule=schedule,
            pod=pod,
            starting_deadline=3600,
            backoff=backoff,
            deadline=6 * 3600,
            needs=self.needs,
            parent=self,
            suspend=suspend,
        )
