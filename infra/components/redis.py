"""Redis: the Feast online store. Password auth always on, AOF persistence on a volume, memory
bounded by `maxMemory` with an eviction policy (docs/operations.md).

With `redis.external` set, no server is created: the component only publishes the endpoint
and the password Secret that consumers mount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import kube, network, versions
from infra.config import RedisConfig
from infra.configtypes import reveal
from infra.observability import ScrapeTarget, Telemetry, Workload, statefulset_pods
from infra.sizes import quantity

COMPONENT = "redis"
PORT = 6379
METRICS_PORT = 9121
SECRET_NAME = "redis"

# The password is written at start into a private file on a memory volume and included by the
# config, so it is never on a command line, in the pod spec or in a ConfigMap.
SERVER_CONF = """\
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


def redis_conf(cfg: RedisConfig) -> str:
    """The server's config: SERVER_CONF and the memory limit with its eviction policy (bytes,
    since Redis reads `1m` as 10^6 where Kubernetes reads `1Mi` as 2^20)."""
    return (
        SERVER_CONF
        + f"maxmemory {int(quantity(cfg.max_memory))}\n"
        + f"maxmemory-policy {cfg.eviction_policy}\n"
    )


@dataclass(frozen=True)
class RedisEndpoint:
    """What a consumer needs to reach Redis: the endpoint this component exports."""

    host: str
    port: int
    tls: bool
    password: pulumi.Output[str]
    # Kubernetes Secret with keys password, host and port.
    secret_name: str
    # Where consumers connect: the server's pods, or the external server.
    address: network.Address


@dataclass(frozen=True)
class RedisArgs:
    config: RedisConfig
    namespace: str
    # The data volume of the in-cluster server (unused with `external`).
    storage: kube.Storage


class Redis(pulumi.ComponentResource):
    endpoint: RedisEndpoint
    telemetry: Telemetry
    network: network.Network
    # The stack outputs, under the key "redis".
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Redis", name, None, opts)
        cfg, ns = args.config, args.namespace
        external = cfg.external
        pods = network.component_pods(COMPONENT, ns, kube.selector(COMPONENT))
        listener = network.Listener(
            pods, {"redis": PORT, "metrics": METRICS_PORT}, (kube.service_host(COMPONENT, ns),)
        )
        # An external server leaves no pod of Redis's in the cluster.
        self.network = (
            network.Network(COMPONENT)
            if external
            else network.Network(COMPONENT, pods=(pods,), listeners=(listener,))
        )
        self.endpoint = RedisEndpoint(
            host=external.host if external else kube.service_host(COMPONENT, ns),
            port=external.port if external else PORT,
            tls=external.tls if external else False,
            password=reveal(cfg.password),
            secret_name=SECRET_NAME,
            address=(
                network.outside(external.host, external.port) if external else listener.at("redis")
            ),
        )
        host, port = self.endpoint.host, self.endpoint.port
        secret = kube.secret(
            SECRET_NAME,
            ns,
            COMPONENT,
            "cache",
            {"password": self.endpoint.password, "host": host, "port": str(port)},
            self,
        )
        self.telemetry = Telemetry(COMPONENT)
        if external is None:
            self._server(args, secret)
            self.telemetry = Telemetry(
                COMPONENT,
                targets=(ScrapeTarget(COMPONENT, f"{host}:{METRICS_PORT}"),),
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
        self.outputs = {
            "redis": {"host": host, "port": port, "tls": self.endpoint.tls, "secret": SECRET_NAME}
        }
        self.register_outputs(self.outputs)

    def _server(self, args: RedisArgs, secret: k8s.core.v1.Secret) -> None:
        cfg, ns = args.config, args.namespace
        child = pulumi.ResourceOptions(parent=self)
        server_conf = redis_conf(cfg)
        conf = k8s.core.v1.ConfigMap(
            "redis-config",
            metadata=kube.metadata("redis-config", ns, COMPONENT, "cache"),
            data={"redis.conf": server_conf},
            opts=child,
        )
        redis = kube.container(
            COMPONENT,
            versions.REDIS_IMAGE,
            cfg.resources,
            ports={"redis": PORT},
            probes=kube.Probes.server(kube.exec_check(PING)),
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
        exporter = kube.exporter(
            versions.REDIS_EXPORTER_IMAGE,
            METRICS_PORT,
            "/health",
            [
                {"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{PORT}"},
                kube.secret_env("REDIS_PASSWORD", SECRET_NAME, "password"),
            ],
        )
        kube.service(
            COMPONENT, ns, COMPONENT, "cache", {"redis": PORT, "metrics": METRICS_PORT}, self
        )
        kube.stateful_set(
            COMPONENT,
            ns,
            "cache",
            pod=kube.pod_spec(
                versions.REDIS_UID,
                [redis, exporter],
                volumes=[
                    {"name": "config", "configMap": {"name": "redis-config"}},
                    {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                ],
            ),
            size=cfg.storage_size,
            storage=args.storage,
            needs=[secret, conf],
            parent=self,
            config_digest=kube.checksum(server_conf, START),
            secret_digest=kube.secret_digest(self.endpoint.password),
        )
