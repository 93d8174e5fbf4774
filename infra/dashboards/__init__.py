"""The platform's Grafana dashboards as code (grafana-foundation-sdk), one module per dashboard.

Each is built from the components' telemetry declarations (job names, series, pod requests),
so a dashboard follows the components that are enabled and the names they define. The
monitoring component provisions the JSON models from a ConfigMap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.dashboards import feature_store, model_monitoring, overview, serving, training
from infra.dashboards.panels import DashboardContext

__all__ = ["DashboardContext", "build_all", "expressions"]


def build_all(context: DashboardContext) -> dict[str, dict[str, Any]]:
    """File name (e.g. "platform-overview.json") -> dashboard JSON model."""
    boards = {"platform-overview.json": overview.build(context)}
    if context.component("kserve") is not None:
        boards["model-serving.json"] = serving.build(context)
        boards["model-monitoring.json"] = model_monitoring.build(context)
    if context.component("feast") is not None:
        boards["feature-store.json"] = feature_store.build(context)
    if context.component("flyte") is not None:
        boards["training.json"] = training.build(context)
    return boards


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        # A collapsed row holds its panels.
        yield from _panels(panel.get("panels", []))


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard's panels (for tests and checks)."""
    return [
        target["expr"]
        for panel in _panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
