"""The fraud model's training workflow: training frame -> train -> evaluate -> register and
promote -> deploy, and the weekly schedule that runs it on the latest window.

    pyflyte run workloads/training/workflow.py training --run_at 2026-11-01T00:00:00
    pyflyte register --image <workload image> workloads/training/workflow.py

Tasks read their settings from the environment that the platform writes into every Flyte
project namespace (ConfigMap and Secret `mlops-workloads`): MLFLOW_TRACKING_URI and its
credentials, MLOPS_MLFLOW_ARTIFACTS (the server's --artifacts-destination), the Feast store
config and credentials, MLOPS_MODEL_NAMESPACE and MLOPS_WORKLOADS_IMAGE.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from flytekit import CronSchedule, LaunchPlan, PodTemplate, Resources, task, workflow
from kubernetes.client import (
    V1ConfigMapEnvSource,
    V1ConfigMapProjection,
    V1ConfigMapVolumeSource,
    V1Container,
    V1DownwardAPIProjection,
    V1DownwardAPIVolumeFile,
    V1EnvFromSource,
    V1KeyToPath,
    V1ObjectFieldSelector,
    V1PodSpec,
    V1ProjectedVolumeSource,
    V1SecretEnvSource,
    V1ServiceAccountTokenProjection,
    V1Volume,
    V1VolumeMount,
    V1VolumeProjection,
)

from workloads.model_inputs import (
    FEATURE_SERVICE,
    LABEL,
    MODEL_NAME,
    MONITORED,
    model_frame,
)
from workloads.training import data, model, registry
from workloads.training.model import HyperParameters, Scores
from workloads.training.registry import Gates

# What the platform puts in every Flyte project namespace for these tasks.
WORKLOADS_CONFIG = "mlops-workloads"
SERVICE_ACCOUNT = "mlops-training"
FEAST_CONFIG_DIR = "/etc/feast"
REFERENCE_ROWS = 2_000
CACHE_VERSION = "1"

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# The deploy task calls the API server as SERVICE_ACCOUNT, whose automount is off: the token
# is mounted explicitly, expiring, in the shape of infra/kube.py's api_token_volume (a unit
# test keeps them equal); no audience, so the API server's default applies.
API_TOKEN = V1Volume(
    name="kube-api-access",
    projected=V1ProjectedVolumeSource(
        sources=[
            V1VolumeProjection(
                service_account_token=V1ServiceAccountTokenProjection(
                    path="token", expiration_seconds=3600
                )
            ),
            V1VolumeProjection(
                config_map=V1ConfigMapProjection(
                    name="kube-root-ca.crt", items=[V1KeyToPath(key="ca.crt", path="ca.crt")]
                )
            ),
            V1VolumeProjection(
                downward_api=V1DownwardAPIProjection(
                    items=[
                        V1DownwardAPIVolumeFile(
                            path="namespace",
                            field_ref=V1ObjectFieldSelector(
                                api_version="v1", field_path="metadata.namespace"
                            ),
                        )
                    ]
                )
            ),
        ]
    ),
)

POD_TEMPLATE = PodTemplate(
    primary_container_name="primary",
    pod_spec=V1PodSpec(
        service_account_name=SERVICE_ACCOUNT,
        automount_service_account_token=False,
        containers=[
            V1Container(
                name="primary",
                env_from=[
                    V1EnvFromSource(config_map_ref=V1ConfigMapEnvSource(name=WORKLOADS_CONFIG)),
                    V1EnvFromSource(secret_ref=V1SecretEnvSource(name=WORKLOADS_CONFIG)),
                ],
                volume_mounts=[
                    V1VolumeMount(name="feast", mount_path=FEAST_CONFIG_DIR, read_only=True),
                    V1VolumeMount(
                        name=API_TOKEN.name, mount_path=SERVICE_ACCOUNT_DIR, read_only=True
                    ),
                ],
            )
        ],
        volumes=[
            V1Volume(
                name="feast", config_map=V1ConfigMapVolumeSource(name=f"{WORKLOADS_CONFIG}-feast")
            ),
            API_TOKEN,
        ],
    ),
)
DEFAULT_HYPER = HyperParameters()
DEFAULT_GATES = Gates()
SMALL = Resources(cpu="250m", mem="512Mi")
LARGE = Resources(cpu="1", mem="2Gi")


@dataclass
class Window:
    train_start: datetime
    train_end: datetime
    eval_end: datetime


@dataclass
class Trained:
    run_id: str
    model_uri: str
    fingerprint: str
    reused: bool


@dataclass
class Evaluation:
    roc_auc: float
    pr_auc: float
    champion_version: str
    champion_roc_auc: float
    champion_pr_auc: float


@dataclass
class Outcome:
    version: str
    promoted: bool
    reason: str
    champion_version: str


@task(requests=SMALL, pod_template=POD_TEMPLATE)
def data_window(run_at: datetime, train_days: int, eval_days: int) -> Window:
    """Train on `train_days` before the last `eval_days`, evaluate on those."""
    if train_days < 1 or eval_days < 1:
        raise ValueError(
            f"train_days and eval_days must be at least 1, got {train_days}, {eval_days}"
        )
    eval_start = run_at - timedelta(days=eval_days)
    return Window(eval_start - timedelta(days=train_days), eval_start, run_at)


# A past window's rows do not change: cached by window.
@task(requests=LARGE, retries=2, cache=True, cache_version=CACHE_VERSION, pod_template=POD_TEMPLATE)
def training_frame(start: datetime, end: datetime) -> pd.DataFrame:
    """Labelled transactions of [start, end) with their point-in-time features."""
    return data.labelled_features(data.feature_store(), start, end)


@task(requests=LARGE, retries=1, pod_template=POD_TEMPLATE)
def train(frame: pd.DataFrame, window: Window, hyper: HyperParameters) -> Trained:
    """Trains and logs a run, unless a finished run already has this fingerprint."""
    import mlflow
    from mlflow.models import infer_signature

    client = mlflow.MlflowClient()
    experiment = registry.experiment_id(client)
    revision = registry.code_revision()
    fingerprint = model.fingerprint(frame, hyper, revision)
    existing = registry.find_run(client, experiment, fingerprint)
    if existing is not None:
        return Trained(existing, registry.model_uri(client, existing), fingerprint, True)
    fitted = model.train(frame, hyper)
    reference = frame[list(MONITORED)]
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.set_tags(
            {
                "fingerprint": fingerprint,
                "feature_service": FEATURE_SERVICE,
                "code_revision": revision,
            }
        )
        mlflow.log_params(
            {
                **asdict(hyper),
                "train_start": window.train_start.isoformat(),
                "train_end": window.train_end.isoformat(),
                "eval_end": window.eval_end.isoformat(),
                "feature_service": FEATURE_SERVICE,
            }
        )
        mlflow.log_metrics(
            {
                "train_rows": len(frame),
                "train_fraud_rows": int(frame[LABEL].sum()),
                **{
                    f"train_{k}": v
                    for k, v in asdict(
                        model.scores(
                            frame[LABEL].to_numpy(), model.fraud_probability(fitted, frame)
                        )
                    ).items()
                },
            }
        )
        filled = model_frame(frame)
        mlflow.sklearn.log_model(
            fitted,
            name=registry.MODEL_ARTIFACT,
            signature=infer_signature(filled, fitted.predict_proba(filled)),
            input_example=filled.head(5),
            pyfunc_predict_fn="predict_proba",
            pip_requirements=model.requirements(),
            # skops refuses HistGradientBoosting's tree nodes unless told they are trusted:
            # this model is our own.
            skops_trusted_types=model.TRUSTED_TYPES,
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(registry.REFERENCE_SAMPLE).name
            reference.sample(
                min(REFERENCE_ROWS, len(reference)), random_state=hyper.seed
            ).to_parquet(path)
            mlflow.log_artifact(str(path), str(Path(registry.REFERENCE_SAMPLE).parent))
    return Trained(run.info.run_id, registry.model_uri(client, run.info.run_id), fingerprint, False)


@task(requests=LARGE, retries=1, pod_template=POD_TEMPLATE)
def evaluate(trained: Trained, holdout: pd.DataFrame, model_name: str) -> Evaluation:
    """The challenger and the current champion, scored on the same held-out window."""
    import mlflow

    client = mlflow.MlflowClient()
    labels = holdout[LABEL].to_numpy()
    challenger = model.scores(
        labels, model.fraud_probability(mlflow.sklearn.load_model(trained.model_uri), holdout)
    )
    client.log_metric(trained.run_id, "holdout_roc_auc", challenger.roc_auc)
    client.log_metric(trained.run_id, "holdout_pr_auc", challenger.pr_auc)
    current = registry.champion(client, model_name)
    if current is None:
        return Evaluation(challenger.roc_auc, challenger.pr_auc, "", 0.0, 0.0)
    best = model.scores(
        labels,
        model.fraud_probability(
            mlflow.sklearn.load_model(f"models:/{model_name}@{registry.CHAMPION}"), holdout
        ),
    )
    return Evaluation(
        challenger.roc_auc, challenger.pr_auc, current.version, best.roc_auc, best.pr_auc
    )


@task(requests=SMALL, retries=2, pod_template=POD_TEMPLATE)
def register_and_promote(
    trained: Trained, evaluation: Evaluation, model_name: str, gates: Gates
) -> Outcome:
    """Registers the run's version (once) and moves `champion` to it if the gates pass; the
    decision and its reason are tags of the version."""
    import mlflow

    client = mlflow.MlflowClient()
    version = registry.register(client, model_name, trained.run_id, trained.model_uri).version
    best = (
        Scores(evaluation.champion_roc_auc, evaluation.champion_pr_auc)
        if evaluation.champion_version
        else None
    )
    decision = registry.decide(
        version,
        Scores(evaluation.roc_auc, evaluation.pr_auc),
        best,
        evaluation.champion_version or None,
        gates,
    )
    client.set_model_version_tag(model_name, version, "fingerprint", trained.fingerprint)
    client.set_model_version_tag(
        model_name, version, "decision", "promoted" if decision.promoted else "not promoted"
    )
    client.set_model_version_tag(model_name, version, "decision_reason", decision.reason)
    if decision.promoted:
        client.set_registered_model_alias(model_name, registry.CHAMPION, version)
    champion = version if decision.promoted else evaluation.champion_version
    return Outcome(version, decision.promoted, decision.reason, champion)


@task(requests=SMALL, retries=2, pod_template=POD_TEMPLATE)
def deploy(outcome: Outcome, model_name: str, apply: bool) -> dict:  # type: ignore[type-arg]
    """The champion's InferenceService, created or updated in the model namespace when
    `apply` (a local run leaves the cluster alone), once KServe reports it Ready; a refusal,
    a spec the controller rejects or a deadline passed fails the task with KServe's message."""
    import mlflow

    from workloads.serving import inference_service as isvc
    from workloads.training import kube

    if not outcome.champion_version:
        raise ValueError(f"model {model_name} has no champion to deploy: {outcome.reason}")
    client = mlflow.MlflowClient()
    champion = client.get_model_version(model_name, outcome.champion_version)
    uri = registry.storage_uri(client, champion.source, os.environ["MLOPS_MLFLOW_ARTIFACTS"])
    manifest = isvc.inference_service(model_name, champion.version, uri, isvc.Target.from_env())
    if apply:
        kube.deploy_inference_service(manifest)
    return manifest


@workflow
def training(
    run_at: datetime,
    train_days: int = 21,
    eval_days: int = 7,
    hyper: HyperParameters = DEFAULT_HYPER,
    gates: Gates = DEFAULT_GATES,
    model_name: str = MODEL_NAME,
    apply: bool = True,
) -> tuple[Outcome, dict]:  # type: ignore[type-arg]
    """Trains on the window before `run_at`, promotes the model if it earns it, and deploys
    the champion (the outcome, and the champion's InferenceService)."""
    window = data_window(run_at=run_at, train_days=train_days, eval_days=eval_days)
    frame = training_frame(start=window.train_start, end=window.train_end)
    holdout = training_frame(start=window.train_end, end=window.eval_end)
    trained = train(frame=frame, window=window, hyper=hyper)
    evaluation = evaluate(trained=trained, holdout=holdout, model_name=model_name)
    outcome = register_and_promote(
        trained=trained, evaluation=evaluation, model_name=model_name, gates=gates
    )
    return outcome, deploy(outcome=outcome, model_name=model_name, apply=apply)


weekly = LaunchPlan.get_or_create(
    training,
    name="training_weekly",
    # Mondays 03:00 UTC, on the window that ends at the scheduled time.
    schedule=CronSchedule(schedule="0 3 * * 1", kickoff_time_input_arg="run_at"),
)
