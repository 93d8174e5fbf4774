"""The platform's predictor runtime (workloads/serving/runtime.py) as the rendered ServingRuntime
starts it: MLServer in the serving environment, on MLflow models saved as training saves them.
The golden path serves the registered fraud model through it; here its own contract: one
`[n, k]` FP64 tensor whose columns are the signature's, scores equal to the model's own, a 400
naming what a request got wrong, and a model of another flavor scored through its pyfunc."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from infra import versions
from infra.components import kserve
from tests.support.golden import SERVING_BIN
from tests.support.kserve import predictor_command
from tests.support.servers import free_port, running_server
from tests.support.tools import require_module

mlflow = require_module("mlflow", "the workloads dependency group")
from mlflow.models import infer_signature  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from workloads.serving.inference_service import inference_service  # noqa: E402

COLUMNS = ["amount", "count_7d", "mean_7d"]
NAME = "runtime-check"
VERSION = "7"


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.gamma(2.0, 10.0, (rows, len(COLUMNS))), columns=COLUMNS)


def _request(values: Any, columns: list[str], datatype: str = "FP64") -> dict[str, Any]:
    array = np.asarray(values)
    return {
        "inputs": [
            {
                "name": "inputs",
                "shape": list(array.shape),
                "datatype": datatype,
                "data": array.ravel().tolist(),
                "parameters": {"columns": ",".join(columns)},
            }
        ]
    }


def _infer(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def _served(model_dir: Path, work: Path) -> Iterator[str]:
    """The rendered runtime's command and env (with the InferenceService's) on `model_dir`;
    yields the model's infer URL."""
    runtime = kserve.mlflow_runtime("models", versions.SERVING_IMAGE)
    isvc = inference_service(NAME, VERSION, "s3://unused")
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    command, env = predictor_command(runtime, isvc, model_dir, ports, SERVING_BIN)
    base = f"http://127.0.0.1:{ports['http']}/v2/models/{NAME}"
    server_env = {**os.environ, **env, "HOME": str(work)}
    with running_server(command, f"{base}/ready", work, server_env, timeout=300):
        yield f"{base}/infer"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A classifier saved as the training task saves the fraud model, served."""
    frame = _frame(500, 1)
    fitted = LogisticRegression().fit(frame, (frame["amount"] > 20).to_numpy())
    work = tmp_path_factory.mktemp("classifier")
    mlflow.sklearn.save_model(
        fitted,
        str(work / "model"),
        signature=infer_signature(frame, fitted.predict_proba(frame)),
        pyfunc_predict_fn="predict_proba",
        pip_requirements=[],
    )
    with _served(work / "model", work) as url:
        yield url, fitted


def test_scores_are_the_models_own_predict_fn(classifier: tuple[str, Any]) -> None:
    url, fitted = classifier
    frame = _frame(7, 2)
    status, answer = _infer(url, _request(frame.to_numpy(), COLUMNS))
    assert status == 200, answer
    [output] = answer["outputs"]
    assert (output["name"], output["shape"], output["datatype"]) == (
        "predict_proba",
        [7, 2],
        "FP64",
    )
    served = np.array(output["data"]).reshape(output["shape"])
    np.testing.assert_array_equal(served, fitted.predict_proba(frame))
    assert (answer["model_name"], answer["model_version"]) == (NAME, VERSION)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (_request(np.ones((2, 3)), ["count_7d", "amount", "mean_7d"]), "amount,count_7d,mean_7d"),
        (_request(np.ones((2, 2)), COLUMNS[:2]), "shape [n, 3]"),
        (_request(np.ones((2, 3), dtype=int), COLUMNS, "INT64"), "must be FP64"),
        (
            {"inputs": _request(np.ones((1, 3)), COLUMNS)["inputs"] * 2},
            "send one input, got 2",
        ),
    ],
)
def test_a_request_the_model_cannot_read_is_a_400_naming_it(
    classifier: tuple[str, Any], body: dict[str, Any], named: str
) -> None:
    status, answer = _infer(classifier[0], body)
    assert status == 400, answer
    assert named in answer["error"], answer


def _doubled_amount() -> Any:
    """A model of the python_function flavor only (defined here, so pickled by value)."""

    class DoubledAmount(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input["amount"].to_numpy() * 2

    return DoubledAmount()


def test_a_model_of_another_flavor_is_scored_through_its_pyfunc(tmp_path: Path) -> None:
    frame = _frame(5, 3)
    mlflow.pyfunc.save_model(
        str(tmp_path / "model"),
        python_model=_doubled_amount(),
        signature=infer_signature(frame, frame["amount"].to_numpy() * 2),
        pip_requirements=[],
    )
    with _served(tmp_path / "model", tmp_path) as url:
        status, answer = _infer(url, _request(frame.to_numpy(), COLUMNS))
    assert status == 200, answer
    [output] = answer["outputs"]
    assert output["shape"] == [5]
    np.testing.assert_allclose(output["data"], frame["amount"].to_numpy() * 2, rtol=0, atol=0)
