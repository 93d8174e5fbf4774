"""Platform overview: is every component up, are its pods restarting, how their usage compares
with their requests, how full the volumes are, and the data stores and MLflow at a glance."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import units

from infra.dashboards.panels import (
    REAL_CONTAINERS,
    DashboardContext,
    Panel,
    Query,
    dashboard,
    equals,
    graph,
    job,
    matches,
    model,
    number,
    quantile,
    rate,
    row,
    selector,
    single_stat,
)
from infra.observability import Telemetry, Workload

UID = "mlops-overview"
GRID_WIDTH = 24
# Up panels share one line while they fit; narrower than this they wrap.
MIN_UP_WIDTH = 3


def build(context: DashboardContext) -> dict[str, Any]:
    board = dashboard(
        UID,
        "MLOps platform / Overview",
        f"Health, restarts, resource use and storage of the platform in namespace "
        f"{context.namespace}.",
        ["overview"],
    )
    board.with_row(row("Components"))
    scraped = [t for t in context.telemetry if t.targets]
    width = max(MIN_UP_WIDTH, GRID_WIDTH // max(len(scraped), 1))
    for telemetry in scraped:
        board.with_panel(up_stat(telemetry, width))
    pods = [t for t in context.telemetry if t.workloads]
    if pods:
        board.with_row(row("Pods"))
        board.with_panel(restarts(context.namespace, pods))
        workloads = [w for t in pods for w in t.workloads]
        board.with_panel(cpu(context.namespace, workloads))
        board.with_panel(memory(context.namespace, workloads))
    board.with_row(row("Storage"))
    # Drawn where the storage alerts fire.
    thresholds = (context.threshold("VolumeFillingUp"), context.threshold("VolumeAlmostFull"))
    for panel in volumes(context.namespace, thresholds):
        board.with_panel(panel)
    postgres, redis = context.component("postgres"), context.component("redis")
    stores = [t for t in (postgres, redis) if t is not None and t.targets]
    if stores:
        board.with_row(row("Data stores"))
        for telemetry in stores:
            for panel in DATA_STORE_PANELS[telemetry.component](telemetry):
                board.with_panel(panel)
    mlflow = context.component("mlflow")
    if mlflow is not None:
        board.with_row(row("MLflow tracking server"))
        board.with_panel(mlflow_requests(mlflow))
        board.with_panel(mlflow_latency(mlflow))
    return model(board)


def up_stat(telemetry: Telemetry, width: int) -> Panel:
    name = telemetry.component
    return single_stat(
        f"{name} up",
        f"Whether Prometheus can scrape every {name} target (the lowest `up` of its targets).",
        units.NoUnit,
        [Query(f"min(up{{{job(telemetry)}}})", name)],
        [(None, "red"), (1, "green")],
        width=width,
        texts={"0": ("down", "red"), "1": ("up", "green")},
    )


def _pods(namespace: str, pattern: str, *containers: str) -> tuple[str, ...]:
    return (equals("namespace", namespace), matches("pod", pattern), *containers)


def restarts(namespace: str, components: list[Telemetry]) -> Panel:
    # A restarted container is a new cgroup and often a new series (its id label changes), so
    # start times are merged per pod and container before counting their changes.
    queries = []
    for telemetry in components:
        pattern = "|".join(w.pods for w in telemetry.workloads)
        starts = selector(
            "container_start_time_seconds", *_pods(namespace, pattern, *REAL_CONTAINERS)
        )
        queries.append(
            Query(
                f"sum(changes(max by (pod, container) ({starts})[1h:1m]))",
                telemetry.component,
            )
        )
    return single_stat(
        "Container restarts in the last hour",
        "Container starts within a running pod over the last hour, per component (cAdvisor).",
        units.Short,
        queries,
        [(None, "green"), (1, "orange"), (3, "red")],
        width=GRID_WIDTH,
    )


def _container(namespace: str, workload: Workload) -> tuple[str, ...]:
    # Requests are the workload's main container's, and that container carries its name.
    return _pods(namespace, workload.pods, equals("container", workload.name))


def cpu(namespace: str, workloads: list[Workload]) -> Panel:
    queries = []
    for w in workloads:
        usage = rate(selector("container_cpu_usage_seconds_total", *_container(namespace, w)))
        queries.append(Query(f"sum by (pod) ({usage}) / {number(w.cpu_request)}", "{{pod}}"))
    return graph(
        "CPU usage / request",
        "Each pod's main container: CPU used over the last 5 minutes against its CPU request "
        "(1 = 100% of the request).",
        units.PercentUnit,
        queries,
        lines=[(1, "orange")],
        min_value=0,
    )


def memory(namespace: str, workloads: list[Workload]) -> Panel:
    queries = []
    for w in workloads:
        working_set = selector("container_memory_working_set_bytes", *_container(namespace, w))
        queries.append(
            Query(f"sum by (pod) ({working_set}) / {number(w.memory_request)}", "{{pod}}")
        )
    return graph(
        "Memory working set / request",
        "Each pod's main container: working set memory against its memory request "
        "(1 = 100% of the request).",
        units.PercentUnit,
        queries,
        lines=[(1, "orange")],
        min_value=0,
    )


def volumes(namespace: str, thresholds: tuple[float, float]) -> list[Panel]:
    """Usage against capacity with lines at (warning, critical), and the bytes used."""
    warning, critical = thresholds
    claims = (equals("namespace", namespace),)

    def per_claim(metric: str) -> str:
        # A claim is reported by the kubelet of the node it is mounted on; max drops duplicates
        # while a pod moves between nodes.
        return f"max by (persistentvolumeclaim) ({selector(metric, *claims)})"

    used = per_claim("kubelet_volume_stats_used_bytes")
    capacity = per_claim("kubelet_volume_stats_capacity_bytes")
    return [
        graph(
            "Volume usage",
            "Used space of each persistent volume claim in the namespace against its capacity; "
            "the lines are the storage alerts' thresholds.",
            units.PercentUnit,
            [Query(f"{used} / {capacity}", "{{persistentvolumeclaim}}")],
            lines=[(warning, "orange"), (critical, "red")],
            min_value=0,
        ),
        graph(
            "Volume used space",
            "Bytes used on each persistent volume claim in the namespace.",
            units.BytesIEC,
            [Query(used, "{{persistentvolumeclaim}}")],
            min_value=0,
        ),
    ]


def _postgres(telemetry: Telemetry) -> list[Panel]:
    return [
        single_stat(
            "Postgres accepts connections",
            "Whether the exporter can connect to Postgres (`pg_up`); the exporter answers "
            "scrapes while the database is down.",
            units.NoUnit,
            [Query(f"min(pg_up{{{job(telemetry)}}})", "postgres")],
            [(None, "red"), (1, "green")],
            width=6,
            height=8,
            texts={"0": ("no", "red"), "1": ("yes", "green")},
        ),
        graph(
            "Postgres database size",
            "Size on disk of each database.",
            units.BytesIEC,
            [
                Query(
                    f"sum by (datname) (pg_database_size_bytes{{{job(telemetry)}}})",
                    "{{datname}}",
                )
            ],
            width=6,
            min_value=0,
        ),
    ]


def _redis(telemetry: Telemetry) -> list[Panel]:
    matcher = job(telemetry)
    return [
        single_stat(
            "Redis accepts connections",
            "Whether the exporter can connect to Redis (`redis_up`).",
            units.NoUnit,
            [Query(f"min(redis_up{{{matcher}}})", "redis")],
            [(None, "red"), (1, "green")],
            width=6,
            height=8,
            texts={"0": ("no", "red"), "1": ("yes", "green")},
        ),
        graph(
            "Redis memory",
            "Memory Redis uses, and its maxmemory limit when one is set.",
            units.BytesIEC,
            [
                Query(f"max(redis_memory_used_bytes{{{matcher}}})", "used"),
                Query(f"max(redis_memory_max_bytes{{{matcher}}}) > 0", "maxmemory"),
            ],
            width=6,
            min_value=0,
        ),
    ]


DATA_STORE_PANELS = {"postgres": _postgres, "redis": _redis}


def mlflow_requests(telemetry: Telemetry) -> Panel:
    total = selector("mlflow_http_request_total", job(telemetry))
    return graph(
        "MLflow requests per second by status",
        "Requests to the tracking server (health and version checks excluded), per HTTP status.",
        units.RequestsPerSecond,
        [Query(f"sum by (status) ({rate(total)})", "{{status}}")],
        min_value=0,
    )


def mlflow_latency(telemetry: Telemetry) -> Panel:
    buckets = selector("mlflow_http_request_duration_seconds_bucket", job(telemetry))
    return graph(
        "MLflow request latency",
        "Quantiles of the tracking server's request duration over 5 minutes.",
        units.Seconds,
        [Query(quantile(q, buckets), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)],
        min_value=0,
    )
