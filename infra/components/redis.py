"""Redis: the Feast online store. Password auth always on, AOF persistence on a volume.

With `redis.external` set, no server is created: the component only publishes the endpoint
and the password Secret that consumers mount.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube, versions
from infra.config import RedisConfig, Resources
from infra.observability import ScrapeTarget, Telemetry, Workload, statefulset_pods

COMPONENT = "redis"
PORT = 6379
METRICS_PORT = 9121
SECRET_NAME = "redis"
SIDECAR_SIZE = Resources("10m", "32Mi", "200m", "64Mi")

# The password is written at start into a private file on a memory volume and included by the
# config, so it is never on a command line, in the pod spec or in a ConfigMap.
REDIS_CONF = """\
bind * -::*
port 6379
protected-mode no
dir /data
appendonly yes
appendfsync everysec
include /run/redis/auth.conf
"""
START = (
    'umask 077 && printf "requirepass %s\\n" "$REDIS_PASSWORD" > /run/redis/auth.conf '
    "&& exec docker-entrypoint.sh redis-server /etc/redis/redis.conf"
)
# `-e` makes redis-cli exit non-zero on an error reply such as NOAUTH.
PING = ["redis-cli", "-e", "-h", "127.0.0.1", "-p", "6379", "ping"]


@dataclass(frozen=True)
class RedisArgs:
    config: RedisConfig
    namespace: str
    storage_class: str | None
    data_protection: bool


class Redis(pulumi.ComponentResource):
    host: str
    port: int
    tls: bool
    password: pulumi.Output[str]
    # Kubernetes Secret with keys password, host and port.
    secret_name: str
    telemetry: Telemetry

    def __init__(
        self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Redis", name, None, opts)
        cfg, ns = args.config, args.namespace
        assert cfg.password is not None
        external = cfg.external
        self.host = external.host if external else f"{COMPONENT}.{ns}.svc.cluster.local"
        self.port = external.port if external else PORT
        self.tls = external.tls if external else False
        self.password = pulumi.Output.secret(cfg.password)
        self.secret_name = SECRET_NAME
        secret = kube.secret(
            SECRET_NAME,
            ns,
            COMPONENT,
            "cache",
            {"password": cfg.password, "host": self.host, "port": str(self.port)},
            self,
        )
        self.telemetry = Telemetry(COMPONENT)
        if external is None:
            self._server(args, secret)
            self.telemetry = Telemetry(
                COMPONENT,
                targets=(ScrapeTarget(COMPONENT, f"{self.host}:{METRICS_PORT}"),),
                metrics=frozenset(
                    {
                        "redis_up",
                        "redis_memory_used_bytes",
                        "redis_memory_max_bytes",
                        "redis_aof_current_size_bytes",
                    }
                ),
                rules=("platform.yaml", "storage.yaml"),
                workloads=(Workload.of(COMPONENT, statefulset_pods(COMPONENT), cfg.resources),),
            )
        self.register_outputs({"host": self.host, "port": self.port})

    def _server(self, args: RedisArgs, secret: k8s.core.v1.Secret) -> None:
        cfg, ns = args.config, args.namespace
        child = pulumi.ResourceOptions(parent=self)
        conf = k8s.core.v1.ConfigMap(
            "redis-config",
            metadata=kube.metadata("redis-config", ns, COMPONENT, "cache"),
            data={"redis.conf": REDIS_CONF},
            opts=child,
        )
        redis = kube.container(
            COMPONENT,
            versions.REDIS_IMAGE,
            cfg.resources,
            ports={"redis": PORT},
            readiness=kube.exec_probe(PING),
            liveness=kube.exec_probe(PING, period=20, failures=6),
            startup=kube.exec_probe(PING, period=5, failures=60),
            command=["sh", "-c", START],
            env=[
                kube.secret_env("REDIS_PASSWORD", SECRET_NAME, "password"),
                kube.secret_env("REDISCLI_AUTH", SECRET_NAME, "password"),
            ],
            volumeMounts=[
                {"name": "data", "mountPath": "/data"},
                {"name": "config", "mountPath": "/etc/redis", "readOnly": True},
                {"name": "run", "mountPath": "/run/redis"},
            ],
        )
        exporter = kube.container(
            "exporter",
            versions.REDIS_EXPORTER_IMAGE,
            SIDECAR_SIZE,
            ports={"metrics": METRICS_PORT},
            readiness=kube.http_probe("/health", "metrics"),
            env=[
                {"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{PORT}"},
                kube.secret_env("REDIS_PASSWORD", SECRET_NAME, "password"),
            ],
        )
        kube.service(
            COMPONENT, ns, COMPONENT, "cache", {"redis": PORT, "metrics": METRICS_PORT}, self
        )
        k8s.apps.v1.StatefulSet(
            COMPONENT,
            metadata=kube.metadata(COMPONENT, ns, COMPONENT, "cache"),
            spec={
                "serviceName": COMPONENT,
                "replicas": 1,
                "selector": {"matchLabels": kube.selector(COMPONENT)},
                "persistentVolumeClaimRetentionPolicy": kube.claim_retention(args.data_protection),
                "template": {
                    "metadata": {
                        "labels": kube.labels(COMPONENT, "cache"),
                        "annotations": {"checksum/config": kube.checksum(REDIS_CONF, START)},
                    },
                    "spec": kube.pod_spec(
                        versions.REDIS_UID,
                        [redis, exporter],
                        volumes=[
                            {"name": "config", "configMap": {"name": "redis-config"}},
                            {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                        ],
                    ),
                },
                "volumeClaimTemplates": [
                    kube.volume_claim("data", cfg.storage_size, args.storage_class)
                ],
            },
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.data_protection, depends_on=[secret, conf]
            ),
        )
