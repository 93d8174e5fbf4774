"""Prometheus, configured from what the components declare about themselves.

It scrapes every declared target (the components' own ports and paths, with credentials read
from a component's Secret where one is needed), every declared pod discovery (pods of one
namespace that opt in with `prometheus.io/scrape: "true"`, port and path from
`prometheus.io/port` and `prometheus.io/path`) and the kubelets (volume usage and cAdvisor
container usage, through the API server). It loads the rule files of `infra/alerts/` that the
components name and sends the alerts to Alertmanager. The `Monitoring` component builds it beside
Alertmanager, the Pushgateway and Grafana.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import kube, versions
from infra.config import MonitoringConfig
from infra.observability import (
    ALERTS_DIR,
    PodDiscovery,
    ScrapeTarget,
    Telemetry,
    Workload,
    statefulset_pods,
)
from infra.sizes import quantity

PROMETHEUS = "prometheus"
PORT = 9090
CONFIG_DIR = "/etc/prometheus/config"
RULES_DIR = "/etc/prometheus/rules"
SECRETS_DIR = "/etc/prometheus/secrets"
DATA_DIR = "/prometheus"
SERVICE_ACCOUNT_DIR = kube.SERVICE_ACCOUNT_DIR
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


def url(namespace: str) -> str:
    return f"http://{kube.service_host(PROMETHEUS, namespace)}:{PORT}"


def telemetry(namespace: str, cfg: MonitoringConfig) -> tuple[Telemetry, ...]:
    """Prometheus's own declarations, and the kubelet series it collects."""
    return (
        Telemetry(
            PROMETHEUS,
            targets=(
                ScrapeTarget(PROMETHEUS, f"{kube.service_host(PROMETHEUS, namespace)}:{PORT}"),
            ),
            rules=("platform.yaml",),
            workloads=(Workload.of(PROMETHEUS, statefulset_pods(PROMETHEUS), cfg.resources),),
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
    if target.honor_labels:
        job["honor_labels"] = True
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


def _meta(label: str) -> str:
    """The discovery meta label of a pod label (Prometheus turns other characters into _)."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _discovery_job(discovery: PodDiscovery) -> dict[str, Any]:
    """The pods of one namespace that carry the label and opt in with prometheus.io/scrape."""
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    label = _meta(discovery.label)
    return {
        "job_name": discovery.job,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [discovery.namespace]}}],
        "relabel_configs": [
            {"source_labels": [f"{annotation}scrape"], "regex": "true", "action": "keep"},
            {"source_labels": [label], "regex": ".+", "action": "keep"},
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
            {"source_labels": [label], "target_label": discovery.series_label},
        ],
    }


def rule_files(telemetry: Sequence[Telemetry]) -> list[str]:
    return sorted({name for t in telemetry for name in t.rules})


def discoveries(telemetry: Sequence[Telemetry]) -> list[PodDiscovery]:
    return [d for t in telemetry for d in t.discovery]


def prometheus_config(
    namespace: str, telemetry: Sequence[Telemetry], alertmanager: str
) -> dict[str, Any]:
    """The scrape jobs and rule files of `telemetry`; alerts go to `alertmanager` (host:port)."""
    jobs = [_static_job(t.component, namespace, target) for t in telemetry for target in t.targets]
    jobs.append(_kubelet_job("kubelet", "/metrics", KUBELET_METRICS))
    jobs.append(_kubelet_job("cadvisor", "/metrics/cadvisor", CADVISOR_METRICS))
    jobs.extend(_discovery_job(d) for d in discoveries(telemetry))
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"platform": namespace},
        },
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "rule_files": [f"{RULES_DIR}/{name}" for name in rule_files(telemetry)],
        "scrape_configs": jobs,
    }


def retention_size(storage_size: str) -> str:
    """85% of the volume, so compaction has room before the disk fills."""
    return f"{int(quantity(storage_size) * 0.85 / 2**20)}MB"


def _rbac(
    namespace: str, telemetry: Sequence[Telemetry], parent: pulumi.Resource
) -> list[pulumi.Resource]:
    made = kube.cluster_access(PROMETHEUS, namespace, "monitoring", RBAC_RULES, parent)
    name = f"{namespace}-{PROMETHEUS}-discovery"
    # Pod discovery only in the namespaces declared.
    for where in sorted({d.namespace for d in discoveries(telemetry)}):
        role = k8s.rbac.v1.Role(
            name,
            metadata=kube.metadata(name, where, PROMETHEUS, "monitoring"),
            rules=DISCOVERY_RULES,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        binding = k8s.rbac.v1.RoleBinding(
            name,
            metadata=kube.metadata(name, where, PROMETHEUS, "monitoring"),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": PROMETHEUS, "namespace": namespace}],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[role]),
        )
        made += [role, binding]
    return made


def _credentials(telemetry: Sequence[Telemetry]) -> list[tuple[str, str]]:
    """(Secret, key) of every password a scrape target needs, mounted as a file."""
    return sorted(
        {
            (target.basic_auth.secret, target.basic_auth.key)
            for t in telemetry
            for target in t.targets
            if target.basic_auth is not None
        }
    )


def _credentials_digest(telemetry: Sequence[Telemetry]) -> pulumi.Output[str] | None:
    """The digest of the scrape passwords (one per Secret key), None without any."""
    passwords = {
        (target.basic_auth.secret, target.basic_auth.key): target.basic_auth.password
        for t in telemetry
        for target in t.targets
        if target.basic_auth is not None
    }
    if not passwords:
        return None
    return kube.secret_digest(*(passwords[ref] for ref in sorted(passwords)))


def build(
    cfg: MonitoringConfig,
    namespace: str,
    storage: kube.Storage,
    telemetry: Sequence[Telemetry],
    alertmanager: str,
    logins: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
) -> None:
    """The Prometheus server of `telemetry` (every component's, its own included), sending its
    alerts to `alertmanager` (host:port), started after `logins` (the components whose login it
    scrapes with)."""
    child = pulumi.ResourceOptions(parent=parent)
    config = prometheus_config(namespace, telemetry, alertmanager)
    config_text = yaml.safe_dump(config, sort_keys=False)
    rules = {name: (ALERTS_DIR / name).read_text() for name in rule_files(telemetry)}
    needs = [
        k8s.core.v1.ConfigMap(
            "prometheus-config",
            metadata=kube.metadata("prometheus-config", namespace, PROMETHEUS, "monitoring"),
            data={"prometheus.yaml": config_text},
            opts=child,
        ),
        k8s.core.v1.ConfigMap(
            "prometheus-rules",
            metadata=kube.metadata("prometheus-rules", namespace, PROMETHEUS, "monitoring"),
            data=rules,
            opts=child,
        ),
        *_rbac(namespace, telemetry, parent),
        *logins,
    ]
    credentials = _credentials(telemetry)
    ingress = cfg.prometheus_ingress
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
        kube.api_token_mount(),
        *(
            {"name": f"secret-{secret}", "mountPath": f"{SECRETS_DIR}/{secret}", "readOnly": True}
            for secret, _ in credentials
        ),
    ]
    server = kube.container(
        PROMETHEUS,
        versions.PROMETHEUS_IMAGE,
        cfg.resources,
        ports={"http": PORT},
        probes=kube.Probes.server(
            kube.http_check("/-/ready", "http"),
            live=kube.http_check("/-/healthy", "http"),
            start_failures=120,
        ),
        args=[
            f"--config.file={CONFIG_DIR}/prometheus.yaml",
            f"--storage.tsdb.path={DATA_DIR}",
            f"--storage.tsdb.retention.time={cfg.retention}",
            f"--storage.tsdb.retention.size={retention_size(cfg.storage_size)}",
            # The public address behind an ingress, for its links and alerts' generator URLs.
            *([f"--web.external-url={ingress.urls[0]}/"] if ingress else []),
        ],
        volumeMounts=mounts,
    )
    kube.service(PROMETHEUS, namespace, PROMETHEUS, "monitoring", {"http": PORT}, parent)
    if ingress:
        kube.ingress(PROMETHEUS, namespace, "monitoring", ingress, PROMETHEUS, PORT, parent)
    kube.stateful_set(
        PROMETHEUS,
        namespace,
        "monitoring",
        pod=kube.pod_spec(
            versions.PROMETHEUS_UID,
            [server],
            serviceAccountName=PROMETHEUS,
            # Node and pod discovery and the kubelet proxy need the account's token.
            volumes=[*volumes, kube.api_token_volume()],
        ),
        size=cfg.storage_size,
        storage=storage,
        needs=needs,
        parent=parent,
        config_digest=kube.checksum(config_text, *rules.values()),
        secret_digest=_credentials_digest(telemetry),
    )
