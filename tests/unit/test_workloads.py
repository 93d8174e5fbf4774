"""The golden path's pure parts: request parsing, imputation, the promotion decision, the
transformer's reading of the predictor's answer, and the InferenceService builder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.support.tools import require_module

require_module("kserve", "the workloads dependency group")

from kserve.errors import InvalidInput  # noqa: E402

from workloads.model_inputs import FEATURES, FILL_VALUES, model_frame, model_inputs  # noqa: E402
from workloads.serving import inference_service as isvc  # noqa: E402
from workloads.serving.transformer import (  # noqa: E402
    FraudTransformer,
    parse_instances,
    predictor_request,
)
from workloads.training.model import Scores  # noqa: E402
from workloads.training.registry import Gates, decide  # noqa: E402


def test_instances_are_typed_and_integral_floats_accepted() -> None:
    rows = parse_instances(
        {"instances": [{"customer_id": 1042.0, "merchant_id": 5007, "amount": 12}]}
    )
    assert rows == [{"customer_id": 1042, "merchant_id": 5007, "amount": 12.0}]
    assert isinstance(rows[0]["customer_id"], int) and isinstance(rows[0]["amount"], float)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (None, '"instances"'),
        ({"instances": {}}, '"instances"'),
        ({"instances": []}, '"instances" is empty'),
        ({"instances": [7]}, "instances[0]"),
        ({"instances": [{"merchant_id": 1, "amount": 1.0}]}, "instances[0].customer_id"),
        ({"instances": [{"customer_id": 1.5, "merchant_id": 1, "amount": 1.0}]}, "customer_id"),
        ({"instances": [{"customer_id": True, "merchant_id": 1, "amount": 1.0}]}, "customer_id"),
        (
            {
                "instances": [
                    {"customer_id": 1, "merchant_id": 1, "amount": 1.0},
                    {"customer_id": 1, "merchant_id": 1, "amount": "9"},
                ]
            },
            "instances[1].amount must be a finite number, got '9'",
        ),
        (
            {"instances": [{"customer_id": 2**63, "merchant_id": 1, "amount": 1.0}]},
            "instances[0].customer_id must be an integer from -9223372036854775808 to "
            "9223372036854775807, got 9223372036854775808",
        ),
        (
            {"instances": [{"customer_id": 1, "merchant_id": 1, "amount": float("inf")}]},
            "instances[0].amount must be a finite number, got inf",
        ),
    ],
)
def test_a_malformed_body_is_refused_naming_the_field(body: object, named: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_instances(body)
    assert named in str(refused.value)


def test_missing_features_are_filled_as_in_training() -> None:
    online = {name: [None, 3.0] for name in FEATURES}
    online["amount_to_mean_7d"] = [math.inf, 2.0]
    frame = model_frame(online)
    assert list(frame.columns) == list(FEATURES)
    assert frame.iloc[0].to_dict() == FILL_VALUES
    assert frame.iloc[1].to_dict() == {**dict.fromkeys(FEATURES, 3.0), "amount_to_mean_7d": 2.0}
    # The transformer's array: the same values, row for row.
    assert model_inputs(online).tolist() == frame.to_numpy().tolist()


def test_the_predictor_gets_one_row_major_tensor_naming_its_columns() -> None:
    inputs = np.arange(2 * len(FEATURES), dtype=np.float64).reshape(2, len(FEATURES))
    [tensor] = json.loads(predictor_request(inputs))["inputs"]
    assert (tensor["shape"], tensor["datatype"]) == ([2, len(FEATURES)], "FP64")
    assert tensor["parameters"] == {"columns": ",".join(FEATURES)}
    # Row by row: the second transaction's features follow the first's.
    assert tensor["data"][len(FEATURES)] == inputs[1, 0]
    assert np.reshape(tensor["data"], tensor["shape"]).tolist() == inputs.tolist()


@pytest.mark.parametrize(
    ("challenger", "champion", "promoted", "reason"),
    [
        (Scores(0.95, 0.7), None, True, "no champion yet"),
        (Scores(0.80, 0.7), None, False, "roc_auc 0.8000 is below the gate 0.8500"),
        (Scores(0.95, 0.4), None, False, "pr_auc 0.4000 is below the gate 0.5000"),
        (Scores(0.95, 0.7), Scores(0.96, 0.8), False, "does not beat champion version 1's"),
        (Scores(0.95, 0.8), Scores(0.96, 0.7), True, "beats version 1's 0.7000"),
    ],
)
def test_champion_moves_only_when_the_gates_pass(
    challenger: Scores, champion: Scores | None, promoted: bool, reason: str
) -> None:
    decision = decide("2", challenger, champion, "1" if champion else None, Gates())
    assert decision.promoted is promoted
    assert reason in decision.reason


def test_the_champion_is_not_promoted_over_itself() -> None:
    decision = decide("1", Scores(0.99, 0.99), Scores(0.99, 0.99), "1", Gates())
    assert (decision.promoted, decision.reason) == (False, "version 1 is already the champion")


def test_the_fraud_probability_is_the_positive_class_column() -> None:
    transformer = FraudTransformer("m", "127.0.0.1:1", "fraud_model_v1", 1.0)
    answer = transformer.postprocess(
        {
            "model_version": "4",
            "outputs": [
                {"name": "o", "shape": [2, 2], "datatype": "FP64", "data": [0.9, 0.1, 0.3, 0.7]}
            ],
        }
    )
    assert answer == {
        "predictions": [
            {"fraud_probability": 0.1, "model_version": "4"},
            {"fraud_probability": 0.7, "model_version": "4"},
        ]
    }


def test_the_inference_service_follows_the_kserve_crd() -> None:
    from tests.support.kserve import validate

    manifest = isvc.inference_service("fraud-detector", "3", "s3://mlflow/1/models/m-1/artifacts")
    validate(manifest)
    predictor = manifest["spec"]["predictor"]
    assert predictor["model"]["modelFormat"] == {"name": "mlflow", "version": "3"}
    assert predictor["serviceAccountName"] == isvc.SERVICE_ACCOUNT
    secret_env = [
        e for e in manifest["spec"]["transformer"]["containers"][0]["env"] if "valueFrom" in e
    ]
    assert {e["name"] for e in secret_env} == {
        *isvc.FEAST_SECRET_ENV,
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    # Without the platform's prediction log, the transformer still starts.
    log_env = [e for e in secret_env if e["name"].startswith("AWS_")]
    assert all(e["valueFrom"]["secretKeyRef"]["optional"] for e in log_env)
    assert manifest["spec"]["transformer"]["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": isvc.PREDICTION_LOG_CONFIG_MAP, "optional": True}}
    ]


def test_each_inference_service_owns_its_model_format() -> None:
    """Changing one manifest (as a caller may) leaves the next one, and the constant, alone."""
    first = isvc.inference_service("fraud-detector", "3", "s3://mlflow/1/models/m-1/artifacts")
    first["spec"]["predictor"]["model"]["modelFormat"]["version"] = "2"
    second = isvc.inference_service("fraud-detector", "4", "s3://mlflow/1/models/m-2/artifacts")
    assert second["spec"]["predictor"]["model"]["modelFormat"] == {"name": "mlflow", "version": "3"}
    assert isvc.MODEL_FORMAT == {"name": "mlflow", "version": "3"}
