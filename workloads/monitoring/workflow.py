"""The drift check: the last window of logged predictions against the champion's training
reference, every hour by default, retraining the model when enough of its inputs drifted.

    pyflyte run workloads/monitoring/workflow.py drift_check --run_at 2026-11-30T08:00:00
    pyflyte register --image <workload image> workloads/monitoring/workflow.py

`check_drift` reads the window's rows of the champion's version from the prediction log,
compares them with Evidently, logs the HTML report and the figures to MLflow (experiment
`<model>-monitoring`) and pushes them to the Pushgateway. `retrain_on_drift` launches the
training workflow when the drifted share reached the threshold, unless a retraining is still
running or one was launched within the cool-down; the champion then moves only if the
challenger passes the training gates.

Settings: a workflow input when given, else the environment the platform writes into every
Flyte project namespace (from the stack's `kserve.driftCheck`), else the defaults below.
MLOPS_PREDICTION_LOG_URI and the S3 variables say where the log is; MLOPS_PUSHGATEWAY_URL
where the metrics go (unset: not pushed); MLOPS_RETRAINING_LAUNCHER how to launch (`flyte`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flytekit import CronSchedule, LaunchPlan, task, workflow

from workloads.model_inputs import MODEL_NAME
from workloads.monitoring import drift, log_store, metrics, retraining
from workloads.training import registry
from workloads.training.registry import Gates
from workloads.training.workflow import DEFAULT_GATES, LARGE, POD_TEMPLATE, SMALL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Defaults:
    """A setting's environment variable and its value when neither input nor env gives one."""

    variable: str
    value: float


WINDOW_HOURS = Defaults("MLOPS_DRIFT_WINDOW_HOURS", 1)
THRESHOLD = Defaults("MLOPS_DRIFT_THRESHOLD", 0.3)
COLUMN_THRESHOLD = Defaults("MLOPS_DRIFT_COLUMN_THRESHOLD", 0.5)
MIN_ROWS = Defaults("MLOPS_DRIFT_MIN_ROWS", 500)
COOLDOWN_HOURS = Defaults("MLOPS_RETRAINING_COOLDOWN_HOURS", 24)
INTERVAL_SECONDS = 3600


def setting(given: float | None, default: Defaults) -> float:
    if given is not None:
        return given
    text = os.environ.get(default.variable)
    if text is None:
        return default.value
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{default.variable} must be a number, got {text!r}") from None


@dataclass
class DriftCheck:
    model_name: str
    model_version: str
    verdict: str
    drifted_share: float
    threshold: float
    rows: int
    summary: str
    mlflow_run_id: str


@dataclass
class Retraining:
    launched: bool
    reason: str
    execution: str
    outcome: str


def _pushgateway() -> str | None:
    return os.environ.get("MLOPS_PUSHGATEWAY_URL") or None


def _experiment(client: object, model_name: str) -> str:
    name = f"{model_name}-monitoring"
    found = client.get_experiment_by_name(name)  # type: ignore[attr-defined]
    return found.experiment_id if found else client.create_experiment(name)  # type: ignore[attr-defined]


def run_check(
    model_name: str,
    run_at: datetime,
    window_hours: float,
    threshold: float,
    min_rows: int,
    column_threshold: float = COLUMN_THRESHOLD.value,
) -> DriftCheck:
    """The check itself, outside Flyte (the task is a thin wrapper)."""
    import mlflow
    import pandas as pd

    client = mlflow.MlflowClient()
    champion = registry.champion(client, model_name)
    if champion is None:
        raise ValueError(f"model {model_name} has no champion: nothing is served to check")
    end = run_at if run_at.tzinfo else run_at.replace(tzinfo=UTC)
    start = end - timedelta(hours=window_hours)
    uri = os.environ.get("MLOPS_PREDICTION_LOG_URI", "")
    if not uri:
        raise ValueError("MLOPS_PREDICTION_LOG_URI is not set: no prediction log to check")
    logged = log_store.read_window(log_store.LogLocation.parse(uri), model_name, start, end)
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=champion.run_id, artifact_path=registry.REFERENCE_SAMPLE, dst_path=tmp
        )
        reference = pd.read_parquet(path)
    result, snapshot = drift.check(
        logged,
        reference,
        model_name=model_name,
        model_version=champion.version,
        window=(start, end),
        threshold=threshold,
        min_rows=min_rows,
        column_threshold=column_threshold,
    )
    log.info("drift check of %s: %s", model_name, result.summary())
    with mlflow.start_run(experiment_id=_experiment(client, model_name)) as run:
        mlflow.set_tags(
            {
                "model_name": model_name,
                "model_version": champion.version,
                "verdict": result.verdict,
            }
        )
        mlflow.log_params(
            {
                "window_start": start.isoformat(),
                "window_end": end.isoformat(),
                "threshold": threshold,
                "column_threshold": column_threshold,
                "min_rows": min_rows,
            }
        )
        mlflow.log_metrics(
            {
                "rows": result.rows,
                "drifted_share": result.drifted_share,
                "positive_share": result.positive_share,
                **{f"drift_score.{f.feature}": f.score for f in result.features},
                **{
                    f"prediction_q{int(q * 100)}": v for q, v in result.prediction_quantiles.items()
                },
            }
        )
        if snapshot is not None:
            with tempfile.TemporaryDirectory() as tmp:
                html = Path(tmp) / "drift_report.html"
                snapshot.save_html(str(html))
                mlflow.log_artifact(str(html), "drift")
    gateway = _pushgateway()
    if gateway:
        metrics.push_drift(gateway, result, threshold)
    return DriftCheck(
        model_name,
        champion.version,
        result.verdict,
        result.drifted_share,
        threshold,
        result.rows,
        result.summary(),
        run.info.run_id,
    )


def run_retraining(
    check: DriftCheck,
    run_at: datetime,
    cooldown_hours: float,
    gates: Gates,
    launcher_name: str,
    training_run_at: datetime | None = None,
) -> Retraining:
    """Launches a retraining if the check found drift and none runs or cools down; it trains
    on the window before `training_run_at` (the check's time unless given)."""
    import mlflow

    client = mlflow.MlflowClient()
    tags = client.get_registered_model(check.model_name).tags
    state = retraining.State.from_tags(tags)
    launcher = retraining.launcher(launcher_name)
    if state.outcome == retraining.RUNNING and state.launcher == launcher.name:
        state = _record(
            client, check.model_name, replace(state, outcome=launcher.outcome(state.execution))
        )
    now = run_at if run_at.tzinfo else run_at.replace(tzinfo=UTC)
    decision = retraining.decide(
        check.verdict == drift.DRIFT, state, now, timedelta(hours=cooldown_hours)
    )
    log.info("retraining of %s: %s", check.model_name, decision.reason)
    if not decision.launch:
        return Retraining(False, decision.reason, state.execution, state.outcome)
    execution = retraining.execution_name(check.model_name, now)
    # The check's time, not the clock's: the cool-down counts in the schedule's time.
    launched = retraining.State(execution, now, launcher.name, retraining.RUNNING)
    _record(client, check.model_name, launched)
    train_until = training_run_at or now
    execution = launcher.launch(check.model_name, train_until, gates, execution)
    state = _record(
        client,
        check.model_name,
        replace(launched, execution=execution, outcome=launcher.outcome(execution)),
    )
    return Retraining(True, decision.reason, execution, state.outcome)


def _record(client: object, model_name: str, state: retraining.State) -> retraining.State:
    """Writes the retraining's state to the registered model and pushes its outcome."""
    assert state.launched_at is not None
    for key, value in (
        (retraining.EXECUTION, state.execution),
        (retraining.LAUNCHED_AT, state.launched_at.isoformat()),
        (retraining.LAUNCHER, state.launcher),
        (retraining.OUTCOME, state.outcome),
    ):
        client.set_registered_model_tag(model_name, key, value)  # type: ignore[attr-defined]
    gateway = _pushgateway()
    if gateway:
        metrics.push_retraining(
            gateway, model_name, outcome=state.outcome, launched_at=state.launched_at.timestamp()
        )
    return state


@task(requests=LARGE, retries=1, pod_template=POD_TEMPLATE)
def check_drift(
    model_name: str,
    run_at: datetime,
    window_hours: float | None,
    threshold: float | None,
    min_rows: int | None,
    column_threshold: float | None,
) -> DriftCheck:
    """The window before `run_at` against the champion's reference; a failed check is pushed
    as such before it fails the task."""
    succeeded = False
    try:
        result = run_check(
            model_name,
            run_at,
            setting(window_hours, WINDOW_HOURS),
            setting(threshold, THRESHOLD),
            int(setting(min_rows, MIN_ROWS)),
            setting(column_threshold, COLUMN_THRESHOLD),
        )
        succeeded = True
        return result
    finally:
        gateway = _pushgateway()
        if gateway:
            metrics.push_check_status(
                gateway,
                model_name,
                succeeded=succeeded,
                at=time.time(),
                interval_seconds=INTERVAL_SECONDS,
            )


@task(requests=SMALL, retries=1, pod_template=POD_TEMPLATE)
def retrain_on_drift(
    check: DriftCheck,
    run_at: datetime,
    cooldown_hours: float | None,
    gates: Gates,
    training_run_at: datetime | None,
) -> Retraining:
    import mlflow

    outcome = run_retraining(
        check,
        run_at,
        setting(cooldown_hours, COOLDOWN_HOURS),
        gates,
        os.environ.get("MLOPS_RETRAINING_LAUNCHER", "flyte"),
        training_run_at,
    )
    gateway = _pushgateway()
    if gateway:
        models = [m.name for m in mlflow.MlflowClient().search_registered_models()]
        metrics.remove_stale(gateway, models)
    return outcome


@workflow
def drift_check(
    run_at: datetime,
    model_name: str = MODEL_NAME,
    window_hours: float | None = None,
    threshold: float | None = None,
    min_rows: int | None = None,
    column_threshold: float | None = None,
    cooldown_hours: float | None = None,
    gates: Gates = DEFAULT_GATES,
    training_run_at: datetime | None = None,
) -> tuple[DriftCheck, Retraining]:
    """Checks the window before `run_at`, and retrains on drift: on the window before
    `training_run_at` when given (labels arrive late), else before `run_at`."""
    checked = check_drift(
        model_name=model_name,
        run_at=run_at,
        window_hours=window_hours,
        threshold=threshold,
        min_rows=min_rows,
        column_threshold=column_threshold,
    )
    retrained = retrain_on_drift(
        check=checked,
        run_at=run_at,
        cooldown_hours=cooldown_hours,
        gates=gates,
        training_run_at=training_run_at,
    )
    return checked, retrained


hourly = LaunchPlan.get_or_create(
    drift_check,
    name="drift_hourly",
    # On the hour, over the window that ends then.
    schedule=CronSchedule(schedule="0 * * * *", kickoff_time_input_arg="run_at"),
)
