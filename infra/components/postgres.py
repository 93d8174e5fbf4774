"""PostgreSQL: one server (in-cluster, or an existing external one) and a database per consumer.

Each consumer (mlflow, flyte, feast) gets its own login and database, created by an idempotent
Job that runs on every deploy and creates only what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from infra import kube, network, versions
from infra.config import PostgresConfig
from infra.configtypes import reveal
from infra.observability import ScrapeTarget, Telemetry, Workload, statefulset_pods

COMPONENT = "postgres"
PORT = 5432
METRICS_PORT = 9187

# Creates each consumer's role and database only when missing; sets the password every run
# so that a rotated secret takes effect. Passwords arrive as psql variables, never in argv.
INIT_SCRIPT = r"""#!/bin/sh
set -eu
until pg_isready --quiet --timeout=5; do
  echo "waiting for postgres at ${PGHOST}:${PGPORT}"
  sleep 2
done
for db in $DATABASES; do
  password="$(printenv "PASSWORD_$(echo "$db" | tr '[:lower:]' '[:upper:]')")"
  psql --no-psqlrc --set=ON_ERROR_STOP=1 --quiet --set=name="$db" --set=password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
ALTER ROLE :"name" WITH LOGIN PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT ALL ON DATABASE :"name" TO :"name";
SQL
  echo "database ${db} ready"
done
"""


# POSTGRES_PASSWORD only applies at initdb: on every start the server's container sets the
# superuser's password from it again, over the local socket, which the image's initdb trusts
# (no --auth-local). The password comes from the environment, never from argv.
APPLY_SUPERUSER_PASSWORD = r"""set -u
for attempt in $(seq 60); do
  if pg_isready --quiet --dbname=postgres --timeout=5 && psql --no-psqlrc --quiet \
      --set=ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres <<'SQL'
\getenv password POSTGRES_PASSWORD
ALTER ROLE CURRENT_USER WITH PASSWORD :'password';
SQL
  then
    exit 0
  fi
  sleep 2
done
echo "could not set the password of ${POSTGRES_USER}" >&2
exit 1
"""


@dataclass(frozen=True)
class PostgresDatabase:
    """What a consumer needs to reach its database: the endpoint this component exports."""

    host: str
    port: int
    name: str
    user: str
    ssl_mode: str
    password: pulumi.Output[str]
    url: pulumi.Output[str]
    # Kubernetes Secret with keys username, password, database, host, port and url.
    secret_name: str
    # Where consumers connect: the server's pods, or the external server.
    address: network.Address


@dataclass(frozen=True)
class PostgresArgs:
    config: PostgresConfig
    namespace: str
    # The data volume of the in-cluster server (unused with `external`).
    storage: kube.Storage


def database_url(
    host: str, port: int, name: str, ssl_mode: str, password: pulumi.Output[str]
) -> pulumi.Output[str]:
    url = password.apply(
        lambda pw: f"postgresql://{name}:{quote(pw, safe='')}@{host}:{port}/{name}"
    )
    return pulumi.Output.secret(url.apply(lambda base: f"{base}?sslmode={ssl_mode}"))


class Postgres(pulumi.ComponentResource):
    databases: Mapping[str, PostgresDatabase]
    host: str
    port: int
    telemetry: Telemetry
    network: network.Network
    # The stack outputs, under the key "postgres".
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Postgres", name, None, opts)
        cfg = args.config
        ns = args.namespace
        external = cfg.external
        self.host = external.host if external else kube.service_host(COMPONENT, ns)
        self.port = external.port if external else PORT
        ssl_mode = external.ssl_mode if external else "disable"
        admin_user = external.admin_user if external else "postgres"

        pods = network.component_pods(COMPONENT, ns, kube.selector(COMPONENT))
        listener = network.Listener(
            pods, {"postgres": PORT, "metrics": METRICS_PORT}, (kube.service_host(COMPONENT, ns),)
        )
        address = network.outside(self.host, self.port) if external else listener.at("postgres")
        # The init Job's pods carry the server's labels: they reach the server (or the external
        # one) to create the databases.
        self.network = network.Network(
            COMPONENT,
            pods=(pods,),
            listeners=() if external else (listener,),
            edges=(network.Edge(pods, address),),
        )
        admin = kube.secret(
            "postgres-admin",
            ns,
            COMPONENT,
            "database",
            {"username": admin_user, "password": reveal(cfg.admin_password)},
            self,
        )
        server: list[pulumi.Resource] = []
        admin_password = reveal(cfg.admin_password)
        if external is None:
            server = self._server(args, admin, admin_password)

        secrets: list[pulumi.Resource] = [admin]
        read: list[pulumi.Output[str]] = [admin_password]
        databases: dict[str, PostgresDatabase] = {}
        for db, secret_value in cfg.consumer_passwords.items():
            password = reveal(secret_value)
            url = database_url(self.host, self.port, db, ssl_mode, password)
            secret_name = f"postgres-{db}"
            secret = kube.secret(
                secret_name,
                ns,
                COMPONENT,
                "database",
                {
                    "username": db,
                    "password": password,
                    "database": db,
                    "host": self.host,
                    "port": str(self.port),
                    "url": url,
                },
                self,
            )
            secrets.append(secret)
            read.append(password)
            databases[db] = PostgresDatabase(
                self.host, self.port, db, db, ssl_mode, password, url, secret_name, address
            )
        self.databases = databases
        self.telemetry = Telemetry(COMPONENT)
        if external is None:
            self.telemetry = Telemetry(
                COMPONENT,
                targets=(ScrapeTarget(COMPONENT, f"{self.host}:{METRICS_PORT}"),),
                metrics=frozenset({"pg_up", "pg_database_size_bytes"}),
                rules=("platform.yaml", "storage.yaml"),
                workloads=(Workload.of(COMPONENT, statefulset_pods(COMPONENT), cfg.resources),),
            )
        self._init_job(args, admin_user, ssl_mode, [*server, *secrets], kube.secret_digest(*read))
        self.outputs = {
            "postgres": {
                "host": self.host,
                "port": self.port,
                "databases": {
                    name: {"name": d.name, "user": d.user, "secret": d.secret_name, "url": d.url}
                    for name, d in databases.items()
                },
            }
        }
        self.register_outputs(self.outputs)

    def _server(
        self, args: PostgresArgs, admin: k8s.core.v1.Secret, password: pulumi.Output[str]
    ) -> list[pulumi.Resource]:
        cfg, ns = args.config, args.namespace
        ready = kube.exec_check(
            ["pg_isready", "--username=postgres", "--host=127.0.0.1", f"--port={PORT}"]
        )
        postgres = kube.container(
            COMPONENT,
            versions.POSTGRES_IMAGE,
            cfg.resources,
            ports={"postgres": PORT},
            probes=kube.Probes.server(ready),
            env=[
                {"name": "POSTGRES_USER", "value": "postgres"},
                kube.secret_env("POSTGRES_PASSWORD", "postgres-admin", "password"),
            ],
            lifecycle={
                "postStart": {"exec": {"command": ["/bin/sh", "-c", APPLY_SUPERUSER_PASSWORD]}}
            },
            volumeMounts=[
                {"name": "data", "mountPath": "/var/lib/postgresql"},
                {"name": "run", "mountPath": "/var/run/postgresql"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        )
        exporter = kube.exporter(
            versions.POSTGRES_EXPORTER_IMAGE,
            METRICS_PORT,
            "/",
            [
                {"name": "DATA_SOURCE_URI", "value": f"127.0.0.1:{PORT}/postgres?sslmode=disable"},
                {"name": "DATA_SOURCE_USER", "value": "postgres"},
                kube.secret_env("DATA_SOURCE_PASS", "postgres-admin", "password"),
            ],
        )
        service = kube.service(
            COMPONENT, ns, COMPONENT, "database", {"postgres": PORT, "metrics": METRICS_PORT}, self
        )
        statefulset = kube.stateful_set(
            COMPONENT,
            ns,
            "database",
            pod=kube.pod_spec(
                versions.POSTGRES_UID,
                [postgres, exporter],
                terminationGracePeriodSeconds=60,
                volumes=[kube.empty_dir("run"), kube.empty_dir("tmp", "1Gi")],
            ),
            size=cfg.storage_size,
            storage=args.storage,
            needs=[admin],
            parent=self,
            secret_digest=kube.secret_digest(password),
        )
        return [service, statefulset]

    def _init_job(
        self,
        args: PostgresArgs,
        admin_user: str,
        ssl_mode: str,
        needs: list[pulumi.Resource],
        secret_digest: pulumi.Output[str],
    ) -> None:
        names = sorted(args.config.consumer_passwords)
        env = [
            {"name": "PGHOST", "value": self.host},
            {"name": "PGPORT", "value": str(self.port)},
            {"name": "PGUSER", "value": admin_user},
            {"name": "PGDATABASE", "value": "postgres"},
            {"name": "PGSSLMODE", "value": ssl_mode},
            {"name": "PGCONNECT_TIMEOUT", "value": "5"},
            kube.secret_env("PGPASSWORD", "postgres-admin", "password"),
            {"name": "DATABASES", "value": " ".join(names)},
        ] + [
            kube.secret_env(f"PASSWORD_{db.upper()}", f"postgres-{db}", "password") for db in names
        ]
        kube.script_job(
            "postgres-init",
            args.namespace,
            COMPONENT,
            image=versions.POSTGRES_IMAGE,
            uid=versions.POSTGRES_UID,
            size=kube.SMALL_JOB,
            script=INIT_SCRIPT,
            env=env,
            needs=needs,
            parent=self,
            secret_digest=secret_digest,
        )
