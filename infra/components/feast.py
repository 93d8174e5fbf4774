"""Feast: the feature server, the `feast apply` Job and the materialization CronJob.

The store config is generated here from the Postgres and Redis outputs: a SQL registry and the
offline store on the feast database, the online store on Redis. Credentials are not in it:
Feast expands `${VARIABLES}` when it reads the file, and the variables come from Secrets.
The apply Job and the CronJob run the workload image, which carries the feature repo (with a
private registry's login, from the namespace's pull Secret); the server runs the official image
and needs only the config (the registry holds the rest, on-demand transformations included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import kube, network, sizes, versions
from infra.components.postgres import PostgresDatabase
from infra.components.redis import RedisEndpoint
from infra.config import FeastConfig
from infra.observability import ScrapeTarget, Telemetry, Workload, deployment_pods, histogram

COMPONENT = "feast"
PORT = 6566
METRICS_PORT = 8000
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
SECRET_NAME = "feast"
CONFIG_DIR = "/etc/feast"
CONFIG_FILE = f"{CONFIG_DIR}/feature_store.yaml"
# Where workloads/Dockerfile puts the feature repo.
REPO_DIR = "/app/workloads/feature_repo"
JOB_SIZE = sizes.Resources.of("100m", "256Mi", "1", "1Gi")
# Environment variables the store config names; each comes from a Secret.
REGISTRY_URL_ENV = "FEAST_REGISTRY_URL"
POSTGRES_PASSWORD_ENV = "FEAST_POSTGRES_PASSWORD"
REDIS_PASSWORD_ENV = "FEAST_REDIS_PASSWORD"
MATERIALIZE = 'exec feast materialize-incremental "$(date -u +%Y-%m-%dT%H:%M:%S)"'


@dataclass(frozen=True)
class FeatureStoreClient:
    """What a client of the store in another namespace needs (the transformer, Flyte tasks):
    the store config and the values of the variables it names."""

    store_config: str
    # The store config of a server answering online reads (the transformer): its registry
    # cache is refreshed by a background thread, never by a request.
    serving_config: str
    # Variable name -> its value, as in the store config.
    secrets: dict[str, pulumi.Output[str]]
    # What a client of the store connects to: the registry and offline store's database, and
    # the online store.
    addresses: tuple[network.Address, ...]


@dataclass(frozen=True)
class FeastArgs:
    config: FeastConfig
    namespace: str
    database: PostgresDatabase
    redis: RedisEndpoint
    # The project's workload image, which carries the feature repo.
    workloads_image: str
    # What must be ready before `feast apply` runs: the database and Redis.
    needs: Sequence[pulumi.Resource] = ()
    # The registry login for the workload image (None: it is public or on the nodes).
    image_pull: kube.ImagePull | None = None


def registry_url(database: PostgresDatabase) -> pulumi.Output[str]:
    """The SQL registry's SQLAlchemy URL: the feast image's driver is psycopg 3."""
    d = database
    url = d.password.apply(
        lambda pw: (
            f"postgresql+psycopg://{d.user}:{quote(pw, safe='')}@{d.host}:{d.port}/{d.name}"
            f"?sslmode={d.ssl_mode}"
        )
    )
    return pulumi.Output.secret(url)


class _Quoted(str):
    """A value written double-quoted, so that whatever a `${VARIABLE}` expands to stays a
    string (a password of digits would otherwise turn into a number)."""


class _StoreDumper(yaml.SafeDumper):
    pass


_StoreDumper.add_representer(
    _Quoted, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, '"')
)


def store_config(
    project: str, database: PostgresDatabase, redis: RedisEndpoint, serving: bool = False
) -> str:
    """The platform's feature_store.yaml; every credential is a `${VARIABLE}` reference.

    `serving`: for online reads on the request path. In Feast's default `sync` cache mode the
    first read after the registry cache expires (`cache_ttl_seconds`) refreshes it from the SQL
    registry before answering; in `thread` mode a background thread refreshes it at that
    interval and reads never wait for the database.
    """
    connection = f"{redis.host}:{redis.port},password=${{{REDIS_PASSWORD_ENV}}}"
    config: dict[str, Any] = {
        "project": project,
        "provider": "local",
        "registry": {
            "registry_type": "sql",
            "path": _Quoted(f"${{{REGISTRY_URL_ENV}}}"),
            "cache_ttl_seconds": 60,
            **({"cache_mode": "thread"} if serving else {}),
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        },
        "offline_store": {
            "type": "postgres",
            "host": database.host,
            "port": database.port,
            "database": database.name,
            "db_schema": "public",
            "user": database.user,
            "password": _Quoted(f"${{{POSTGRES_PASSWORD_ENV}}}"),
            "sslmode": database.ssl_mode,
        },
        "online_store": {
            "type": "redis",
            "connection_string": _Quoted(connection + (",ssl=true" if redis.tls else "")),
        },
        "entity_key_serialization_version": 3,
        "auth": {"type": "no_auth"},
    }
    header = (
        "# Generated by mlops-platform from the stack's outputs; do not edit.\n"
        f"# Feast expands {REGISTRY_URL_ENV}, {POSTGRES_PASSWORD_ENV} and\n"
        f"# {REDIS_PASSWORD_ENV} from the environment when it reads this file.\n"
    )
    return header + yaml.dump(config, Dumper=_StoreDumper, sort_keys=False, width=200)


class Feast(pulumi.ComponentResource):
    endpoint: str
    project: str
    store_config: str
    client: FeatureStoreClient
    # Where clients reach the feature server.
    address: network.Address
    telemetry: Telemetry
    network: network.Network
    # The stack outputs, under the key "feast".
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: FeastArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Feast", name, None, opts)
        cfg, ns = args.config, args.namespace
        host = kube.service_host(COMPONENT, ns)
        self.endpoint = f"http://{host}:{PORT}"
        self.project = cfg.project
        self.store_config = store_config(cfg.project, args.database, args.redis)
        self.client = FeatureStoreClient(
            self.store_config,
            store_config(cfg.project, args.database, args.redis, serving=True),
            {
                REGISTRY_URL_ENV: registry_url(args.database),
                POSTGRES_PASSWORD_ENV: args.database.password,
                REDIS_PASSWORD_ENV: args.redis.password,
            },
            (args.database.address, args.redis.address),
        )
        pods = network.component_pods(COMPONENT, ns, kube.selector(COMPONENT))
        listener = network.Listener(pods, {"http": PORT, "metrics": METRICS_PORT}, (host,))
        self.address = listener.at("http")
        # The server, the apply Job and the materialization read and write both stores.
        self.network = network.Network(
            COMPONENT,
            pods=(pods,),
            listeners=(listener,),
            edges=tuple(network.Edge(pods, address) for address in self.client.addresses),
        )
        child = pulumi.ResourceOptions(parent=self)
        secret = kube.secret(
            SECRET_NAME,
            ns,
            COMPONENT,
            "feature-store",
            {"registry-url": registry_url(args.database)},
            self,
        )
        config_map = k8s.core.v1.ConfigMap(
            COMPONENT,
            metadata=kube.metadata(COMPONENT, ns, COMPONENT, "feature-store"),
            data={"feature_store.yaml": self.store_config},
            opts=child,
        )
        env = self._env(args)
        self._secret_digest = kube.secret_digest(
            registry_url(args.database), args.database.password, args.redis.password
        )
        needs: list[pulumi.Resource] = [secret, config_map, *args.needs]
        if args.image_pull is not None:
            needs.append(kube.image_pull_secret(ns, COMPONENT, args.image_pull, child))
        apply = self._apply_job(args, env, needs)
        self._server(args, env, apply)
        self._materialize(args, env, apply)
        # feast/metrics.py of the pinned version: what `feast serve --metrics` exposes.
        self.telemetry = Telemetry(
            COMPONENT,
            targets=(ScrapeTarget(COMPONENT, f"{host}:{METRICS_PORT}"),),
            metrics=frozenset(
                {
                    "feast_feature_server_request_total",
                    "feast_online_features_request_total",
                    "feast_feature_freshness_seconds",
                }
            )
            | histogram("feast_feature_server_request_latency_seconds")
            | histogram("feast_feature_server_online_store_read_duration_seconds"),
            rules=("platform.yaml", "feature_store.yaml"),
            workloads=(Workload.of(COMPONENT, deployment_pods(COMPONENT), cfg.resources),),
        )
        self.outputs = {
            "feast": {
                "endpoint": self.endpoint,
                "project": self.project,
                "featureStoreYaml": self.store_config,
            }
        }
        self.register_outputs(self.outputs)

    @staticmethod
    def _env(args: FeastArgs) -> list[kube.Spec]:
        return [
            kube.secret_env(REGISTRY_URL_ENV, SECRET_NAME, "registry-url"),
            kube.secret_env(POSTGRES_PASSWORD_ENV, args.database.secret_name, "password"),
            kube.secret_env(REDIS_PASSWORD_ENV, args.redis.secret_name, "password"),
            {"name": "HOME", "value": "/tmp"},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ]

    @staticmethod
    def _mounts() -> list[kube.Spec]:
        return [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ]

    @staticmethod
    def _volumes() -> list[kube.Spec]:
        return [{"name": "config", "configMap": {"name": COMPONENT}}, kube.empty_dir("tmp", "1Gi")]

    def _repo_container(
        self, args: FeastArgs, env: list[kube.Spec], command: list[str]
    ) -> kube.Spec:
        return kube.job_container(
            "feast",
            args.workloads_image,
            JOB_SIZE,
            command=command,
            workingDir=REPO_DIR,
            env=[*env, {"name": "FEAST_FS_YAML_FILE_PATH", "value": CONFIG_FILE}],
            volumeMounts=self._mounts(),
        )

    def _apply_job(
        self, args: FeastArgs, env: list[kube.Spec], needs: list[pulumi.Resource]
    ) -> k8s.batch.v1.Job:
        """Registers the repo's definitions; re-run (replaced) when the image or config changes."""
        return kube.job(
            "feast-apply",
            args.namespace,
            COMPONENT,
            "apply",
            uid=versions.WORKLOADS_UID,
            runner=self._repo_container(args, env, ["feast", "apply"]),
            volumes=self._volumes(),
            needs=needs,
            parent=self,
            secret_digest=self._secret_digest,
            **kube.image_pull_fields(args.image_pull),
        )

    def _server(self, args: FeastArgs, env: list[kube.Spec], apply: pulumi.Resource) -> None:
        cfg, ns = args.config, args.namespace
        server = kube.container(
            COMPONENT,
            versions.FEAST_IMAGE,
            cfg.resources,
            ports={"http": PORT, "metrics": METRICS_PORT},
            probes=kube.Probes.server(kube.http_check(HEALTH_PATH, "http")),
            command=["feast"],
            args=serve_args(cfg.workers),
            workingDir="/tmp",
            env=env,
            volumeMounts=self._mounts(),
        )
        kube.service(
            COMPONENT,
            ns,
            COMPONENT,
            "feature-server",
            {"http": PORT, "metrics": METRICS_PORT},
            self,
        )
        kube.deployment(
            COMPONENT,
            ns,
            "feature-server",
            replicas=cfg.replicas,
            pod=kube.pod_spec(versions.FEAST_UID, [server], volumes=self._volumes()),
            needs=[apply],
            parent=self,
            config_digest=kube.checksum(self.store_config),
            secret_digest=self._secret_digest,
        )

    def _materialize(self, args: FeastArgs, env: list[kube.Spec], apply: pulumi.Resource) -> None:
        ns = args.namespace
        name = "feast-materialize"
        runner = self._repo_container(args, env, ["/bin/sh", "-c", MATERIALIZE])
        kube.cron_job(
            name,
            ns,
            COMPONENT,
            "materialize",
            schedule=args.config.materialize_schedule,
            pod=kube.pod_spec(
                versions.WORKLOADS_UID,
                [runner],
                restartPolicy="Never",
                volumes=self._volumes(),
                **kube.image_pull_fields(args.image_pull),
            ),
            starting_deadline=300,
            backoff=2,
            deadline=3_600,
            needs=[apply],
            parent=self,
        )


def serve_args(workers: int) -> list[str]:
    """`feast serve` on all interfaces (its default is loopback), metrics on METRICS_PORT."""
    return [
        f"--chdir={CONFIG_DIR}",
        "serve",
        "--host=0.0.0.0",
        f"--port={PORT}",
        f"--workers={workers}",
        "--metrics",
        "--no-access-log",
    ]
