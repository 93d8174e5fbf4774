"""What the drift check tells Prometheus, through the Pushgateway (MLOPS_PUSHGATEWAY_URL).

A batch job has nothing to scrape, so it pushes. Three groups per model, each keyed by
`model_name` and replaced as a whole or in part:
- job `model_drift` (PUT: replaced by every check, so a previous version's series go with it):
  per-feature scores and verdicts, the drifted share, the threshold, rows, the prediction
  distribution;
- job `model_drift_check` (POST: only the pushed names are replaced): when the check last ran
  and last succeeded, whether the last run failed, and the schedule's interval;
- job `model_retraining` (POST): the last retraining's launch time and outcome.
Groups of models the registry no longer has are deleted by `remove_stale`.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, delete_from_gateway, push_to_gateway
from prometheus_client.exposition import pushadd_to_gateway

from workloads.monitoring.drift import NOT_ENOUGH_DATA, DriftResult

DRIFT_JOB, CHECK_JOB, RETRAINING_JOB = "model_drift", "model_drift_check", "model_retraining"
JOBS = (DRIFT_JOB, CHECK_JOB, RETRAINING_JOB)
# The retraining outcomes, each a series of model_retraining_last_outcome (1 for the current).
OUTCOMES = ("running", "promoted", "not_promoted", "failed")
TIMEOUT = 10.0

# Every series this module pushes: the platform declares them (infra/components/kserve.py).
SERIES = frozenset(
    {
        "model_feature_drift_score",
        "model_feature_drifted",
        "model_drifted_features_share",
        "model_drift_threshold",
        "model_drift_window_rows",
        "model_drift_enough_data",
        "model_prediction_quantile",
        "model_prediction_positive_share",
        "model_drift_check_last_run_timestamp_seconds",
        "model_drift_check_last_success_timestamp_seconds",
        "model_drift_check_failed",
        "model_drift_check_interval_seconds",
        "model_retraining_last_launch_timestamp_seconds",
        "model_retraining_last_outcome",
    }
)


def push_drift(url: str, result: DriftResult, threshold: float) -> None:
    registry = CollectorRegistry()
    version = ("model_version",)
    score = Gauge(
        "model_feature_drift_score",
        "Drift score of a monitored column (see method) in the last window",
        [*version, "feature", "method"],
        registry=registry,
    )
    drifted = Gauge(
        "model_feature_drifted",
        "1 if the column's drift test failed in the last window",
        [*version, "feature"],
        registry=registry,
    )
    share = Gauge(
        "model_drifted_features_share",
        "Share of monitored columns that drifted in the last window",
        version,
        registry=registry,
    )
    Gauge(
        "model_drift_threshold",
        "The drifted share at which the check calls drift and retrains",
        registry=registry,
    ).set(threshold)
    rows = Gauge(
        "model_drift_window_rows",
        "Logged rows of the version in the window",
        version,
        registry=registry,
    )
    enough = Gauge(
        "model_drift_enough_data",
        "1 if the window had enough rows for a verdict",
        version,
        registry=registry,
    )
    quantile = Gauge(
        "model_prediction_quantile",
        "Quantiles of the fraud probability served in the window",
        [*version, "quantile"],
        registry=registry,
    )
    positive = Gauge(
        "model_prediction_positive_share",
        "Share of the window's predictions at or above 0.5",
        version,
        registry=registry,
    )
    v = result.model_version
    for feature in result.features:
        score.labels(v, feature.feature, feature.method).set(feature.score)
        drifted.labels(v, feature.feature).set(int(feature.drifted))
    share.labels(v).set(result.drifted_share)
    rows.labels(v).set(result.rows)
    enough.labels(v).set(int(result.verdict != NOT_ENOUGH_DATA))
    for q, value in result.prediction_quantiles.items():
        quantile.labels(v, str(q)).set(value)
    positive.labels(v).set(result.positive_share)
    push_to_gateway(
        url, DRIFT_JOB, registry, grouping_key={"model_name": result.model_name}, timeout=TIMEOUT
    )


def push_check_status(
    url: str, model_name: str, *, succeeded: bool, at: float, interval_seconds: float
) -> None:
    registry = CollectorRegistry()
    Gauge(
        "model_drift_check_last_run_timestamp_seconds",
        "When the drift check last ran",
        registry=registry,
    ).set(at)
    Gauge("model_drift_check_failed", "1 if the last drift check failed", registry=registry).set(
        0 if succeeded else 1
    )
    Gauge(
        "model_drift_check_interval_seconds",
        "The drift check's schedule interval",
        registry=registry,
    ).set(interval_seconds)
    if succeeded:
        Gauge(
            "model_drift_check_last_success_timestamp_seconds",
            "When the drift check last succeeded",
            registry=registry,
        ).set(at)
    pushadd_to_gateway(
        url, CHECK_JOB, registry, grouping_key={"model_name": model_name}, timeout=TIMEOUT
    )


def push_retraining(url: str, model_name: str, *, outcome: str, launched_at: float) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"retraining outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    registry = CollectorRegistry()
    Gauge(
        "model_retraining_last_launch_timestamp_seconds",
        "When the last retraining was launched",
        registry=registry,
    ).set(launched_at)
    last = Gauge(
        "model_retraining_last_outcome",
        "1 for the last retraining's outcome: running, promoted, not_promoted or failed",
        ["outcome"],
        registry=registry,
    )
    for name in OUTCOMES:
        last.labels(name).set(int(name == outcome))
    pushadd_to_gateway(
        url, RETRAINING_JOB, registry, grouping_key={"model_name": model_name}, timeout=TIMEOUT
    )


def groups(url: str) -> list[dict[str, str]]:
    """The label sets of every group the Pushgateway holds."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/metrics", timeout=TIMEOUT) as r:
        return [group["labels"] for group in json.load(r)["data"]]


def remove_stale(url: str, models: Iterable[str]) -> list[tuple[str, str]]:
    """Deletes this module's groups of models not in `models`; the (job, model) deleted."""
    keep = set(models)
    removed = []
    for labels in groups(url):
        job, model = labels.get("job"), labels.get("model_name")
        if job in JOBS and model and model not in keep:
            delete_from_gateway(url, job, grouping_key={"model_name": model}, timeout=TIMEOUT)
            removed.append((job, model))
    return removed
