"""Grafana, provisioned from code: the Prometheus datasource and the dashboards of
`infra/dashboards/`, from ConfigMaps. Its admin password is a Pulumi secret and anonymous
access is off; nothing is kept beyond what is provisioned, so it needs no volume. The
`Monitoring` component builds it beside Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import kube, versions
from infra.config import IngressConfig, MonitoringConfig
from infra.configtypes import reveal
from infra.dashboards import DashboardContext, build_all
from infra.observability import ScrapeTarget, Telemetry, Workload, deployment_pods

GRAFANA = "grafana"
PORT = 3000
DATA_DIR = "/var/lib/grafana"
DASHBOARDS_DIR = "/etc/grafana/dashboards"
HEALTH_PATH = "/api/health"


def url(namespace: str) -> str:
    return f"http://{kube.service_host(GRAFANA, namespace)}:{PORT}"


def telemetry(namespace: str, cfg: MonitoringConfig) -> tuple[Telemetry, ...]:
    return (
        Telemetry(
            GRAFANA,
            targets=(ScrapeTarget(GRAFANA, f"{kube.service_host(GRAFANA, namespace)}:{PORT}"),),
            rules=("platform.yaml",),
            workloads=(Workload.of(GRAFANA, deployment_pods(GRAFANA), cfg.grafana.resources),),
        ),
    )


def provisioning(prometheus_url: str) -> dict[str, str]:
    datasource = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
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
                "options": {"path": DASHBOARDS_DIR},
            }
        ],
    }
    return {
        "datasources.yaml": yaml.safe_dump(datasource, sort_keys=False),
        "dashboards.yaml": yaml.safe_dump(provider, sort_keys=False),
    }


def server_env(ingress: IngressConfig | None) -> list[kube.Spec]:
    """The public address behind an ingress, which Grafana's redirects and links use."""
    if ingress is None:
        return []
    return [
        {"name": "GF_SERVER_DOMAIN", "value": ingress.hosts[0]},
        {"name": "GF_SERVER_ROOT_URL", "value": f"{ingress.urls[0]}/"},
    ]


def _provisioned(name: str) -> kube.Spec:
    return {
        "name": "provisioning",
        "mountPath": f"/etc/grafana/provisioning/{name}/{name}.yaml",
        "subPath": f"{name}.yaml",
        "readOnly": True,
    }


def build(
    cfg: MonitoringConfig,
    namespace: str,
    prometheus_url: str,
    telemetry: Sequence[Telemetry],
    parent: pulumi.Resource,
) -> None:
    """Grafana with the dashboards of `telemetry` (every component's)."""
    child = pulumi.ResourceOptions(parent=parent)
    boards = build_all(DashboardContext(namespace, tuple(telemetry)))
    board_files = {
        name: json.dumps(board, sort_keys=True, indent=1) for name, board in boards.items()
    }
    files = provisioning(prometheus_url)
    needs = [
        kube.secret(
            GRAFANA,
            namespace,
            GRAFANA,
            "dashboards",
            {"admin-password": reveal(cfg.grafana_admin_password)},
            parent,
        ),
        k8s.core.v1.ConfigMap(
            "grafana-provisioning",
            metadata=kube.metadata("grafana-provisioning", namespace, GRAFANA, "dashboards"),
            data=files,
            opts=child,
        ),
        k8s.core.v1.ConfigMap(
            "grafana-dashboards",
            metadata=kube.metadata("grafana-dashboards", namespace, GRAFANA, "dashboards"),
            data=board_files,
            opts=child,
        ),
    ]
    server = kube.container(
        GRAFANA,
        versions.GRAFANA_IMAGE,
        cfg.grafana.resources,
        ports={"http": PORT},
        probes=kube.Probes.server(kube.http_check(HEALTH_PATH, "http")),
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
            {"name": "GF_PATHS_DATA", "value": DATA_DIR},
            *server_env(cfg.grafana.ingress),
        ],
        volumeMounts=[
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            _provisioned("datasources"),
            _provisioned("dashboards"),
            {"name": "dashboards", "mountPath": DASHBOARDS_DIR, "readOnly": True},
        ],
    )
    kube.service(GRAFANA, namespace, GRAFANA, "dashboards", {"http": PORT}, parent)
    if cfg.grafana.ingress:
        kube.ingress(GRAFANA, namespace, "dashboards", cfg.grafana.ingress, GRAFANA, PORT, parent)
    kube.deployment(
        GRAFANA,
        namespace,
        "dashboards",
        replicas=1,
        pod=kube.pod_spec(
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
        needs=needs,
        parent=parent,
        config_digest=kube.checksum(*files.values(), *board_files.values()),
        secret_digest=kube.secret_digest(reveal(cfg.grafana_admin_password)),
    )
