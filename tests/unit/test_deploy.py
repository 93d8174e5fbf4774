"""The deploy step's reading of KServe's answers: a refused InferenceService, a spec the
controller rejects, one that is Ready and one that is not by the deadline. The integration tier
(tests/integration/test_kserve_controller.py) gets the same answers from the real controller."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.tools import require_module

require_module("kubernetes", "the workloads dependency group")

from kubernetes.client.exceptions import ApiException  # noqa: E402

from workloads.training import kube  # noqa: E402

WEBHOOK_DENIAL = (
    'admission webhook "inferenceservice.kserve-webhook-server.validator" denied the request: '
    'The InferenceService "fraud.model" is invalid: a InferenceService name must consist of '
    "lower case alphanumeric characters or '-'"
)


def isvc(conditions: list[dict[str, str]], model_status: dict[str, Any] | None = None) -> Any:
    status: dict[str, Any] = {"conditions": conditions}
    if model_status is not None:
        status["modelStatus"] = model_status
    return {"metadata": {"name": "fraud", "namespace": "models"}, "status": status}


NO_RUNTIME = isvc(
    [{"type": "Ready", "status": "False"}],
    {
        "transitionStatus": "InvalidSpec",
        "lastFailureInfo": {
            "reason": "NoSupportingRuntime",
            "message": "Specified runtime does not support specified framework/version",
        },
    },
)
READY = isvc(
    [
        {"type": "PredictorReady", "status": "True"},
        {"type": "TransformerReady", "status": "True"},
        {"type": "Ready", "status": "True"},
    ],
    {"transitionStatus": "UpToDate"},
)
STARTING = isvc(
    [
        {"type": "PredictorReady", "status": "True"},
        {
            "type": "TransformerReady",
            "status": "False",
            "reason": "MinimumReplicasUnavailable",
            "message": "Deployment does not have minimum availability.",
        },
        {"type": "Ready", "status": "False"},
    ],
    {"transitionStatus": "InProgress"},
)


def test_a_spec_no_runtime_supports_fails_with_the_controllers_reason() -> None:
    verdict = kube.readiness(NO_RUNTIME)
    assert verdict == kube.Readiness(
        "failed",
        "NoSupportingRuntime: Specified runtime does not support specified framework/version",
    )


def test_ready_only_when_the_ready_condition_is_true() -> None:
    assert kube.readiness(READY).state == "ready"
    verdict = kube.readiness(STARTING)
    assert verdict.state == "pending"
    assert verdict.detail == (
        "TransformerReady=False (MinimumReplicasUnavailable: Deployment does not have minimum "
        "availability.); Ready=False"
    )
    assert kube.readiness({"metadata": {}}) == kube.Readiness(
        "pending", "no conditions reported yet"
    )


def test_waiting_returns_once_ready() -> None:
    answers = iter([STARTING, STARTING, READY])
    found = kube.wait_until_ready(
        "fraud", "models", timeout=60, poll=0, fetch=lambda: next(answers)
    )
    assert found is READY


def test_waiting_stops_at_the_controllers_verdict_without_waiting_for_the_deadline() -> None:
    answers = iter([STARTING, NO_RUNTIME])
    with pytest.raises(kube.DeployError) as raised:
        kube.wait_until_ready("fraud", "models", timeout=3600, poll=0, fetch=lambda: next(answers))
    assert str(raised.value) == (
        "InferenceService models/fraud cannot run: NoSupportingRuntime: Specified runtime does "
        "not support specified framework/version"
    )


def test_waiting_gives_up_at_the_deadline_saying_what_is_missing() -> None:
    with pytest.raises(kube.DeployError) as raised:
        kube.wait_until_ready("fraud", "models", timeout=0, poll=0, fetch=lambda: STARTING)
    assert str(raised.value).startswith("InferenceService models/fraud not Ready after 0s: ")
    assert "TransformerReady=False (MinimumReplicasUnavailable" in str(raised.value)


def test_a_refusal_reads_the_servers_message() -> None:
    error = ApiException(status=400, reason="Bad Request")
    error.body = json.dumps({"kind": "Status", "message": WEBHOOK_DENIAL, "code": 400})
    assert kube.refusal(error) == WEBHOOK_DENIAL
    bare = ApiException(status=403, reason="Forbidden")
    bare.body = "not json"
    assert kube.refusal(bare) == "403 Forbidden"
