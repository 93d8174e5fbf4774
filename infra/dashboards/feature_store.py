"""Feature store: the Feast feature server's online traffic, latency and errors, and how fresh
each feature view's materialized values are.

Series and labels are those of `feast serve --metrics` (feast/metrics.py of the pinned version):
requests are labelled by endpoint (the route, e.g. "/get-online-features") and status
("success" or "error").
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import units

from infra.dashboards.panels import (
    DashboardContext,
    Panel,
    Query,
    dashboard,
    equals,
    graph,
    job,
    model,
    quantile,
    rate,
    row,
    selector,
)

UID = "mlops-feature-store"
ONLINE_ENDPOINT = "/get-online-features"
QUANTILES = (0.5, 0.99)


def build(context: DashboardContext) -> dict[str, Any]:
    scope = job(context.require("feast"))
    board = dashboard(
        UID,
        "MLOps platform / Feature store",
        "Online feature serving and materialization freshness of the Feast feature server.",
        ["feature-store", "feast"],
    )
    board.with_row(row("Online serving"))
    board.with_panel(online_requests(scope))
    board.with_panel(online_latency(scope))
    board.with_panel(outcomes(scope))
    board.with_panel(store_read_latency(scope))
    board.with_row(row("Materialization"))
    board.with_panel(freshness(scope, context.threshold("FeatureMaterializationStale")))
    return model(board)


def _quantiles(buckets: str) -> list[Query]:
    return [Query(quantile(q, buckets), f"p{round(q * 100)}") for q in QUANTILES]


def online_requests(scope: str) -> Panel:
    total = selector(
        "feast_feature_server_request_total", scope, equals("endpoint", ONLINE_ENDPOINT)
    )
    retrievals = selector("feast_online_features_request_total", scope)
    return graph(
        "Online feature requests per second",
        f"Requests to {ONLINE_ENDPOINT} by status, and the online retrievals that read the "
        "online store.",
        units.RequestsPerSecond,
        [
            Query(f"sum by (status) ({rate(total)})", "{{status}}"),
            Query(f"sum({rate(retrievals)})", "online store retrievals"),
        ],
        min_value=0,
    )


def online_latency(scope: str) -> Panel:
    buckets = selector(
        "feast_feature_server_request_latency_seconds_bucket",
        scope,
        equals("endpoint", ONLINE_ENDPOINT),
    )
    return graph(
        "Online feature latency",
        f"Quantiles of the duration of {ONLINE_ENDPOINT} requests over 5 minutes.",
        units.Seconds,
        _quantiles(buckets),
        min_value=0,
    )


def outcomes(scope: str) -> Panel:
    total = selector("feast_feature_server_request_total", scope)
    return graph(
        "Request outcomes per endpoint",
        "Share of each endpoint's requests that ended in each status; `error` is any exception "
        "a handler raised.",
        units.PercentUnit,
        [
            Query(
                f"sum by (endpoint, status) ({rate(total)}) / ignoring (status) group_left () "
                f"sum by (endpoint) ({rate(total)})",
                "{{endpoint}} {{status}}",
            )
        ],
        min_value=0,
    )


def store_read_latency(scope: str) -> Panel:
    buckets = selector("feast_feature_server_online_store_read_duration_seconds_bucket", scope)
    return graph(
        "Online store read latency",
        "Quantiles of the online store (Redis) read phase of online requests over 5 minutes.",
        units.Seconds,
        _quantiles(buckets),
        min_value=0,
    )


def freshness(scope: str, stale_after: float) -> Panel:
    return graph(
        "Feature freshness",
        "Seconds since the newest materialization end of each feature view; the line is the "
        "staleness alert's threshold.",
        units.Seconds,
        [
            Query(
                f"max by (project, feature_view) "
                f"({selector('feast_feature_freshness_seconds', scope)})",
                "{{project}}/{{feature_view}}",
            )
        ],
        width=24,
        lines=[(stale_after, "red")],
        min_value=0,
    )
