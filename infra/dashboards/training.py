"""Training: Flyte workflow runs, their outcomes and durations.

Flyte propeller times every completed workflow in the summaries `...:success_duration_ms` and
`...:failure_duration_ms` (labels project, domain, wf; quantiles 0.5, 0.9 and 0.99), so their
`_count` series count completed runs; `...:accepted` counts workflows propeller took on.
Training runs are rare, hence hour-long windows.
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
    or_zero,
    rate,
    row,
    selector,
)

UID = "mlops-training"
SUCCESS = "flyte:propeller:all:workflow:success_duration_ms"
FAILURE = "flyte:propeller:all:workflow:failure_duration_ms"
ACCEPTED = "flyte:propeller:all:workflow:accepted"
RUNS = "{{project}}/{{domain}} {{wf}}"
RATIO_WINDOW = "6h"


def build(context: DashboardContext) -> dict[str, Any]:
    scope = job(context.require("flyte"))
    board = dashboard(
        UID,
        "MLOps platform / Training",
        "Flyte workflow runs: outcomes, success ratio and durations.",
        ["training", "flyte"],
        since="now-24h",
    )
    board.with_row(row("Runs"))
    board.with_panel(runs(scope))
    # The alert fires above a share of failed runs; the panel shows the share that succeeded.
    failing = 1 - context.threshold("TrainingWorkflowsFailing")
    board.with_panel(success_ratio(scope, failing))
    board.with_panel(accepted(scope))
    board.with_row(row("Durations"))
    board.with_panel(mean_duration(scope))
    board.with_panel(p90_duration(scope))
    return model(board)


def _completed(summary: str, scope: str, window: str, by: str) -> str:
    return f"sum by ({by}) (increase({selector(f'{summary}_count', scope)}[{window}]))"


def runs(scope: str) -> Panel:
    by = "project, domain, wf"
    return graph(
        "Completed runs per hour",
        "Workflow runs that succeeded and that failed in the last hour.",
        units.Short,
        [
            Query(_completed(SUCCESS, scope, "1h", by), f"{RUNS} succeeded"),
            Query(_completed(FAILURE, scope, "1h", by), f"{RUNS} failed"),
        ],
        width=8,
        min_value=0,
    )


def success_ratio(scope: str, failing_below: float) -> Panel:
    by = "project, domain"
    succeeded = _completed(SUCCESS, scope, RATIO_WINDOW, by)
    failed = _completed(FAILURE, scope, RATIO_WINDOW, by)
    # A summary appears with its first observation: a domain without failures has no failure
    # series, one without successes no success series; or_zero stands in for them.
    successes, failures = or_zero(succeeded, failed), or_zero(failed, succeeded)
    return graph(
        "Success ratio (6 h)",
        "Share of the runs completed in the last 6 hours that succeeded, per project and domain.",
        units.PercentUnit,
        [Query(f"{successes} / ({successes} + {failures})", "{{project}}/{{domain}}")],
        width=8,
        lines=[(failing_below, "red")],
        min_value=0,
    )


def accepted(scope: str) -> Panel:
    return graph(
        "Workflows accepted per hour",
        "Workflow executions propeller accepted in the last hour.",
        units.Short,
        [Query(f"sum by (project, domain, wf) (increase({selector(ACCEPTED, scope)}[1h]))", RUNS)],
        width=8,
        min_value=0,
    )


def _mean(summary: str, scope: str) -> str:
    by = "project, domain, wf"
    total = rate(selector(f"{summary}_sum", scope), "1h")
    count = rate(selector(f"{summary}_count", scope), "1h")
    return f"sum by ({by}) ({total}) / sum by ({by}) ({count})"


def mean_duration(scope: str) -> Panel:
    return graph(
        "Mean run duration (1 h)",
        "Mean duration of the runs completed in the last hour.",
        units.Milliseconds,
        [
            Query(_mean(SUCCESS, scope), f"{RUNS} succeeded"),
            Query(_mean(FAILURE, scope), f"{RUNS} failed"),
        ],
        min_value=0,
    )


def p90_duration(scope: str) -> Panel:
    def p90(summary: str) -> str:
        # Quantiles of different pods cannot be merged; the slowest is shown.
        series = selector(summary, scope, equals("quantile", "0.9"))
        return f"max by (project, domain, wf) ({series})"

    return graph(
        "p90 run duration",
        "90th percentile of run durations as propeller reports it (its summary's recent window).",
        units.Milliseconds,
        [Query(p90(SUCCESS), f"{RUNS} succeeded"), Query(p90(FAILURE), f"{RUNS} failed")],
        min_value=0,
    )
