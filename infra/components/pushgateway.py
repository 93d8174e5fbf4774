"""The Pushgateway: batch jobs (the drift workflow's tasks) push their metrics here, and
Prometheus scrapes them with the labels they were pushed under (`honor_labels`).

A Deployment of one replica, without a volume claim: its persistence file lives in an emptyDir,
so a container restart (a crash, an OOM kill) keeps the last pushed groups, while a new pod
starts empty until the next run pushes again. Batch results are re-pushed every run, and a
volume would tie the pod to one node's disk for series that are minutes away from being
replaced. The `Monitoring` component builds it beside Prometheus.
"""

from __future__ import annotations

import pulumi

from infra import kube, versions
from infra.config import PushgatewayConfig
from infra.observability import ScrapeTarget, Telemetry, Workload, deployment_pods

PUSHGATEWAY = "pushgateway"
PORT = 9091
DATA_DIR = "/data"
PERSISTENCE_FILE = f"{DATA_DIR}/metrics.db"


def address(namespace: str) -> str:
    return f"{kube.service_host(PUSHGATEWAY, namespace)}:{PORT}"


def url(namespace: str) -> str:
    return f"http://{address(namespace)}"


def telemetry(namespace: str, cfg: PushgatewayConfig) -> tuple[Telemetry, ...]:
    return (
        Telemetry(
            PUSHGATEWAY,
            targets=(ScrapeTarget(PUSHGATEWAY, address(namespace), honor_labels=True),),
            metrics=frozenset({"push_time_seconds", "push_failure_time_seconds"}),
            rules=("platform.yaml",),
            workloads=(Workload.of(PUSHGATEWAY, deployment_pods(PUSHGATEWAY), cfg.resources),),
        ),
    )


def args() -> list[str]:
    return [
        f"--web.listen-address=:{PORT}",
        f"--persistence.file={PERSISTENCE_FILE}",
        # Written at most this often after a push (the default is 5m).
        "--persistence.interval=1m",
    ]


def build(cfg: PushgatewayConfig, namespace: str, parent: pulumi.Resource) -> None:
    server = kube.container(
        PUSHGATEWAY,
        versions.PUSHGATEWAY_IMAGE,
        cfg.resources,
        ports={"http": PORT},
        probes=kube.Probes.server(
            kube.http_check("/-/ready", "http"), live=kube.http_check("/-/healthy", "http")
        ),
        args=args(),
        volumeMounts=[{"name": "data", "mountPath": DATA_DIR}],
    )
    kube.service(PUSHGATEWAY, namespace, PUSHGATEWAY, "metrics-gateway", {"http": PORT}, parent)
    kube.deployment(
        PUSHGATEWAY,
        namespace,
        "metrics-gateway",
        replicas=1,
        pod=kube.pod_spec(
            versions.PUSHGATEWAY_UID, [server], volumes=[kube.empty_dir("data", "256Mi")]
        ),
        needs=[],
        parent=parent,
        # Two pods would split the pushes between them.
        strategy="Recreate",
    )
