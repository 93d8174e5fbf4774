"""The golden path, run for real: features -> Flyte training -> MLflow -> KServe serving.

Everything a deploy runs, on loopback: the rendered Postgres init, bucket, feast apply and
materialize commands; the rendered MLflow server; the training workflow through flytekit's
local execution (`pyflyte run`); the InferenceService its deploy task produces, validated
against KServe v0.20's CRD; the model fetched from S3 as KServe's storage initializer does;
and the predictor (the rendered ServingRuntime, in the serving environment) and the
transformer (the InferenceService's container) as processes. Only hosts and ports change.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from infra import render
from tests.support.feast_store import platform_store
from tests.support.kserve import (
    fetch_like_storage_initializer,
    predictor_command,
    transformer_command,
    validate,
)
from tests.support.mlflow_server import (
    ADMIN,
    ADMIN_PASSWORD,
    addresses,
    artifacts_destination,
    mlflow_server,
    platform_rendering,
    prepare_storage,
)
from tests.support.rendering import pod_container
from tests.support.servers import (
    LocalPostgres,
    LocalRedis,
    LocalS3,
    exposed_series,
    free_port,
    local_postgres,
    local_redis,
    local_s3,
    running_server,
)
from tests.support.tools import require_module

mlflow = require_module("mlflow", "the workloads dependency group")
redis_client = require_module("redis", "the workloads dependency group")
from workloads.feature_repo.datagen import fraud_events  # noqa: E402
from workloads.model_inputs import FEATURES, MODEL_NAME, model_frame  # noqa: E402
from workloads.training import registry  # noqa: E402
from workloads.training.model import MODEL_LIBRARIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SERVING_BIN = ROOT / ".venv-serving" / "bin"
SEED = 7
SIZES = fraud_events.Sizes(customers=400, merchants=40, days=35)
RUN_AT = fraud_events.END.replace(tzinfo=None)


@dataclass
class Stack:
    rendering: render.Rendering
    pg: LocalPostgres
    s3: LocalS3
    redis: LocalRedis
    work: Path
    feast_env: dict[str, str]
    mlflow_url: str

    def env(self) -> dict[str, str]:
        """A Flyte task's environment on the platform: the settings the platform writes into
        every project namespace (the rendered cluster-resource template), with loopback
        addresses, and the secrets' local values."""
        templates = self.rendering.find("ConfigMap", "flyte-cluster-resource-templates")
        settings = yaml.safe_load(templates.manifest()["data"]["004-workloads-config.yaml"])
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FEAST_", "MLFLOW_"))},
            **settings["data"],
            **self.feast_env,
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "HOME": str(self.work / "home"),
            "PYTHONPATH": str(ROOT),
            "PYTHONWARNINGS": "ignore",
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
            "MLOPS_CODE_REVISION": "golden-path",
        }

    def transformer_env(self, container_env: dict[str, str]) -> dict[str, str]:
        """The transformer container's env; its store config is the one pods mount."""
        return {
            **self.env(),
            **container_env,
            "FEAST_FS_YAML_FILE_PATH": self.feast_env["FEAST_FS_YAML_FILE_PATH"],
        }

    def client(self) -> Any:
        os.environ["MLFLOW_TRACKING_USERNAME"] = ADMIN
        os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN_PASSWORD
        mlflow.set_tracking_uri(self.mlflow_url)
        return mlflow.MlflowClient(self.mlflow_url)

    def train(self, *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """`pyflyte run` of the training workflow, without applying to a cluster: the outcome
        and the InferenceService manifest the deploy task produced."""
        command = [
            str(VENV_BIN / "pyflyte"),
            "run",
            "workloads/training/workflow.py",
            "training",
            f"--run_at={RUN_AT.isoformat()}",
            "--no-apply",
            *args,
        ]
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
        return parse_outputs(result.stdout)


def parse_outputs(stdout: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outputs `pyflyte run` prints last: `DefaultNamedTupleOutput(o0=Outcome(...),
    o1={...})`, read as literals."""
    line = next(
        (x for x in reversed(stdout.splitlines()) if x.startswith("DefaultNamedTupleOutput(")),
        None,
    )
    assert line is not None, stdout[-3000:]
    call = ast.parse(line, mode="eval").body
    assert isinstance(call, ast.Call)
    values = {k.arg: k.value for k in call.keywords}
    outcome = values["o0"]
    assert isinstance(outcome, ast.Call)
    return {k.arg: ast.literal_eval(k.value) for k in outcome.keywords if k.arg}, (
        ast.literal_eval(values["o1"])
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh platform on loopback: databases and buckets from the rendered Jobs, the
    seeded data in the offline store, the feature repo applied and materialized, MLflow up."""
    pg, s3, redis = local_postgres(), local_s3(), local_redis()
    rendering = platform_rendering(pg, s3)
    work = tmp_path_factory.mktemp("golden")
    (work / "home").mkdir()
    prepare_storage(rendering, pg, s3, work, ["mlflow", "feast"])
    redis_client.Redis(host=redis.host, port=redis.port, password=redis.password).flushdb()

    feast_env = platform_store(rendering, pg, redis, work / "etc-feast")
    dataset = fraud_events.generate(SEED, SIZES)
    fraud_events.load_postgres(dataset, feast_env["FEAST_REGISTRY_URL"].split("?")[0])
    repo = ROOT / "workloads" / "feature_repo"
    feast_run = {**os.environ, **feast_env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    events = dataset.transactions["event_timestamp"]
    cronjob = rendering.find("CronJob", "feast-materialize").manifest()
    for command in (
        pod_container(rendering, "Job", "feast-apply")["command"],
        [
            "feast",
            "materialize",
            (events.min() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            (events.max() + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        ],
        cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"],
    ):
        done = subprocess.run(
            command, cwd=repo, env=feast_run, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    with mlflow_server(rendering, addresses(pg, s3), work / "mlflow") as url:
        yield Stack(rendering, pg, s3, redis, work, feast_env, url)


@pytest.fixture(scope="module")
def first(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.monotonic()
    outputs = stack.train()
    print(f"first training run: {time.monotonic() - started:.1f} s")
    return outputs


def test_training_logs_registers_and_promotes(
    stack: Stack, first: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    outcome, _ = first
    assert outcome == {
        "version": "1",
        "promoted": True,
        "reason": "no champion yet, and the gates pass",
        "champion_version": "1",
    }
    client = stack.client()
    version = client.get_model_version_by_alias(MODEL_NAME, registry.CHAMPION)
    assert version.version == "1"
    assert version.tags["decision"] == "promoted"
    run = client.get_run(version.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    window = (params["train_start"], params["train_end"], params["eval_end"])
    days = ("2026-10-04", "2026-10-25", "2026-11-01")
    assert window == tuple(f"{day}T00:00:00+00:00" for day in days)
    assert (params["feature_service"], tags["feature_service"]) == ("fraud_model_v1",) * 2
    assert tags["code_revision"] == "golden-path"
    events = fraud_events.generate(SEED, SIZES).transactions
    start, end = (fraud_events.END - timedelta(days=d) for d in (28, 7))
    in_window = events[(events["event_timestamp"] >= start) & (events["event_timestamp"] < end)]
    assert metrics["train_rows"] == len(in_window)
    assert metrics["train_fraud_rows"] == in_window["is_fraud"].sum() > 0
    assert metrics["holdout_roc_auc"] >= 0.85 and metrics["holdout_pr_auc"] >= 0.5
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "reference")}
    assert artifacts == {registry.REFERENCE_SAMPLE}


def test_inference_service_and_runtime_follow_kserve_schemas(
    stack: Stack, first: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, manifest = first
    validate(manifest)
    runtime = stack.rendering.find("ServingRuntime", "mlops-mlflow").manifest()
    validate(runtime)
    uri = manifest["spec"]["predictor"]["model"]["storageUri"]
    assert uri.startswith(f"{artifacts_destination(stack.rendering)}/"), uri
    # Where the platform's settings say, beside the runtime it names.
    assert manifest["metadata"]["namespace"] == runtime["metadata"]["namespace"]


def _requirements(model_dir: Path) -> dict[str, str]:
    pins = {}
    for line in (model_dir / "requirements.txt").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    return pins


def _versions(python: Path, names: list[str]) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [str(python), "-c", script, *names], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_served_predictions_equal_in_process_ones(
    stack: Stack,
    first: tuple[dict[str, Any], dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, manifest = first
    model_dir = tmp_path / "mnt-models"
    uri = manifest["spec"]["predictor"]["model"]["storageUri"]
    files = fetch_like_storage_initializer(stack.rendering, uri, stack.s3, model_dir)
    assert (model_dir / "MLmodel").is_file(), files

    # The served environment runs the libraries the model was trained with.
    pins = _requirements(model_dir)
    assert set(pins) == set(MODEL_LIBRARIES), pins
    assert _versions(SERVING_BIN / "python", list(pins)) == pins
    assert _versions(VENV_BIN / "python", list(pins)) == pins

    runtime = stack.rendering.find("ServingRuntime", "mlops-mlflow").manifest()
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    command, env = predictor_command(runtime, manifest, model_dir, ports, SERVING_BIN)
    predictor_work, transformer_work = tmp_path / "predictor", tmp_path / "transformer"
    predictor_work.mkdir()
    transformer_work.mkdir()
    predictor_env = {**os.environ, **env, "HOME": str(predictor_work)}
    ready = f"http://127.0.0.1:{ports['http']}/v2/models/{MODEL_NAME}/ready"
    with running_server(command, ready, predictor_work, predictor_env, timeout=180):
        port = free_port()
        command, env = transformer_command(
            manifest, f"127.0.0.1:{ports['http']}", port, VENV_BIN / "python"
        )
        url = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}"
        with running_server(command, url, transformer_work, stack.transformer_env(env)):
            _score_and_compare(stack, url, monkeypatch)
            _bad_requests_name_the_field(url)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                exposition = r.read().decode()
    counts = _request_counts(exposition)
    assert counts == {"ok": 2, "bad_request": 3}, counts
    assert {
        "transformer_feature_fetch_duration_seconds_bucket",
        "transformer_predictor_duration_seconds_bucket",
    } <= exposed_series(exposition)


def _instances() -> list[dict[str, Any]]:
    """Transactions of the data (known customers and merchants) and a few unknown ones."""
    events = fraud_events.generate(SEED, SIZES).transactions
    picked = events.sample(40, random_state=SEED)
    rows = [
        {"customer_id": int(c), "merchant_id": int(m), "amount": float(a)}
        for c, m, a in zip(
            picked["customer_id"], picked["merchant_id"], picked["amount"], strict=True
        )
    ]
    rows += [
        {"customer_id": 999_999, "merchant_id": 5_000, "amount": 12.5},
        {"customer_id": 1_000, "merchant_id": 999_999, "amount": 990.0},
    ]
    return rows


def _score_and_compare(stack: Stack, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from workloads.training.data import feature_store

    rows = _instances()
    status, single = _post(f"{url}:predict", {"instances": rows[:1]})
    assert status == 200, single
    status, batch = _post(f"{url}:predict", {"instances": rows})
    assert status == 200, batch
    served = [p["fraud_probability"] for p in batch["predictions"]]
    assert {p["model_version"] for p in batch["predictions"]} == {"1"}
    assert single["predictions"][0]["fraud_probability"] == served[0]

    for key, value in stack.feast_env.items():
        monkeypatch.setenv(key, value)
    store = feature_store()
    features = store.get_online_features(
        features=store.get_feature_service("fraud_model_v1"), entity_rows=rows
    ).to_dict()
    frame = model_frame(features)
    # Unknown entities read no features: every one is filled as in training.
    assert features["txn_count_7d"][-2] is None and features["merchant_txn_count_7d"][-1] is None
    stack.client()
    champion = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@{registry.CHAMPION}")
    expected = champion.predict_proba(frame[list(FEATURES)])[:, 1]
    np.testing.assert_allclose(served, expected, rtol=1e-12, atol=0)
    assert len(set(np.round(served, 6))) > 10


def _bad_requests_name_the_field(url: str) -> None:
    for body, field in (
        ({"instances": [{"customer_id": "x", "merchant_id": 1, "amount": 2.0}]}, "customer_id"),
        ({"instances": [{"customer_id": 1, "merchant_id": 1}]}, "amount"),
        ({"rows": []}, "instances"),
    ):
        status, answer = _post(f"{url}:predict", body)
        assert status == 400, (body, answer)
        assert field in answer["error"], answer


def _request_counts(exposition: str) -> dict[str, int]:
    counts = {}
    for line in exposition.splitlines():
        if line.startswith("transformer_request_duration_seconds_count{"):
            labels, value = line.rsplit(" ", 1)
            status = labels.split('status="')[1].split('"')[0]
            counts[status] = int(float(value))
    return counts


def test_a_dead_predictor_is_a_5xx_not_a_score(
    stack: Stack, first: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    _, manifest = first
    port = free_port()
    command, env = transformer_command(
        manifest, f"127.0.0.1:{free_port()}", port, VENV_BIN / "python"
    )
    url = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}"
    with running_server(command, url, tmp_path, stack.transformer_env(env)):
        status, answer = _post(f"{url}:predict", {"instances": _instances()[:1]})
    assert status >= 500 and "predictor" in answer["error"], answer
    assert "predictions" not in answer


def test_training_again_on_unchanged_data_changes_nothing(
    stack: Stack, first: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    client = stack.client()
    runs_before = len(client.search_runs([registry.experiment_id(client)]))
    outcome, manifest = stack.train()
    assert outcome == {
        "version": "1",
        "promoted": False,
        "reason": "version 1 is already the champion",
        "champion_version": "1",
    }
    assert manifest == first[1]
    assert len(client.search_runs([registry.experiment_id(client)])) == runs_before
    assert [v.version for v in client.search_model_versions(f"name = '{MODEL_NAME}'")] == ["1"]


def test_a_challenger_that_loses_leaves_the_champion(
    stack: Stack, first: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """Trained on a shorter, shifted window, the challenger scores below the champion on the
    same held-out week: it is registered, but the alias stays."""
    outcome, manifest = stack.train("--train_days=3")
    client = stack.client()
    assert outcome["version"] == "2" and not outcome["promoted"], outcome
    assert outcome["champion_version"] == "1"
    assert client.get_model_version_by_alias(MODEL_NAME, registry.CHAMPION).version == "1"
    rejected = client.get_model_version(MODEL_NAME, "2")
    assert rejected.tags["decision"] == "not promoted"
    assert rejected.tags["decision_reason"] == outcome["reason"]
    assert manifest == first[1]
