"""The model's life in MLflow: one run per distinct training, one version per run, and the
`champion` alias, which moves only when a challenger passes the gates.

Policy: a training is identified by its fingerprint (rows, hyper-parameters, feature service,
code revision). Training again on unchanged data finds the run with that fingerprint and
reuses it and its version, so no run or version piles up and the champion stays where it is.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from workloads.training.model import Scores

CHAMPION = "champion"
EXPERIMENT = "fraud-detection"
# The model's artifact path inside its run, and its reference sample for drift checks.
MODEL_ARTIFACT = "model"
REFERENCE_SAMPLE = "reference/features.parquet"


@dataclass(frozen=True)
class Gates:
    """A challenger becomes champion only if it clears both floors and beats the champion's
    PR AUC on the same held-out window by at least `min_improvement`."""

    min_roc_auc: float = 0.85
    min_pr_auc: float = 0.5
    min_improvement: float = 0.0


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str


def code_revision() -> str:
    """The image's revision (MLOPS_CODE_REVISION), else the checkout's commit."""
    revision = os.environ.get("MLOPS_CODE_REVISION")
    if revision:
        return revision
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def find_run(client: MlflowClient, experiment_id: str, fingerprint: str) -> str | None:
    """The finished run that trained this fingerprint, if one did."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.fingerprint = '{fingerprint}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def experiment_id(client: MlflowClient) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    return found.experiment_id if found else client.create_experiment(EXPERIMENT)


def model_uri(client: MlflowClient, run_id: str) -> str:
    """The logged model of a run (`models:/<model id>`)."""
    models = client.search_logged_models(
        experiment_ids=[client.get_run(run_id).info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
    )
    if not models:
        raise LookupError(f"run {run_id} logged no model")
    return f"models:/{models[0].model_id}"


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def register(client: MlflowClient, name: str, run_id: str, uri: str) -> ModelVersion:
    """The run's version, registered on first sight only."""
    import mlflow

    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        return version
    registered = mlflow.register_model(uri, name)
    return client.get_model_version(name, registered.version)


def decide(
    version: str, challenger: Scores, best: Scores | None, best_version: str | None, gates: Gates
) -> Decision:
    if best_version == version:
        return Decision(False, f"version {version} is already the champion")
    for metric, floor in (("roc_auc", gates.min_roc_auc), ("pr_auc", gates.min_pr_auc)):
        value = getattr(challenger, metric)
        if value < floor:
            return Decision(False, f"{metric} {value:.4f} is below the gate {floor:.4f}")
    if best is None:
        return Decision(True, "no champion yet, and the gates pass")
    needed = best.pr_auc + gates.min_improvement
    if challenger.pr_auc < needed:
        return Decision(
            False,
            f"pr_auc {challenger.pr_auc:.4f} does not beat champion version {best_version}'s "
            f"{best.pr_auc:.4f} by {gates.min_improvement:.4f}",
        )
    return Decision(
        True, f"pr_auc {challenger.pr_auc:.4f} beats version {best_version}'s {best.pr_auc:.4f}"
    )


def storage_uri(client: MlflowClient, uri: str, artifacts_destination: str) -> str:
    """The `s3://` location of a logged model's files, which KServe's storage initializer can
    read: MLflow hands out `models:/<id>` and, when it proxies artifacts, `mlflow-artifacts:/`
    paths below its `--artifacts-destination`."""
    location = client.get_logged_model(uri.removeprefix("models:/")).artifact_location
    if location.startswith("mlflow-artifacts:"):
        path = location.removeprefix("mlflow-artifacts:").lstrip("/")
        return f"{artifacts_destination.rstrip('/')}/{path}"
    if location.startswith("s3://"):
        return location
    raise ValueError(f"model artifacts at {location!r} are not in S3: KServe cannot read them")
