"""The golden path, run for real: features -> Flyte training -> MLflow -> KServe serving.

Everything a deploy runs, on loopback: the rendered Postgres init, bucket, feast apply and
materialize commands; the rendered MLflow server; the training workflow through flytekit's
local execution (`pyflyte run`); the InferenceService its deploy task produces, validated
against KServe v0.20's CRD; the model fetched from S3 as KServe's storage initializer does;
and the predictor (the rendered ServingRuntime, in the serving environment) and the
transformer (the InferenceService's container) as processes. Only hosts and ports change.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.golden import SERVING_BIN, VENV_BIN, Stack, serving
from tests.support.kserve import (
    fetch_like_storage_initializer,
    transformer_command,
    validate,
)
from tests.support.mlflow_server import artifacts_destination
from tests.support.servers import exposed_series, free_port, running_server
from tests.support.tools import require_module

mlflow = require_module("mlflow", "the workloads dependency group")
from mlops.demo.data import SEED, UNKNOWN_ID, Transaction, seeded, transactions_of  # noqa: E402
from mlops.demo.serving import predict  # noqa: E402
from workloads.feature_repo.datagen import fraud_events  # noqa: E402
from workloads.model_inputs import FEATURES, MODEL_NAME, model_frame  # noqa: E402
from workloads.training import registry  # noqa: E402
from workloads.training.model import MODEL_LIBRARIES  # noqa: E402


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
    events = seeded().transactions
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

    with serving(stack, manifest, model_dir, tmp_path) as base:
        _score_and_compare(stack, base, monkeypatch)
        _bad_requests_name_the_field(f"{base}/v1/models/{MODEL_NAME}")
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
            exposition = r.read().decode()
    counts = _request_counts(exposition)
    assert counts == {"ok": 2, "bad_request": 3}, counts
    assert {
        "transformer_feature_fetch_duration_seconds_bucket",
        "transformer_predictor_duration_seconds_bucket",
    } <= exposed_series(exposition)


def test_generated_bodies_get_scores_or_a_400_naming_the_field(
    stack: Stack, first: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    """Any body, JSON or not: the transformer scores what its contract accepts (a probability
    per transaction) and refuses the rest with a 400 that names the field; never a 5xx."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.support.generated import BODIES, SCORABLE, reference_parse

    _, manifest = first
    model_dir = tmp_path / "mnt-models"
    uri = manifest["spec"]["predictor"]["model"]["storageUri"]
    fetch_like_storage_initializer(stack.rendering, uri, stack.s3, model_dir)
    seen = {"scored": 0, "refused": 0}
    with serving(stack, manifest, model_dir, tmp_path) as base:
        url = f"{base}/v1/models/{MODEL_NAME}:predict"

        @settings(max_examples=250)
        @given(
            sent=(BODIES | SCORABLE).map(lambda b: (b, json.dumps(b).encode()))
            | st.binary(max_size=64).map(lambda raw: (None, raw))
        )
        def check(sent: tuple[Any, bytes]) -> None:
            body, raw = sent
            status, answer = _post_bytes(url, raw)
            expected = reference_parse(body) if body is not None else None
            if expected is not None and status == 200:
                seen["scored"] += 1
                predictions = answer["predictions"]
                assert len(predictions) == len(expected), answer
                assert all(0.0 <= p["fraud_probability"] <= 1.0 for p in predictions), answer
                return
            assert status == 400, (raw[:300], status, answer)
            assert expected is None, (raw[:300], answer)
            seen["refused"] += 1
            assert "Traceback" not in answer["error"]
            if body is not None:
                # A field named, or KServe's refusal of what is not JSON as RFC 8259 has it
                # (Python's json writes NaN and Infinity; orjson reads no integer past 64 bits).
                assert any(
                    name in answer["error"]
                    for name in (
                        "instances",
                        "customer_id",
                        "merchant_id",
                        "amount",
                        "Unrecognized request format",
                    )
                ), answer

        check()
    print(f"generated bodies: {seen['scored']} scored, {seen['refused']} refused")
    assert seen["scored"] > 10 and seen["refused"] > 10, seen


def _post_bytes(url: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=raw, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _instances() -> list[Transaction]:
    """Transactions of the data (known customers and merchants) and a few unknown ones."""
    picked = seeded().transactions.sample(40, random_state=SEED)
    return [
        *transactions_of(picked),
        Transaction(UNKNOWN_ID, 5_000, 12.5),
        Transaction(1_000, UNKNOWN_ID, 990.0),
    ]


def _score_and_compare(stack: Stack, base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from workloads.training.data import feature_store

    rows = _instances()
    # Read as `mlops demo score` reads the transformer's answer.
    [single] = predict(base, rows[:1])
    batch = predict(base, rows)
    served = [p.fraud_probability for p in batch]
    assert {p.model_version for p in batch} == {"1"}
    assert single.fraud_probability == served[0]

    for key, value in stack.feast_env.items():
        monkeypatch.setenv(key, value)
    store = feature_store()
    features = store.get_online_features(
        features=store.get_feature_service("fraud_model_v1"),
        entity_rows=[row.instance() for row in rows],
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
        status, answer = _post(f"{url}:predict", {"instances": [_instances()[0].instance()]})
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
