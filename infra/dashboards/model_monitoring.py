"""Model monitoring: what the served model is fed and how the loop that retrains it is doing.

The transformers count the predictions they log (`prediction_log_*`, job `inference`); the
drift check (workloads/monitoring/) pushes, per model, the drift score of each monitored column,
the drifted share against the threshold, the window's rows and prediction quantiles, its own
runs, and the last retraining's launch and outcome, through the Pushgateway (jobs
`model_drift`, `model_drift_check`, `model_retraining`). The drift threshold is drawn from the
pushed `model_drift_threshold`, the stack's `kserve.driftCheck.threshold`.
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
    model,
    rate,
    row,
    selector,
    single_stat,
)

UID = "mlops-model-monitoring"
# The retraining outcomes the drift check pushes (workloads/monitoring/metrics.py OUTCOMES),
# each shown as a word and a colour.
OUTCOMES = {
    "0": ("no retraining yet", "text"),
    "1": ("running", "blue"),
    "2": ("promoted", "green"),
    "3": ("not promoted", "yellow"),
    "4": ("failed", "red"),
}
OUTCOME_CODES = {"running": 1, "promoted": 2, "not_promoted": 3, "failed": 4}


def build(context: DashboardContext) -> dict[str, Any]:
    (predictors,) = context.require("kserve").discovery
    scope = (equals("job", predictors.job), equals("namespace", predictors.namespace))
    board = dashboard(
        UID,
        "MLOps platform / Model monitoring",
        "Drift of the served model's inputs against its training reference, the predictions "
        "logged for the drift check, and the retraining it launches.",
        ["serving", "monitoring", "drift"],
        since="now-7d",
    )
    board.with_row(row("Drift"))
    board.with_panel(drift_per_feature())
    board.with_panel(drifted_share())
    board.with_row(row("Predictions"))
    board.with_panel(predictions_logged(scope))
    board.with_panel(prediction_quantiles())
    board.with_row(row("Retraining"))
    board.with_panel(last_retraining())
    board.with_panel(last_retraining_time())
    board.with_panel(last_check())
    return model(board)


def drift_per_feature() -> Panel:
    return graph(
        "Drift score per feature",
        "Each monitored column's drift score in the last window (Evidently's test for its "
        "sizes: Wasserstein distance or Kolmogorov-Smirnov p-value; see the method label).",
        units.Short,
        [
            Query(
                "max by (model_name, feature, method) (model_feature_drift_score)",
                "{{model_name}} {{feature}} ({{method}})",
            )
        ],
        min_value=0,
    )


def drifted_share() -> Panel:
    return graph(
        "Drifted share of features",
        "Share of the monitored columns that drifted in each check, and the threshold at which "
        "the check calls drift and launches a retraining.",
        units.PercentUnit,
        [
            Query(
                "max by (model_name, model_version) (model_drifted_features_share)",
                "{{model_name}} v{{model_version}}",
            ),
            Query("max by (model_name) (model_drift_threshold)", "{{model_name}} threshold"),
        ],
        min_value=0,
    )


def predictions_logged(scope: tuple[str, ...]) -> Panel:
    written = selector("prediction_log_records_total", *scope)
    dropped = selector("prediction_log_dropped_records_total", *scope)
    return graph(
        "Predictions logged per minute",
        "Scored transactions written to the prediction log per minute, per InferenceService, "
        "and those dropped (queue full or the store failing), by reason.",
        units.Short,
        [
            Query(
                f"60 * sum by (inferenceservice) ({rate(written)})",
                "{{inferenceservice}} logged",
            ),
            Query(
                f"60 * sum by (inferenceservice, reason) ({rate(dropped)})",
                "{{inferenceservice}} dropped ({{reason}})",
            ),
        ],
        min_value=0,
    )


def prediction_quantiles() -> Panel:
    return graph(
        "Fraud probability served",
        "Quantiles of the fraud probability served in each check's window, and the share at "
        "or above 0.5.",
        units.PercentUnit,
        [
            Query(
                "max by (model_name, quantile) (model_prediction_quantile)",
                "{{model_name}} q{{quantile}}",
            ),
            Query(
                "max by (model_name) (model_prediction_positive_share)",
                "{{model_name}} share >= 0.5",
            ),
        ],
        min_value=0,
    )


def last_retraining() -> Panel:
    # The outcome whose series is 1, as its code (0: none pushed yet).
    code = " or ".join(
        f'{number} * max by (model_name) (model_retraining_last_outcome{{outcome="{name}"}} == 1)'
        for name, number in OUTCOME_CODES.items()
    )
    return single_stat(
        "Last retraining",
        "The outcome of the last retraining launched on drift: running, promoted (the "
        "challenger passed the gates), not promoted, or failed.",
        units.Short,
        [Query(f"({code}) or on () vector(0)", "{{model_name}}")],
        [(None, "text")],
        width=8,
        texts=OUTCOMES,
    )


def last_retraining_time() -> Panel:
    return single_stat(
        "Last retraining launched",
        "When the last retraining on drift was launched.",
        units.DateTimeFromNow,
        [
            Query(
                "1000 * max by (model_name) (model_retraining_last_launch_timestamp_seconds)",
                "{{model_name}}",
            )
        ],
        [(None, "text")],
        width=8,
    )


def last_check() -> Panel:
    return single_stat(
        "Last successful drift check",
        "When the drift check last succeeded (the DriftCheckFailed alert says when it fails).",
        units.DateTimeFromNow,
        [
            Query(
                "1000 * max by (model_name) (model_drift_check_last_success_timestamp_seconds)",
                "{{model_name}}",
            )
        ],
        [(None, "text")],
        width=8,
    )
