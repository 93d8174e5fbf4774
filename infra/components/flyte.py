"""Flyte 1.16 (flyte-binary): workflow orchestration, as typed resources.

Mirrors the upstream flyte-binary chart at v1.16: one process (admin, propeller, data catalog,
scheduler) reading `/etc/flyte/config.d/*.yaml`, its own Postgres database, metadata and user
data in the flyte bucket. Credentials never enter a ConfigMap: the database password is a
mounted file (`passwordPath`), the S3 keys a config file in a Secret, and task pods get theirs
from a Secret that the cluster-resource manager writes into each project namespace (as it
writes a private registry's pull Secret, which the training ServiceAccount names).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import kube, versions
from infra.components.object_store import S3Endpoint
from infra.components.postgres import PostgresDatabase
from infra.config import FlyteConfig
from infra.observability import ScrapeTarget, Telemetry, Workload, deployment_pods, summary

COMPONENT = "flyte"
HTTP_PORT = 8088
GRPC_PORT = 8089
METRICS_PORT = 10254
CONFIG_DIR = "/etc/flyte/config.d"
TEMPLATE_DIR = "/etc/flyte/cluster-resource-templates"
DB_PASSWORD_PATH = "/etc/flyte/db/password"
STORAGE_DIR = "/etc/flyte/storage"
TASK_STORAGE_SECRET = "flyte-task-storage"
HEALTH_PATH = "/healthcheck"
# The rules of the upstream chart's ClusterRole (flyte-binary v1.16).
RBAC_RULES = [
    {
        "apiGroups": [""],
        "resources": ["namespaces", "resourcequotas", "secrets", "serviceaccounts"],
        "verbs": ["create", "get", "list", "patch", "update"],
    },
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "delete", "patch", "update"]},
    {"apiGroups": [""], "resources": ["podtemplates"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["flyte.lyft.com"],
        "resources": ["flyteworkflows"],
        "verbs": [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "post",
            "update",
            "watch",
        ],
    },
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["create", "get", "list"],
    },
]
# Task images are users' own and often run as root, so the project-domain namespaces enforce
# "baseline" and warn at "restricted". The platform creates them (so `pulumi destroy` removes
# them with everything Flyte wrote there); Flyte's cluster-resource manager applies the same
# namespace from its template, which changes nothing.
PROJECT_POD_SECURITY = "baseline"
NAMESPACE_TEMPLATE = yaml.safe_dump(
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "{{ namespace }}",
            "labels": kube.namespace_labels(PROJECT_POD_SECURITY),
        },
    },
    sort_keys=False,
)
TASK_STORAGE_TEMPLATE = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: {TASK_STORAGE_SECRET}
  namespace: '{{{{ namespace }}}}'
type: Opaque
stringData:
  FLYTE_AWS_ACCESS_KEY_ID: '{{{{ s3AccessKeyId }}}}'
  FLYTE_AWS_SECRET_ACCESS_KEY: '{{{{ s3SecretAccessKey }}}}'
"""
IMAGE_PULL_DIR = "/etc/flyte/image-pull"
# The `.dockerconfigjson` as a Secret's `data` wants it (base64): safe in a YAML scalar.
IMAGE_PULL_KEY = "dockerconfigjson.b64"
IMAGE_PULL_TEMPLATE = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: {kube.IMAGE_PULL_SECRET}
  namespace: '{{{{ namespace }}}}'
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: '{{{{ imagePullConfig }}}}'
"""
IMAGE_PULL_DATA = {
    "imagePullConfig": {"valueFrom": {"filePath": f"{IMAGE_PULL_DIR}/{IMAGE_PULL_KEY}"}}
}
WAIT_FOR_DB = (
    'until pg_isready -h "$PGHOST" -p "$PGPORT" -U "$PGUSER"; '
    "do echo waiting for database; sleep 2; done"
)


@dataclass(frozen=True)
class TaskEnvironment:
    """What the reference training tasks read in every project namespace
    (workloads/training/workflow.py): plain settings, the Feast store config, and secrets
    (variable name -> value), which reach the namespaces through template data files, never
    through a ConfigMap."""

    settings: dict[str, str]
    feature_store_yaml: str
    secrets: dict[str, pulumi.Output[str]]


@dataclass(frozen=True)
class FlyteArgs:
    config: FlyteConfig
    namespace: str
    database: PostgresDatabase
    storage: S3Endpoint
    tasks: TaskEnvironment | None = None
    # The registry login for the project images in the project namespaces (None: not needed).
    image_pull: kube.ImagePull | None = None


def secrets_read(args: FlyteArgs) -> list[pulumi.Output[str]]:
    """The secret values Flyte's pod reads at start: its database password, the storage keys,
    the task secrets it copies into the project namespaces and the registry login."""
    tasks = args.tasks.secrets if args.tasks else {}
    return [
        args.database.password,
        args.storage.access_key,
        args.storage.secret_key,
        *(tasks[name] for name in sorted(tasks)),
        *([args.image_pull.docker_config()] if args.image_pull else []),
    ]


# The names workloads/training/workflow.py reads in each project namespace.
TRAINING_ACCOUNT = "mlops-training"
WORKLOADS_CONFIG = "mlops-workloads"
WORKLOADS_SECRET_DIR = "/etc/flyte/workloads"


def project_namespaces(cfg: FlyteConfig) -> tuple[str, ...]:
    """The namespace of every project and domain (flyte-binary's `{{ project }}-{{ domain }}`)."""
    return tuple(f"{p}-{d}" for p in cfg.projects for d in cfg.domains)


def training_accounts(cfg: FlyteConfig) -> tuple[tuple[str, str], ...]:
    """The training tasks' ServiceAccount in every project-domain namespace."""
    return tuple((namespace, TRAINING_ACCOUNT) for namespace in project_namespaces(cfg))


def _indented(text: str, spaces: int) -> str:
    return "".join(f"{' ' * spaces}{line}\n" for line in text.splitlines())


def task_templates(tasks: TaskEnvironment, image_pull: bool) -> dict[str, str]:
    """Cluster-resource templates for the training tasks; `{{ namespace }}` and the secrets'
    `{{ workloadsSecretN }}` are filled by Flyte. With `image_pull`, the ServiceAccount names
    the namespace's registry login."""
    head = "metadata:\n  name: {name}\n  namespace: '{{{{ namespace }}}}'\n"
    pull = f"imagePullSecrets:\n- name: {kube.IMAGE_PULL_SECRET}\n" if image_pull else ""
    settings = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in sorted(tasks.settings.items()))
    secrets = "".join(
        f"  {name}: '{{{{ workloadsSecret{i} }}}}'\n"
        for i, name in enumerate(sorted(tasks.secrets))
    )
    return {
        "003-training-account.yaml": "apiVersion: v1\nkind: ServiceAccount\n"
        + head.format(name=TRAINING_ACCOUNT)
        + "automountServiceAccountToken: true\n"
        + pull,
        "004-workloads-config.yaml": "apiVersion: v1\nkind: ConfigMap\n"
        + head.format(name=WORKLOADS_CONFIG)
        + "data:\n"
        + settings,
        "005-workloads-feast.yaml": "apiVersion: v1\nkind: ConfigMap\n"
        + head.format(name=f"{WORKLOADS_CONFIG}-feast")
        + "data:\n  feature_store.yaml: |\n"
        + _indented(tasks.feature_store_yaml, 4),
        "006-workloads-secret.yaml": "apiVersion: v1\nkind: Secret\n"
        + head.format(name=WORKLOADS_CONFIG)
        + "type: Opaque\nstringData:\n"
        + secrets,
    }


def task_template_data(tasks: TaskEnvironment) -> dict[str, Any]:
    return {
        f"workloadsSecret{i}": {"valueFrom": {"filePath": f"{WORKLOADS_SECRET_DIR}/{name}"}}
        for i, name in enumerate(sorted(tasks.secrets))
    }


def grpc_endpoint(namespace: str) -> str:
    return f"{kube.service_host(f'{COMPONENT}-grpc', namespace)}:{GRPC_PORT}"


def config_files(args: FlyteArgs) -> dict[str, dict[str, Any]]:
    """The flyte-binary config files, by name; none holds a secret value."""
    cfg, db, storage = args.config, args.database, args.storage
    bucket = storage.buckets["flyte"]
    return {
        "000-core.yaml": {
            "admin": {"endpoint": f"localhost:{GRPC_PORT}", "insecure": True},
            "catalog-cache": {
                "endpoint": "localhost:8081",
                "insecure": True,
                "type": "datacatalog",
            },
            "cluster_resources": {
                "standaloneDeployment": False,
                "templatePath": TEMPLATE_DIR,
                "refreshInterval": "1m",
                "templateData": {
                    "s3AccessKeyId": {"valueFrom": {"filePath": f"{STORAGE_DIR}/access-key-id"}},
                    "s3SecretAccessKey": {
                        "valueFrom": {"filePath": f"{STORAGE_DIR}/secret-access-key"}
                    },
                    **(task_template_data(args.tasks) if args.tasks else {}),
                    **(IMAGE_PULL_DATA if args.image_pull else {}),
                },
            },
            "domains": [{"id": d, "name": d} for d in cfg.domains],
            "namespace_mapping": {"template": "{{ project }}-{{ domain }}"},
            "logger": {"show-source": True, "level": 1},
            "propeller": {"create-flyteworkflow-crd": True, "prof-port": METRICS_PORT},
            "flyte": {
                "admin": {
                    "disabled": False,
                    "disableScheduler": False,
                    "disableClusterResourceManager": False,
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
                    "default-env-vars": {
                        "FLYTE_PLATFORM_URL": grpc_endpoint(args.namespace),
                        "FLYTE_PLATFORM_INSECURE": "true",
                        "FLYTE_AWS_ENDPOINT": storage.url,
                    },
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
    }


def templates(args: FlyteArgs) -> dict[str, str]:
    """The cluster-resource templates, by file name: what every project namespace gets."""
    found = {
        "001-namespace.yaml": NAMESPACE_TEMPLATE,
        "002-task-storage.yaml": TASK_STORAGE_TEMPLATE,
    }
    if args.tasks:
        found.update(task_templates(args.tasks, image_pull=args.image_pull is not None))
    if args.image_pull:
        found["007-image-pull.yaml"] = IMAGE_PULL_TEMPLATE
    return found


def storage_secret_file(keys: list[str]) -> str:
    return yaml.safe_dump(
        {"storage": {"stow": {"config": {"access_key_id": keys[0], "secret_key": keys[1]}}}}
    )


# Propeller's workflow metrics (flytestdlib promutils): stopwatches are summaries in ms, with
# the labels project, domain, wf and task; the completed runs are their _count series.
WORKFLOW_METRICS = "flyte:propeller:all:workflow"


class Flyte(pulumi.ComponentResource):
    endpoint: str
    console_url: str
    telemetry: Telemetry
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
        template_files = templates(args)
        needs: list[pulumi.Resource] = [
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
                    ).apply(storage_secret_file)
                },
                self,
            ),
            k8s.core.v1.ConfigMap(
                "flyte-cluster-resource-templates",
                metadata=kube.metadata(
                    "flyte-cluster-resource-templates", ns, COMPONENT, "orchestration"
                ),
                data=template_files,
                opts=child,
            ),
            *self._rbac(ns),
            # Flyte runs after its project namespaces exist and is deleted before them.
            *(
                kube.namespace(name, child, enforce=PROJECT_POD_SECURITY)
                for name in project_namespaces(args.config)
            ),
        ]
        if args.tasks:
            needs.append(
                kube.secret(
                    f"{COMPONENT}-workloads",
                    ns,
                    COMPONENT,
                    "orchestration",
                    args.tasks.secrets,
                    self,
                )
            )
        if args.image_pull:
            needs.append(
                kube.secret(
                    f"{COMPONENT}-image-pull",
                    ns,
                    COMPONENT,
                    "orchestration",
                    {
                        IMAGE_PULL_KEY: args.image_pull.docker_config().apply(
                            lambda text: base64.b64encode(text.encode()).decode()
                        )
                    },
                    self,
                )
            )
        self._services(ns)
        ingress = args.config.ingress
        if ingress:
            kube.ingress(
                COMPONENT, ns, "orchestration", ingress, f"{COMPONENT}-http", HTTP_PORT, self
            )
        self._deployment(args, needs, kube.checksum(*files.values(), *template_files.values()))
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
                **({"externalConsole": f"{ingress.urls[0]}/console"} if ingress else {}),
            }
        }
        self.register_outputs(self.outputs)

    def _rbac(self, ns: str) -> list[pulumi.Resource]:
        return kube.cluster_access(COMPONENT, ns, "orchestration", RBAC_RULES, self)

    def _services(self, ns: str) -> None:
        for name, ports in [
            (f"{COMPONENT}-http", {"http": HTTP_PORT, "metrics": METRICS_PORT}),
            (f"{COMPONENT}-grpc", {"grpc": GRPC_PORT}),
        ]:
            kube.service(name, ns, COMPONENT, "orchestration", ports, self)

    def _deployment(self, args: FlyteArgs, needs: list[pulumi.Resource], checksum: str) -> None:
        ns, db, storage = args.namespace, args.database, args.storage
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
                {"name": "cluster-resource-templates", "mountPath": TEMPLATE_DIR, "readOnly": True},
                {"name": "db-password", "mountPath": "/etc/flyte/db", "readOnly": True},
                {"name": "storage", "mountPath": STORAGE_DIR, "readOnly": True},
                *(
                    [{"name": "workloads", "mountPath": WORKLOADS_SECRET_DIR, "readOnly": True}]
                    if args.tasks
                    else []
                ),
                *(
                    [{"name": "image-pull", "mountPath": IMAGE_PULL_DIR, "readOnly": True}]
                    if args.image_pull
                    else []
                ),
                {"name": "state", "mountPath": "/var/run/flyte"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        )
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
                "name": "cluster-resource-templates",
                "configMap": {"name": "flyte-cluster-resource-templates"},
            },
            {
                "name": "db-password",
                "secret": {
                    "secretName": db.secret_name,
                    "items": [{"key": "password", "path": "password"}],
                },
            },
            {
                "name": "storage",
                "secret": {
                    "secretName": storage.secret_name,
                    "items": [
                        {"key": k, "path": k} for k in ("access-key-id", "secret-access-key")
                    ],
                },
            },
            *(
                [{"name": "workloads", "secret": {"secretName": f"{COMPONENT}-workloads"}}]
                if args.tasks
                else []
            ),
            *(
                [{"name": "image-pull", "secret": {"secretName": f"{COMPONENT}-image-pull"}}]
                if args.image_pull
                else []
            ),
            kube.empty_dir("state"),
            kube.empty_dir("tmp", "1Gi"),
        ]
        kube.deployment(
            COMPONENT,
            ns,
            "orchestration",
            # One process holds the propeller and scheduler leases: never two at once.
            replicas=1,
            strategy="Recreate",
            pod=kube.pod_spec(
                versions.FLYTE_UID,
                [flyte],
                serviceAccountName=COMPONENT,
                # Flyte drives the Kubernetes API (task pods, namespaces): it needs a token.
                automountServiceAccountToken=True,
                initContainers=[wait_for_db],
                volumes=volumes,
            ),
            needs=needs,
            parent=self,
            config_digest=checksum,
            secret_digest=kube.secret_digest(*secrets_read(args)),
        )
