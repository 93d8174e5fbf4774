"""MLflow: experiment tracking and the model registry, behind MLflow's basic-auth app.

The backend store and the auth tables live in the mlflow Postgres database; artifacts are
proxied by the server into the mlflow bucket. A Job runs the schema migrations of both before
the server rolls out, so an upgrade of the pinned version never leaves a crash-looping server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi

from infra import kube, network, sizes, versions
from infra.components.object_store import S3Endpoint
from infra.components.postgres import PostgresDatabase
from infra.config import MlflowConfig
from infra.configtypes import reveal
from infra.observability import (
    BasicAuth,
    ScrapeTarget,
    Telemetry,
    Workload,
    deployment_pods,
    histogram,
)

COMPONENT = "mlflow"
PORT = 5000
SECRET_NAME = "mlflow"
JOB_SIZE = sizes.Resources.of("100m", "256Mi", "1", "1Gi")
AUTH_CONFIG_PATH = "/etc/mlflow/basic_auth.ini"
PROMETHEUS_DIR = "/tmp/prometheus"
METRICS_PATH = "/metrics"
HEALTH_PATH = "/health"
ADMIN_PASSWORD_ENV = kube.secret_env("MLFLOW_AUTH_ADMIN_PASSWORD", SECRET_NAME, "admin-password")
# MLflow's own defaults; passing --allowed-hosts replaces them, so they are kept explicitly.
DEFAULT_ALLOWED_HOSTS = (
    "localhost",
    "localhost:*",
    "127.0.0.1",
    "127.0.0.1:*",
    "10.*",
    "192.168.*",
    *(f"172.{n}.*" for n in range(16, 32)),
)
# The server sets the admin's password only when it creates the admin: a rotated password is
# applied here, before the server rolls out.
SET_ADMIN_PASSWORD = (
    "import os; from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore; "
    "store = SqlAlchemyStore(); store.init_db(os.environ['MLFLOW_BACKEND_STORE_URI']); "
    "store.has_user('admin', use_primary=True) and "
    "store.update_user('admin', password=os.environ['MLFLOW_AUTH_ADMIN_PASSWORD'])"
)
UPGRADE = (
    'mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI" '
    '&& python -m mlflow.server.auth db upgrade --url "$MLFLOW_BACKEND_STORE_URI" '
    f'&& python -c "{SET_ADMIN_PASSWORD}"'
)


@dataclass(frozen=True)
class MlflowArgs:
    config: MlflowConfig
    namespace: str
    database: PostgresDatabase
    storage: S3Endpoint
    # What must be ready before the schema migration runs: the database's login and the bucket.
    needs: Sequence[pulumi.Resource] = ()


def backend_store_uri(database: PostgresDatabase) -> pulumi.Output[str]:
    """SQLAlchemy URL with the psycopg2 driver, the one the -full image carries."""
    d = database
    uri = d.password.apply(
        lambda pw: f"postgresql+psycopg2://{d.user}:{quote(pw, safe='')}@{d.host}:{d.port}/{d.name}"
    )
    return pulumi.Output.secret(uri.apply(lambda base: f"{base}?sslmode={d.ssl_mode}"))


def auth_config(database_uri: str) -> str:
    """basic_auth.ini: users and permissions in the tracking database (own version table)."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def allowed_hosts(cfg: MlflowConfig, namespace: str) -> list[str]:
    """Host headers the server accepts: its defaults, the in-cluster names, the configured
    patterns and the ingress hosts (with any port: a controller may listen on another)."""
    names = [
        COMPONENT,
        f"{COMPONENT}.{namespace}",
        f"{COMPONENT}.{namespace}.svc",
        kube.service_host(COMPONENT, namespace),
        *(cfg.ingress.hosts if cfg.ingress else ()),
    ]
    return [*DEFAULT_ALLOWED_HOSTS, *names, *(f"{n}:*" for n in names), *cfg.allowed_hosts]


def cors_origins(cfg: MlflowConfig) -> list[str]:
    """The ingress URLs: the server refuses a write whose Origin it does not know, and a
    browser sends its page's origin with the UI's writes."""
    urls = cfg.ingress.urls if cfg.ingress else ()
    return [*urls, *(f"{url}:*" for url in urls)]


class Mlflow(pulumi.ComponentResource):
    tracking_uri: str
    # Where the server puts proxied artifacts (`mlflow-artifacts:/` paths resolve below it).
    artifacts_destination: str
    # Where clients (the training tasks) reach the tracking server.
    address: network.Address
    telemetry: Telemetry
    network: network.Network
    # The stack outputs, under the key "mlflow".
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: MlflowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Mlflow", name, None, opts)
        cfg, ns = args.config, args.namespace
        host = kube.service_host(COMPONENT, ns)
        self.tracking_uri = f"http://{host}:{PORT}"
        self.artifacts_destination = f"s3://{args.storage.buckets['mlflow']}"
        store_uri = backend_store_uri(args.database)
        pods = network.component_pods(COMPONENT, ns, kube.selector(COMPONENT))
        listener = network.Listener(pods, {"http": PORT}, (host,))
        self.address = listener.at("http")
        # The server and its migration Job reach the database; the server the artifact store.
        self.network = network.Network(
            COMPONENT,
            pods=(pods,),
            listeners=(listener,),
            edges=(
                network.Edge(pods, args.database.address),
                network.Edge(pods, args.storage.address),
            ),
            exposed=(self.address,) if cfg.ingress else (),
        )
        secret = kube.secret(
            SECRET_NAME,
            ns,
            COMPONENT,
            "tracking",
            {
                "backend-store-uri": store_uri,
                "admin-password": reveal(cfg.admin_password),
                "flask-secret-key": reveal(cfg.flask_secret_key),
                "basic_auth.ini": store_uri.apply(auth_config),
            },
            self,
        )
        env = self._env(args)
        storage = args.storage
        read = [store_uri, storage.access_key, storage.secret_key, reveal(cfg.admin_password)]
        upgrade = kube.job(
            "mlflow-db-upgrade",
            ns,
            COMPONENT,
            "migration",
            uid=versions.MLFLOW_UID,
            runner=kube.job_container(
                "upgrade",
                versions.MLFLOW_IMAGE,
                JOB_SIZE,
                command=["/bin/sh", "-c", UPGRADE],
                env=[*env, ADMIN_PASSWORD_ENV],
                volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
            ),
            volumes=[kube.empty_dir("tmp")],
            needs=[secret, *args.needs],
            parent=self,
            secret_digest=kube.secret_digest(*read),
        )
        digest = kube.secret_digest(*read, reveal(cfg.flask_secret_key))
        self._server(args, env, [secret, upgrade], digest)
        # prometheus-flask-exporter as MLflow sets it up (mlflow/server/prometheus_exporter.py):
        # prefix mlflow_, labels method and status (no path); /metrics needs the admin login.
        self.telemetry = Telemetry(
            COMPONENT,
            targets=(
                ScrapeTarget(
                    COMPONENT,
                    f"{host}:{PORT}",
                    METRICS_PATH,
                    BasicAuth("admin", SECRET_NAME, "admin-password", reveal(cfg.admin_password)),
                ),
            ),
            metrics=frozenset({"mlflow_http_request_total"})
            | histogram("mlflow_http_request_duration_seconds"),
            rules=("platform.yaml",),
            workloads=(Workload.of(COMPONENT, deployment_pods(COMPONENT), cfg.resources),),
        )
        self.outputs = {
            "mlflow": {
                "trackingUri": self.tracking_uri,
                "artifactsDestination": self.artifacts_destination,
                **({"externalUrl": cfg.ingress.urls[0]} if cfg.ingress else {}),
            }
        }
        self.register_outputs(self.outputs)

    def _env(self, args: MlflowArgs) -> list[kube.Spec]:
        storage = args.storage
        return [
            kube.secret_env("MLFLOW_BACKEND_STORE_URI", SECRET_NAME, "backend-store-uri"),
            {"name": "MLFLOW_S3_ENDPOINT_URL", "value": storage.url},
            {"name": "AWS_DEFAULT_REGION", "value": storage.region},
            kube.secret_env("AWS_ACCESS_KEY_ID", storage.secret_name, "access-key-id"),
            kube.secret_env("AWS_SECRET_ACCESS_KEY", storage.secret_name, "secret-access-key"),
            {"name": "HOME", "value": "/tmp"},
        ]

    def _server(
        self,
        args: MlflowArgs,
        env: list[kube.Spec],
        needs: list[pulumi.Resource],
        secret_digest: pulumi.Output[str],
    ) -> None:
        cfg, ns = args.config, args.namespace
        origins = cors_origins(cfg)
        server = kube.container(
            COMPONENT,
            versions.MLFLOW_IMAGE,
            cfg.resources,
            ports={"http": PORT},
            probes=kube.Probes.server(kube.http_check(HEALTH_PATH, "http")),
            command=["mlflow"],
            args=[
                "server",
                "--host=0.0.0.0",
                f"--port={PORT}",
                f"--workers={cfg.workers}",
                "--serve-artifacts",
                f"--artifacts-destination={self.artifacts_destination}",
                "--default-artifact-root=mlflow-artifacts:/",
                f"--allowed-hosts={','.join(allowed_hosts(cfg, ns))}",
                *([f"--cors-allowed-origins={','.join(origins)}"] if origins else []),
                "--app-name=basic-auth",
                f"--expose-prometheus={PROMETHEUS_DIR}",
            ],
            workingDir="/tmp",
            env=[
                *env,
                {"name": "MLFLOW_AUTH_CONFIG_PATH", "value": AUTH_CONFIG_PATH},
                ADMIN_PASSWORD_ENV,
                kube.secret_env("MLFLOW_FLASK_SERVER_SECRET_KEY", SECRET_NAME, "flask-secret-key"),
            ],
            volumeMounts=[
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "auth", "mountPath": "/etc/mlflow", "readOnly": True},
            ],
        )
        kube.service(COMPONENT, ns, COMPONENT, "tracking", {"http": PORT}, self)
        if cfg.ingress:
            kube.ingress(COMPONENT, ns, "tracking", cfg.ingress, COMPONENT, PORT, self)
        kube.deployment(
            COMPONENT,
            ns,
            "tracking",
            replicas=cfg.replicas,
            pod=kube.pod_spec(
                versions.MLFLOW_UID,
                [server],
                volumes=[
                    kube.empty_dir("tmp", "1Gi"),
                    {
                        "name": "auth",
                        "secret": {
                            "secretName": SECRET_NAME,
                            "items": [{"key": "basic_auth.ini", "path": "basic_auth.ini"}],
                        },
                    },
                ],
            ),
            needs=needs,
            parent=self,
            secret_digest=secret_digest,
        )
