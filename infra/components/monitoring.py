"""Prometheus and Grafana, configured from what the components declare about themselves.

Prometheus scrapes every component's declared targets (their own ports and paths, with
credentials read from the component's Secret where one is needed), the kubelets (volume usage
and cAdvisor container usage, through the API server) and, by pod discovery, the KServe
predictors that ask for it with `prometheus.io/scrape: "true"` (port and path from
`prometheus.io/port` and `prometheus.io/path`). It loads the rule files of `infra/alerts/` that
the components name. Grafana gets the Prometheus datasource and the dashboards of
`infra/dashboards/`, all provisioned from ConfigMaps; its admin password is a Pulumi secret
and anonymous access is off.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import kube, versions
from infra.components.kserve import INFERENCE_JOB
from infra.config import MonitoringConfig
from infra.dashboards import DashboardContext, build_all
from infra.observability import (
    ScrapeTarget,
    Telemetry,
    Workload,
    deployment_pods,
    quantity,
    statefulset_pods,
)

PROMETHEUS = "prometheus"
GRAFANA = "grafana"
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
ALERTS_DIR = Path(__file__).resolve().parents[1] / "alerts"
CONFIG_DIR = "/etc/prometheus/config"
RULES_DIR = "/etc/prometheus/rules"
SECRETS_DIR = "/etc/prometheus/secrets"
DATA_DIR = "/prometheus"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SCRAPE_INTERVAL = "30s"
# The kubelet series kept (the rest of cAdvisor's and the kubelet's would only cost storage).
CADVISOR_METRICS = (
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_start_time_seconds",
)
KUBELET_METRICS = ("kubelet_volume_stats_used_bytes", "kubelet_volume_stats_capacity_bytes")
RBAC_RULES = [
    {
        "apiGroups": [""],
        "resources": ["nodes", "nodes/metrics", "nodes/proxy"],
        "verbs": ["get", "list", "watch"],
    },
]
DISCOVERY_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
GRAFANA_DATA = "/var/lib/grafana"
GRAFANA_DASHBOARDS = "/etc/grafana/dashboards"


@dataclass(frozen=True)
class MonitoringArgs:
    config: MonitoringConfig
    namespace: str
    storage_class: str | None
    data_protection: bool
    # The other components' declarations.
    telemetry: Sequence[Telemetry]
    # KServe's model namespace, whose predictors are discovered; None without KServe.
    model_namespace: str | None


def own_telemetry(namespace: str, cfg: MonitoringConfig) -> tuple[Telemetry, ...]:
    host = f"{namespace}.svc.cluster.local"
    return (
        Telemetry(
            PROMETHEUS,
            targets=(ScrapeTarget(PROMETHEUS, f"{PROMETHEUS}.{host}:{PROMETHEUS_PORT}"),),
            rules=("platform.yaml",),
            workloads=(Workload.of(PROMETHEUS, statefulset_pods(PROMETHEUS), cfg.resources),),
        ),
        Telemetry(
            GRAFANA,
            targets=(ScrapeTarget(GRAFANA, f"{GRAFANA}.{host}:{GRAFANA_PORT}"),),
            rules=("platform.yaml",),
            workloads=(Workload.of(GRAFANA, deployment_pods(GRAFANA), cfg.grafana_resources),),
        ),
        Telemetry(
            "kubelet",
            metrics=frozenset(CADVISOR_METRICS + KUBELET_METRICS),
            rules=("platform.yaml", "storage.yaml"),
        ),
    )


def secret_file(secret: str, key: str) -> str:
    return f"{SECRETS_DIR}/{secret}/{key}"


def _static_job(component: str, namespace: str, target: ScrapeTarget) -> dict[str, Any]:
    job: dict[str, Any] = {
        "job_name": target.job,
        "metrics_path": target.path,
        "static_configs": [
            {
                "targets": [target.address],
                "labels": {"component": component, "namespace": namespace},
            }
        ],
    }
    if target.basic_auth is not None:
        auth = target.basic_auth
        job["basic_auth"] = {
            "username": auth.username,
            "password_file": secret_file(auth.secret, auth.key),
        }
    return job


def _kubelet_job(name: str, path: str, keep: Sequence[str]) -> dict[str, Any]:
    """Node metrics through the API server's node proxy, with the pod's service account."""
    return {
        "job_name": name,
        "scheme": "https",
        "kubernetes_sd_configs": [{"role": "node"}],
        "tls_config": {"ca_file": f"{SERVICE_ACCOUNT_DIR}/ca.crt"},
        "authorization": {"credentials_file": f"{SERVICE_ACCOUNT_DIR}/token"},
        "relabel_configs": [
            {"target_label": "__address__", "replacement": "kubernetes.default.svc:443"},
            {
                "source_labels": ["__meta_kubernetes_node_name"],
                "regex": "(.+)",
                "target_label": "__metrics_path__",
                "replacement": f"/api/v1/nodes/$1/proxy{path}",
            },
            {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"},
        ],
        "metric_relabel_configs": [
            {"source_labels": ["__name__"], "regex": "|".join(keep), "action": "keep"}
        ],
    }


def _inference_job(model_namespace: str) -> dict[str, Any]:
    """KServe predictor pods that opt in with prometheus.io/scrape, port and path."""
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    return {
        "job_name": INFERENCE_JOB,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [model_namespace]}}],
        "relabel_configs": [
            {"source_labels": [f"{annotation}scrape"], "regex": "true", "action": "keep"},
            {
                "source_labels": ["__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice"],
                "regex": ".+",
                "action": "keep",
            },
            {
                "source_labels": [f"{annotation}path"],
                "regex": "(.+)",
                "target_label": "__metrics_path__",
            },
            {
                "source_labels": ["__address__", f"{annotation}port"],
                "regex": r"([^:]+)(?::\d+)?;(\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {
                "source_labels": ["__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice"],
                "target_label": "inferenceservice",
            },
        ],
    }


def rule_files(telemetry: Sequence[Telemetry]) -> list[str]:
    return sorted({name for t in telemetry for name in t.rules})


def prometheus_config(
    namespace: str, telemetry: Sequence[Telemetry], model_namespace: str | None
) -> dict[str, Any]:
    jobs = [_static_job(t.component, namespace, target) for t in telemetry for target in t.targets]
    jobs.append(_kubelet_job("kubelet", "/metrics", KUBELET_METRICS))
    jobs.append(_kubelet_job("cadvisor", "/metrics/cadvisor", CADVISOR_METRICS))
    if model_namespace is not None:
        jobs.append(_inference_job(model_namespace))
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"platform": namespace},
        },
        "rule_files": [f"{RULES_DIR}/{name}" for name in rule_files(telemetry)],
        "scrape_configs": jobs,
    }


def retention_size(storage_size: str) -> str:
    """85% of the volume, so compaction has room before the disk fills."""
    return f"{int(quantity(storage_size) * 0.85 / 2**20)}MB"


def grafana_provisioning(namespace: str) -> dict[str, str]:
    datasource = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": "prometheus",
                "access": "proxy",
                "url": f"http://{PROMETHEUS}.{namespace}.svc.cluster.local:{PROMETHEUS_PORT}",
                "isDefault": True,
                "editable": False,
            }
        ],
    }
    provider = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "mlops-platform",
                "folder": "MLOps platform",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": GRAFANA_DASHBOARDS},
            }
        ],
    }
    return {
        "datasources.yaml": yaml.safe_dump(datasource, sort_keys=False),
        "dashboards.yaml": yaml.safe_dump(provider, sort_keys=False),
    }


class Monitoring(pulumi.ComponentResource):
    prometheus_url: str
    grafana_url: str
    telemetry: tuple[Telemetry, ...]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Monitoring", name, None, opts)
        cfg, ns = args.config, args.namespace
        self.telemetry = own_telemetry(ns, cfg)
        everything = (*args.telemetry, *self.telemetry)
        self.prometheus_url = f"http://{PROMETHEUS}.{ns}.svc.cluster.local:{PROMETHEUS_PORT}"
        self.grafana_url = f"http://{GRAFANA}.{ns}.svc.cluster.local:{GRAFANA_PORT}"
        self._prometheus(args, everything)
        self._grafana(args, everything)
        self.register_outputs(
            {"prometheus_url": self.prometheus_url, "grafana_url": self.grafana_url}
        )

    def _rbac(self, args: MonitoringArgs) -> list[pulumi.Resource]:
        ns = args.namespace
        made = kube.cluster_access(PROMETHEUS, ns, "monitoring", RBAC_RULES, self)
        if args.model_namespace is not None:
            # Pod discovery in the model namespace only.
            name = f"{ns}-{PROMETHEUS}-discovery"
            discovery = k8s.rbac.v1.Role(
                name,
                metadata=kube.metadata(name, args.model_namespace, PROMETHEUS, "monitoring"),
                rules=DISCOVERY_RULES,
                opts=pulumi.ResourceOptions(parent=self),
            )
            made += [
                discovery,
                k8s.rbac.v1.RoleBinding(
                    name,
                    metadata=kube.metadata(name, args.model_namespace, PROMETHEUS, "monitoring"),
                    role_ref={
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": name,
                    },
                    subjects=[{"kind": "ServiceAccount", "name": PROMETHEUS, "namespace": ns}],
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[discovery]),
                ),
            ]
        return made

    def _prometheus(self, args: MonitoringArgs, telemetry: Sequence[Telemetry]) -> None:
        cfg, ns = args.config, args.namespace
        child = pulumi.ResourceOptions(parent=self)
        config_text = yaml.safe_dump(
            prometheus_config(ns, telemetry, args.model_namespace), sort_keys=False
        )
        rules = {name: (ALERTS_DIR / name).read_text() for name in rule_files(telemetry)}
        needs = [
            k8s.core.v1.ConfigMap(
                "prometheus-config",
                metadata=kube.metadata("prometheus-config", ns, PROMETHEUS, "monitoring"),
                data={"prometheus.yaml": config_text},
                opts=child,
            ),
            k8s.core.v1.ConfigMap(
                "prometheus-rules",
                metadata=kube.metadata("prometheus-rules", ns, PROMETHEUS, "monitoring"),
                data=rules,
                opts=child,
            ),
            *self._rbac(args),
        ]
        credentials = sorted(
            {
                (t.basic_auth.secret, t.basic_auth.key)
                for telemetry_part in telemetry
                for t in telemetry_part.targets
                if t.basic_auth is not None
            }
        )
        volumes = [
            {"name": "config", "configMap": {"name": "prometheus-config"}},
            {"name": "rules", "configMap": {"name": "prometheus-rules"}},
            *(
                {
                    "name": f"secret-{secret}",
                    "secret": {"secretName": secret, "items": [{"key": key, "path": key}]},
                }
                for secret, key in credentials
            ),
        ]
        mounts = [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "rules", "mountPath": RULES_DIR, "readOnly": True},
            *(
                {
                    "name": f"secret-{secret}",
                    "mountPath": f"{SECRETS_DIR}/{secret}",
                    "readOnly": True,
                }
                for secret, _ in credentials
            ),
        ]
        server = kube.container(
            PROMETHEUS,
            versions.PROMETHEUS_IMAGE,
            cfg.resources,
            ports={"http": PROMETHEUS_PORT},
            readiness=kube.http_probe("/-/ready", "http"),
            liveness=kube.http_probe("/-/healthy", "http", period=20, failures=6),
            startup=kube.http_probe("/-/ready", "http", period=5, failures=120),
            args=[
                f"--config.file={CONFIG_DIR}/prometheus.yaml",
                f"--storage.tsdb.path={DATA_DIR}",
                f"--storage.tsdb.retention.time={cfg.retention}",
                f"--storage.tsdb.retention.size={retention_size(cfg.storage_size)}",
            ],
            volumeMounts=mounts,
        )
        kube.service(PROMETHEUS, ns, PROMETHEUS, "monitoring", {"http": PROMETHEUS_PORT}, self)
        k8s.apps.v1.StatefulSet(
            PROMETHEUS,
            metadata=kube.metadata(PROMETHEUS, ns, PROMETHEUS, "monitoring"),
            spec={
                "serviceName": PROMETHEUS,
                "replicas": 1,
                "selector": {"matchLabels": kube.selector(PROMETHEUS)},
                "persistentVolumeClaimRetentionPolicy": kube.claim_retention(args.data_protection),
                "template": {
                    "metadata": {
                        "labels": kube.labels(PROMETHEUS, "monitoring"),
                        "annotations": {
                            "checksum/config": kube.checksum(config_text, *rules.values())
                        },
                    },
                    "spec": kube.pod_spec(
                        versions.PROMETHEUS_UID,
                        [server],
                        serviceAccountName=PROMETHEUS,
                        # Node discovery and the kubelet proxy need the account's token.
                        automountServiceAccountToken=True,
                        volumes=volumes,
                    ),
                },
                "volumeClaimTemplates": [
                    kube.volume_claim("data", cfg.storage_size, args.storage_class)
                ],
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=needs, protect=args.data_protection
            ),
        )

    def _grafana(self, args: MonitoringArgs, telemetry: Sequence[Telemetry]) -> None:
        cfg, ns = args.config, args.namespace
        assert cfg.grafana_admin_password is not None
        child = pulumi.ResourceOptions(parent=self)
        boards = build_all(DashboardContext(ns, args.model_namespace, tuple(telemetry)))
        board_files = {
            name: json.dumps(board, sort_keys=True, indent=1) for name, board in boards.items()
        }
        provisioning = grafana_provisioning(ns)
        needs = [
            kube.secret(
                GRAFANA,
                ns,
                GRAFANA,
                "dashboards",
                {"admin-password": cfg.grafana_admin_password},
                self,
            ),
            k8s.core.v1.ConfigMap(
                "grafana-provisioning",
                metadata=kube.metadata("grafana-provisioning", ns, GRAFANA, "dashboards"),
                data=provisioning,
                opts=child,
            ),
            k8s.core.v1.ConfigMap(
                "grafana-dashboards",
                metadata=kube.metadata("grafana-dashboards", ns, GRAFANA, "dashboards"),
                data=board_files,
                opts=child,
            ),
        ]
        server = kube.container(
            GRAFANA,
            versions.GRAFANA_IMAGE,
            cfg.grafana_resources,
            ports={"http": GRAFANA_PORT},
            readiness=kube.http_probe("/api/health", "http"),
            liveness=kube.http_probe("/api/health", "http", period=20, failures=6),
            startup=kube.http_probe("/api/health", "http", period=5, failures=60),
            env=[
                {"name": "GF_SECURITY_ADMIN_USER", "value": "admin"},
                kube.secret_env("GF_SECURITY_ADMIN_PASSWORD", GRAFANA, "admin-password"),
                {"name": "GF_AUTH_ANONYMOUS_ENABLED", "value": "false"},
                {"name": "GF_USERS_ALLOW_SIGN_UP", "value": "false"},
                {"name": "GF_ANALYTICS_REPORTING_ENABLED", "value": "false"},
                {"name": "GF_ANALYTICS_CHECK_FOR_UPDATES", "value": "false"},
                {"name": "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", "value": "false"},
                # Grafana 13 would otherwise try to fetch and update bundled plugins at start.
                {"name": "GF_PLUGINS_PREINSTALL_DISABLED", "value": "true"},
                {"name": "GF_PATHS_DATA", "value": GRAFANA_DATA},
            ],
            volumeMounts=[
                {"name": "data", "mountPath": GRAFANA_DATA},
                {"name": "tmp", "mountPath": "/tmp"},
                {
                    "name": "provisioning",
                    "mountPath": "/etc/grafana/provisioning/datasources/datasources.yaml",
                    "subPath": "datasources.yaml",
                    "readOnly": True,
                },
                {
                    "name": "provisioning",
                    "mountPath": "/etc/grafana/provisioning/dashboards/dashboards.yaml",
                    "subPath": "dashboards.yaml",
                    "readOnly": True,
                },
                {"name": "dashboards", "mountPath": GRAFANA_DASHBOARDS, "readOnly": True},
            ],
        )
        kube.service(GRAFANA, ns, GRAFANA, "dashboards", {"http": GRAFANA_PORT}, self)
        k8s.apps.v1.Deployment(
            GRAFANA,
            metadata=kube.metadata(GRAFANA, ns, GRAFANA, "dashboards"),
            spec={
                "replicas": 1,
                "selector": {"matchLabels": kube.selector(GRAFANA)},
                "template": {
                    "metadata": {
                        "labels": kube.labels(GRAFANA, "dashboards"),
                        "annotations": {
                            "checksum/config": kube.checksum(
                                *provisioning.values(), *board_files.values()
                            )
                        },
                    },
                    "spec": kube.pod_spec(
                        versions.GRAFANA_UID,
                        [server],
                        volumes=[
                            # Everything Grafana keeps is provisioned from code: no volume claim.
                            kube.empty_dir("data", "1Gi"),
                            kube.empty_dir("tmp", "256Mi"),
                            {"name": "provisioning", "configMap": {"name": "grafana-provisioning"}},
                            {"name": "dashboards", "configMap": {"name": "grafana-dashboards"}},
                        ],
                    ),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=needs),
        )
