"""The predictor's MLServer runtime: an MLflow model scored from one `[n, k]` FP64 tensor.

    POST /v2/models/<name>/infer
    {"inputs": [{"name": "inputs", "shape": [2, 11], "datatype": "FP64", "data": [...],
                 "parameters": {"columns": "txn_count_1h,...,amount_to_mean_7d"}}]}
    -> {"model_name": ..., "model_version": "3",
        "outputs": [{"name": "predict_proba", "shape": [2, 2], "datatype": "FP64", ...}]}

MLServer's own MLflow runtime (mlserver-mlflow) wants one named input per signature column,
rebuilds a pandas DataFrame from them and runs MLflow's schema enforcement before the model:
several times the model's own time for a row. Here the request is one row-major tensor whose
columns are the signature's, named once in the input's `columns` parameter and checked against
it; a scikit-learn model gets the array as it is and answers with its pyfunc `predict_fn`
(`predict_proba` for the fraud model), so the scores are the registered model's, bit for bit.
Any other MLflow flavor is scored through its pyfunc on a DataFrame of those columns.

A request the model cannot read (another shape, columns or type) is a 400 naming what differs.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
from mlflow.models import Model as MLflowModel
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

COLUMNS_PARAMETER = "columns"
SKLEARN_LOADER = "mlflow.sklearn"


class BadRequest(MLServerError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=400)


class MLflowTensorRuntime(MLModel):
    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        metadata = MLflowModel.load(uri)
        if metadata.signature is None or not metadata.signature.inputs.has_input_names():
            raise ValueError(f"the model at {uri} has no signature with named input columns")
        self.columns = tuple(metadata.signature.inputs.input_names())
        pyfunc = metadata.flavors.get("python_function", {})
        self.output_name = str(pyfunc.get("predict_fn", "predict"))
        self.score = self._scorer(uri, pyfunc)
        self.started = False
        return True

    def _scorer(self, uri: str, pyfunc: dict[str, Any]) -> Callable[[np.ndarray], Any]:
        if pyfunc.get("loader_module") == SKLEARN_LOADER:
            estimator = mlflow.sklearn.load_model(uri)
            return getattr(estimator, self.output_name)  # type: ignore[no-any-return]
        import pandas as pd

        model = mlflow.pyfunc.load_model(uri)
        columns = list(self.columns)
        return lambda array: model.predict(pd.DataFrame(array, columns=columns))

    def read(self, payload: InferenceRequest) -> np.ndarray:
        """The request's one tensor as a float64 array, checked against the signature."""
        if len(payload.inputs) != 1:
            raise BadRequest(f"send one input, got {len(payload.inputs)}")
        tensor = payload.inputs[0]
        width = len(self.columns)
        if tensor.datatype != "FP64" or len(tensor.shape) != 2 or tensor.shape[1] != width:
            raise BadRequest(
                f"input {tensor.name!r} must be FP64 of shape [n, {width}], "
                f"got {tensor.datatype} {list(tensor.shape)}"
            )
        extra = tensor.parameters.model_extra if tensor.parameters is not None else None
        named = (extra or {}).get(COLUMNS_PARAMETER)
        if named != ",".join(self.columns):
            raise BadRequest(
                f"input {tensor.name!r} must name its columns in parameters.{COLUMNS_PARAMETER}: "
                f"{','.join(self.columns)}; got {named!r}"
            )
        try:
            return np.asarray(tensor.data.root, dtype=np.float64).reshape(tensor.shape)
        except (TypeError, ValueError) as error:
            raise BadRequest(
                f"input {tensor.name!r} does not hold {list(tensor.shape)} numbers"
            ) from error

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if not self.started:
            # A full garbage collection walks every object start-up left (150 ms here, and
            # every request in flight waits): frozen, it walks only what requests leave.
            gc.freeze()
            self.started = True
        scores = np.asarray(self.score(self.read(payload)), dtype=np.float64)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                ResponseOutput(
                    name=self.output_name,
                    shape=list(scores.shape),
                    datatype="FP64",
                    data=scores.ravel().tolist(),
                )
            ],
        )
