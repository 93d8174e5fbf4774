"""Flyte 1.16 (flyte-binary): workflow orchestration, as typed resources.

Mirrors the upstream flyte-binary chart at v1.16: one process (admin, propeller, data catalog,
scheduler) reading `/etc/flyte/config.d/*.yaml`, its own Postgres database, metadata and user
data in the flyte bucket, and its login (infra/components/flyteauth.py). Credentials never enter
a ConfigMap: the database password is a mounted file (`passwordPath`), the S3 keys and client
hashes config files in a Secret.

The platform creates every project-domain namespace and what tasks read there (the storage and
client Secret, the training ServiceAccount, the workloads settings), and gives Flyte a Role in
each: the cluster-resource manager is off, so Flyte creates no namespace and writes no Secret.
Cluster-wide it keeps what its informers need (propeller's `limit-namespace` takes one
namespace, not a list): list and watch of pods, pod templates and its workflows, and creating
its workflow CRD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import kube, network, versions
from infra.components import flyteauth
from infra.components.object_store import S3Endpoint
from infra.components.postgres import PostgresDatabase
from infra.config import FlyteConfig
from infra.configtypes import reveal
from infra.observability import ScrapeTarget, Telemetry, Workload, deployment_pods, summary

COMPONENT = "flyte"
HTTP_PORT = 8088
GRPC_PORT = 8089
METRICS_PORT = 10254
CONFIG_DIR = "/etc/flyte/config.d"
DB_PASSWORD_PATH = "/etc/flyte/db/password"
TASK_STORAGE_SECRET = "flyte-task-storage"
HEALTH_PATH = "/healthcheck"
FLYTEWORKFLOWS = {"apiGroups": ["flyte.lyft.com"], "resources": ["flyteworkflows"]}
# Cluster-wide: what propeller's informers list and watch in every namespace, and its CRD.
CLUSTER_RULES = [
    {"apiGroups": [""], "resources": ["pods", "podtemplates"], "verbs": ["get", "list", "watch"]},
    {**FLYTEWORKFLOWS, "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["create", "get", "list"],
    },
]
# In each project-domain namespace: run task pods, record events, keep workflows.
PROJECT_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "delete", "patch", "update"]},
    {
        **FLYTEWORKFLOWS,
        "verbs": [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
    },
]
# Task images are users' own and often run as root, so the project-domain namespaces enforce
# "baseline" and warn at "restricted".
PROJECT_POD_SECURITY = "baseline"
WAIT_FOR_DB = (
    'until pg_isready -h "$PGHOST" -p "$PGPORT" -U "$PGUSER"; '
    "do echo waiting for database; sleep 2; done"
)


@dataclass(frozen=True)
class TaskEnvironment:
    """What the reference training tasks read in every project namespace
    (workloads/training/workflow.py): plain settings, the Feast store config, and secrets
    (variable name -> value), which reach the namespaces in a Secret, never in a ConfigMap."""

    settings: dict[str, str]
    feature_store_yaml: str
    secrets: dict[str, pulumi.Output[str]]
    # The services the tasks connect to (MLflow, the feature stores, the Pushgateway).
    reaches: tuple[network.Address, ...] = ()


@dataclass(frozen=True)
class FlyteArgs:
    config: FlyteConfig
    namespace: str
    database: PostgresDatabase
    storage: S3Endpoint
    tasks: TaskEnvironment | None = None
    # The registry login for the project images in the project namespaces (None: not needed).
    image_pull: kube.ImagePull | None = None
    # What must be ready before Flyte starts and migrates its schema: its login and bucket.
    needs: Sequence[pulumi.Resource] = ()


def secrets_read(args: FlyteArgs) -> list[pulumi.Output[str]]:
    """The secret values Flyte's pod reads at start: its database password, the storage keys
    and its auth server's client secrets and keys (the project namespaces' Secrets are the
    platform's own objects: the task pods read them on each run)."""
    cfg = args.config
    oidc = [reveal(cfg.auth.oidc.client_secret)] if cfg.auth.oidc else []
    return [
        args.database.password,
        args.storage.access_key,
        args.storage.secret_key,
        reveal(cfg.client_secret),
        reveal(cfg.propeller_client_secret),
        reveal(cfg.session_key),
        reveal(cfg.token_signing_key),
        *oidc,
    ]


# The names workloads/training/workflow.py reads in each project namespace.
TRAINING_ACCOUNT = "mlops-training"
WORKLOADS_CONFIG = "mlops-workloads"


def project_namespaces(cfg: FlyteConfig) -> tuple[str, ...]:
    """The namespace of every project and domain (flyte-binary's `{{ project }}-{{ domain }}`)."""
    return tuple(f"{p}-{d}" for p in cfg.projects for d in cfg.domains)


def training_accounts(cfg: FlyteConfig) -> tuple[tuple[str, str], ...]:
    """The training tasks' ServiceAccount in every project-domain namespace."""
    return tuple((namespace, TRAINING_ACCOUNT) for namespace in project_namespaces(cfg))


def grpc_endpoint(namespace: str) -> str:
    return f"{kube.service_host(f'{COMPONENT}-grpc', namespace)}:{GRPC_PORT}"


def task_env(namespace: str, storage: S3Endpoint) -> dict[str, str]:
    """Plain settings of every task pod: where Flyte is and how to log in to it (flytekit's
    FLYTE_CREDENTIALS_*; the secret comes from the task Secret)."""
    return {
        "FLYTE_PLATFORM_URL": grpc_endpoint(namespace),
        "FLYTE_PLATFORM_INSECURE": "true",
        "FLYTE_CREDENTIALS_AUTH_MODE": "ClientSecret",
        "FLYTE_CREDENTIALS_CLIENT_ID": flyteauth.CI_CLIENT,
        "FLYTE_AWS_ENDPOINT": storage.url,
    }


def config_files(args: FlyteArgs) -> dict[str, dict[str, Any]]:
    """The flyte-binary config files, by name; none holds a secret value."""
    cfg, db, storage = args.config, args.database, args.storage
    bucket = storage.buckets["flyte"]
    ingress_urls = cfg.ingress.urls if cfg.ingress else ()
    return {
        "000-core.yaml": {
            "admin": {
                "endpoint": f"localhost:{GRPC_PORT}",
                "insecure": True,
                "authType": "ClientSecret",
                "clientId": flyteauth.PROPELLER_CLIENT,
                "clientSecretLocation": (
                    f"{flyteauth.SECRETS_DIR}/{flyteauth.PROPELLER_SECRET_FILE}"
                ),
            },
            "catalog-cache": {
                "endpoint": "localhost:8081",
                "insecure": True,
                "type": "datacatalog",
            },
            "domains": [{"id": d, "name": d} for d in cfg.domains],
            "namespace_mapping": {"template": "{{ project }}-{{ domain }}"},
            "logger": {"show-source": True, "level": 1},
            "propeller": {"create-flyteworkflow-crd": True, "prof-port": METRICS_PORT},
            "flyte": {
                "admin": {
                    "disabled": False,
                    "disableScheduler": False,
                    # The platform writes the project namespaces' objects itself.
                    "disableClusterResourceManager": True,
                    "seedProjects": list(cfg.projects),
                },
                "dataCatalog": {"disabled": False},
                # The secret-injection webhook registers itself cluster-wide at run time,
                # outside Pulumi's view: off, so a destroy leaves nothing behind.
                "propeller": {"disabled": False, "disableWebhook": True},
            },
        },
        "001-plugins.yaml": {
            "tasks": {
                "task-plugins": {
                    "enabled-plugins": ["container", "sidecar", "k8s-array", "echo"],
                    "default-for-task-types": {
                        "container": "container",
                        "sidecar": "sidecar",
                        "container_array": "k8s-array",
                    },
                }
            },
            "plugins": {
                "logs": {
                    "kubernetes-enabled": False,
                    "cloudwatch-enabled": False,
                    "stackdriver-enabled": False,
                },
                "k8s": {
                    "co-pilot": {"image": versions.FLYTE_COPILOT_IMAGE},
                    "default-env-vars": task_env(args.namespace, storage),
                    "default-env-from-secrets": [TASK_STORAGE_SECRET],
                },
            },
        },
        "002-database.yaml": {
            "database": {
                "postgres": {
                    "username": db.user,
                    "host": db.host,
                    "port": db.port,
                    "dbname": db.name,
                    "options": f"sslmode={db.ssl_mode}",
                    "passwordPath": DB_PASSWORD_PATH,
                }
            }
        },
        "003-storage.yaml": {
            "propeller": {"rawoutput-prefix": f"s3://{bucket}/data"},
            "storage": {
                "type": "stow",
                "container": bucket,
                "stow": {
                    "kind": "s3",
                    "config": {
                        "region": storage.region,
                        "disable_ssl": storage.url.startswith("http://"),
                        "v2_signing": False,
                        "endpoint": storage.url,
                        "auth_type": "accesskey",
                    },
                },
            },
        },
        "004-auth.yaml": flyteauth.config_file(
            cfg, args.namespace, (f"{COMPONENT}-http", HTTP_PORT), ingress_urls
        ),
    }


def storage_secret_file(keys: list[str]) -> str:
    return yaml.safe_dump(
        {"storage": {"stow": {"config": {"access_key_id": keys[0], "secret_key": keys[1]}}}}
    )


def flyte_network(args: FlyteArgs, http_host: str) -> network.Network:
    """Flyte reaches its database, the object store and the API server; the task pods of every
    project namespace reach Flyte, the object store and what the tasks' settings name."""
    ns = args.namespace
    pods = network.component_pods(COMPONENT, ns, kube.selector(COMPONENT))
    listener = network.Listener(
        pods,
        {"http": HTTP_PORT, "grpc": GRPC_PORT, "metrics": METRICS_PORT},
        (http_host, kube.service_host(f"{COMPONENT}-grpc", ns)),
    )
    reaches = (
        listener.at("grpc"),
        listener.at("http"),
        args.storage.address,
        *(args.tasks.reaches if args.tasks else ()),
    )
    tasks = [network.Pods(f"tasks-{where}", where) for where in project_namespaces(args.config)]
    return network.Network(
        COMPONENT,
        pods=(pods,),
        listeners=(listener,),
        edges=(
            network.Edge(pods, args.database.address),
            network.Edge(pods, args.storage.address),
            *(network.Edge(task, address) for task in tasks for address in reaches),
        ),
        api_server=(pods,),
        exposed=(listener.at("http"),) if args.config.ingress else (),
    )


def task_secret(args: FlyteArgs) -> dict[str, pulumi.Output[str]]:
    """What every task pod reads from its namespace's task Secret (`envFrom`): the S3 keys and
    the `mlops-ci` client secret."""
    return {
        "FLYTE_AWS_ACCESS_KEY_ID": args.storage.access_key,
        "FLYTE_AWS_SECRET_ACCESS_KEY": args.storage.secret_key,
        "FLYTE_CREDENTIALS_CLIENT_SECRET": reveal(args.config.client_secret),
    }


def project_objects(args: FlyteArgs, ns: str, parent: pulumi.Resource) -> list[pulumi.Resource]:
    """A project-domain namespace with Flyte's Role and what the tasks read there."""
    child = pulumi.ResourceOptions(parent=parent)
    namespace = kube.namespace(ns, child, enforce=PROJECT_POD_SECURITY)
    inside = pulumi.ResourceOptions(parent=parent, depends_on=[namespace])
    part = "orchestration"
    name = f"{args.namespace}-{COMPONENT}"
    role = k8s.rbac.v1.Role(
        f"{ns}-{COMPONENT}",
        metadata=kube.metadata(name, ns, COMPONENT, part),
        rules=PROJECT_RULES,
        opts=inside,
    )
    found: list[pulumi.Resource] = [
        namespace,
        role,
        k8s.rbac.v1.RoleBinding(
            f"{ns}-{COMPONENT}",
            metadata=kube.metadata(name, ns, COMPONENT, part),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": COMPONENT, "namespace": args.namespace}],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[namespace, role]),
        ),
        k8s.core.v1.Secret(
            f"{ns}-{TASK_STORAGE_SECRET}",
            metadata=kube.metadata(TASK_STORAGE_SECRET, ns, COMPONENT, part),
            type="Opaque",
            string_data=task_secret(args),
            opts=inside,
        ),
    ]
    # Task pods that name no ServiceAccount run as `default`, which holds no role: no token.
    found.append(
        k8s.core.v1.ServiceAccountPatch(
            f"{ns}-default",
            metadata=kube.metadata("default", ns, COMPONENT, part),
            automount_service_account_token=False,
            opts=inside,
        )
    )
    if args.image_pull:
        found.append(
            k8s.core.v1.Secret(
                f"{ns}-{kube.IMAGE_PULL_SECRET}",
                metadata=kube.metadata(kube.IMAGE_PULL_SECRET, ns, COMPONENT, part),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": args.image_pull.docker_config()},
                opts=inside,
            )
        )
    tasks = args.tasks
    if tasks:
        found += [
            k8s.core.v1.ServiceAccount(
                f"{ns}-{TRAINING_ACCOUNT}",
                metadata=kube.metadata(TRAINING_ACCOUNT, ns, COMPONENT, part),
                # The training task deploys its model (a Role in the model namespace); its pod
                # template mounts the token explicitly (workloads/training/workflow.py).
                automount_service_account_token=False,
                image_pull_secrets=kube.image_pull_fields(args.image_pull).get("imagePullSecrets"),
                opts=inside,
            ),
            k8s.core.v1.ConfigMap(
                f"{ns}-{WORKLOADS_CONFIG}",
                metadata=kube.metadata(WORKLOADS_CONFIG, ns, COMPONENT, part),
                data=dict(sorted(tasks.settings.items())),
                opts=inside,
            ),
            k8s.core.v1.ConfigMap(
                f"{ns}-{WORKLOADS_CONFIG}-feast",
                metadata=kube.metadata(f"{WORKLOADS_CONFIG}-feast", ns, COMPONENT, part),
                data={"feature_store.yaml": tasks.feature_store_yaml},
                opts=inside,
            ),
            k8s.core.v1.Secret(
                f"{ns}-{WORKLOADS_CONFIG}",
                metadata=kube.metadata(WORKLOADS_CONFIG, ns, COMPONENT, part),
                type="Opaque",
                string_data=dict(sorted(tasks.secrets.items())),
                opts=inside,
            ),
        ]
    return found


# Propeller's workflow metrics (flytestdlib promutils): stopwatches are summaries in ms, with
# the labels project, domain, wf and task; the completed runs are their _count series.
WORKFLOW_METRICS = "flyte:propeller:all:workflow"


class Flyte(pulumi.ComponentResource):
    endpoint: str
    console_url: str
    telemetry: Telemetry
    network: network.Network
    # The stack outputs, under the key "flyte".
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: FlyteArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Flyte", name, None, opts)
        ns = args.namespace
        child = pulumi.ResourceOptions(parent=self)
        http_host = kube.service_host(f"{COMPONENT}-http", ns)
        self.endpoint = grpc_endpoint(ns)
        self.console_url = f"http://{http_host}:{HTTP_PORT}/console"
        files = {n: yaml.safe_dump(c, sort_keys=True) for n, c in config_files(args).items()}
        issuer = None if args.config.auth.oidc else flyteauth.issuer_document()
        needs: list[pulumi.Resource] = [
            *args.needs,
            k8s.core.v1.ConfigMap(
                "flyte-config",
                metadata=kube.metadata("flyte-config", ns, COMPONENT, "orchestration"),
                data=files,
                opts=child,
            ),
            kube.secret(
                "flyte-config-secret",
                ns,
                COMPONENT,
                "orchestration",
                {
                    "013-storage-secrets.yaml": pulumi.Output.all(
                        args.storage.access_key, args.storage.secret_key
                    ).apply(storage_secret_file),
                    "014-auth-secrets.yaml": flyteauth.secret_file(args.config),
                },
                self,
            ),
            kube.secret(
                flyteauth.AUTH_SECRET,
                ns,
                COMPONENT,
                "orchestration",
                flyteauth.secret_files(args.config),
                self,
            ),
            *kube.cluster_access(COMPONENT, ns, "orchestration", CLUSTER_RULES, self),
            # Flyte runs after its project namespaces exist and is deleted before them.
            *(
                resource
                for name in project_namespaces(args.config)
                for resource in project_objects(args, name, self)
            ),
        ]
        if issuer:
            needs.append(
                k8s.core.v1.ConfigMap(
                    flyteauth.ISSUER_CONFIG,
                    metadata=kube.metadata(flyteauth.ISSUER_CONFIG, ns, COMPONENT, "orchestration"),
                    data={"openid-configuration": issuer},
                    opts=child,
                )
            )
        self._services(ns)
        ingress = args.config.ingress
        if ingress:
            kube.ingress(
                COMPONENT, ns, "orchestration", ingress, f"{COMPONENT}-http", HTTP_PORT, self
            )
        self._deployment(args, needs, kube.checksum(*files.values(), issuer or ""))
        self.network = flyte_network(args, http_host)
        self.telemetry = Telemetry(
            COMPONENT,
            targets=(ScrapeTarget(COMPONENT, f"{http_host}:{METRICS_PORT}"),),
            metrics=summary(f"{WORKFLOW_METRICS}:success_duration_ms")
            | summary(f"{WORKFLOW_METRICS}:failure_duration_ms")
            | {f"{WORKFLOW_METRICS}:accepted"},
            rules=("platform.yaml", "training.yaml"),
            workloads=(Workload.of(COMPONENT, deployment_pods(COMPONENT), args.config.resources),),
        )
        self.outputs = {
            "flyte": {
                "endpoint": self.endpoint,
                "console": self.console_url,
                # pyflyte's and CI's login; its secret is the stack's flyteClientSecret.
                "clientId": flyteauth.CI_CLIENT,
                **({"externalConsole": f"{ingress.urls[0]}/console"} if ingress else {}),
            }
        }
        self.register_outputs(self.outputs)

    def _services(self, ns: str) -> None:
        for name, ports in [
            (f"{COMPONENT}-http", {"http": HTTP_PORT, "metrics": METRICS_PORT}),
            (f"{COMPONENT}-grpc", {"grpc": GRPC_PORT}),
        ]:
            kube.service(name, ns, COMPONENT, "orchestration", ports, self)

    def _deployment(self, args: FlyteArgs, needs: list[pulumi.Resource], checksum: str) -> None:
        ns, db = args.namespace, args.database
        wait_for_db = kube.job_container(
            "wait-for-db",
            versions.POSTGRES_IMAGE,
            kube.SMALL_JOB,
            command=["/bin/sh", "-c", WAIT_FOR_DB],
            env=[
                {"name": "PGHOST", "value": db.host},
                {"name": "PGPORT", "value": str(db.port)},
                {"name": "PGUSER", "value": db.user},
            ],
        )
        flyte = kube.container(
            COMPONENT,
            versions.FLYTE_IMAGE,
            args.config.resources,
            ports={"http": HTTP_PORT, "grpc": GRPC_PORT, "metrics": METRICS_PORT},
            probes=kube.Probes.server(kube.http_check(HEALTH_PATH, "http")),
            args=["start", "--config", f"{CONFIG_DIR}/*.yaml"],
            env=[
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {
                    "name": "POD_NAMESPACE",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                },
            ],
            volumeMounts=[
                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                {"name": "db-password", "mountPath": "/etc/flyte/db", "readOnly": True},
                {"name": "auth", "mountPath": flyteauth.SECRETS_DIR, "readOnly": True},
                {"name": "state", "mountPath": "/var/run/flyte"},
                {"name": "tmp", "mountPath": "/tmp"},
                kube.api_token_mount(),
            ],
        )
        containers = [flyte]
        volumes = [
            {
                "name": "config",
                "projected": {
                    "sources": [
                        {"configMap": {"name": "flyte-config"}},
                        {"secret": {"name": "flyte-config-secret"}},
                    ]
                },
            },
            {
                "name": "db-password",
                "secret": {
                    "secretName": db.secret_name,
                    "items": [{"key": "password", "path": "password"}],
                },
            },
            {"name": "auth", "secret": {"secretName": flyteauth.AUTH_SECRET}},
            kube.empty_dir("state"),
            kube.empty_dir("tmp", "1Gi"),
        ]
        if args.config.auth.oidc is None:
            containers.append(self._issuer())
            volumes.append(
                {
                    "name": "issuer",
                    "configMap": {
                        "name": flyteauth.ISSUER_CONFIG,
                        "items": [
                            {
                                "key": "openid-configuration",
                                "path": ".well-known/openid-configuration",
                            }
                        ],
                    },
                }
            )
        kube.deployment(
            COMPONENT,
            ns,
            "orchestration",
            # One process holds the propeller and scheduler leases: never two at once.
            replicas=1,
            strategy="Recreate",
            pod=kube.pod_spec(
                versions.FLYTE_UID,
                containers,
                serviceAccountName=COMPONENT,
                initContainers=[wait_for_db],
                # Flyte drives the Kubernetes API (task pods, namespaces): it needs a token.
                volumes=[*volumes, kube.api_token_volume()],
            ),
            needs=needs,
            parent=self,
            config_digest=checksum,
            secret_digest=kube.secret_digest(*secrets_read(args)),
        )

    @staticmethod
    def _issuer() -> dict[str, Any]:
        """The stand-in OpenID Connect issuer flyteadmin discovers at start when the stack
        names no identity provider: a static document, nothing else."""
        return kube.container(
            "oidc-issuer",
            versions.PYTHON_IMAGE,
            kube.SIDECAR,
            ports={"issuer": flyteauth.ISSUER_PORT},
            probes=kube.Probes.sidecar(
                kube.http_check("/.well-known/openid-configuration", "issuer")
            ),
            command=[
                "python",
                "-m",
                "http.server",
                str(flyteauth.ISSUER_PORT),
                "--directory",
                flyteauth.ISSUER_DIR,
            ],
            volumeMounts=[{"name": "issuer", "mountPath": flyteauth.ISSUER_DIR, "readOnly": True}],
        )
