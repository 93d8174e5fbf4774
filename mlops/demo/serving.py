"""The serve and score steps: the InferenceService the training deployed, waited for until
KServe makes it Ready, and transactions scored through its transformer, which reads each
one's features online and asks the predictor for the fraud probability."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from mlops import console
from mlops.demo.data import Transaction
from mlops.demo.target import DemoTarget
from mlops.errors import StepFailed

READY_TIMEOUT = 900
POLL_SECONDS = 5.0
# The transformer's Service in KServe's Standard mode: <name>-transformer, port 80.
TRANSFORMER_PORT = 80


@dataclass(frozen=True)
class Served:
    name: str
    namespace: str
    url: str
    # Each condition KServe reports (Ready, PredictorReady, TransformerReady...): its status.
    conditions: dict[str, str]


@dataclass(frozen=True)
class Scored:
    transaction: Transaction
    fraud_probability: float
    model_version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.transaction.instance(),
            "fraud_probability": self.fraud_probability,
            "model_version": self.model_version,
        }


def model_name() -> str:
    from workloads.model_inputs import MODEL_NAME

    return MODEL_NAME


def conditions_of(isvc: dict[str, Any]) -> str:
    lines = [
        f"{c['type']}={c['status']}"
        + (f" ({c.get('reason', '')}: {c['message']})" if c.get("message") else "")
        for c in (isvc.get("status") or {}).get("conditions") or []
    ]
    return "; ".join(lines) or "no conditions reported"


def serve(target: DemoTarget, timeout: float = READY_TIMEOUT) -> Served:
    """The InferenceService once Ready; StepFailed as soon as KServe finds it cannot run, or
    with its conditions when `timeout` seconds have passed."""
    from workloads.training.kube import readiness

    name, namespace = model_name(), target.model_namespace
    give_up = time.monotonic() + timeout
    with console.waiting(f"InferenceService {namespace}/{name}") as update:
        while True:
            found = target.kube.run("get", "inferenceservice", name, "-n", namespace, "-o", "json")
            if found.returncode == 0:
                isvc = json.loads(found.stdout)
                verdict = readiness(isvc)
                if verdict.state == "ready":
                    break
                if verdict.state == "failed":
                    raise StepFailed(
                        f"InferenceService {namespace}/{name} cannot run: {verdict.detail}"
                    )
                update(verdict.detail)
            elif "NotFound" in found.stderr:
                isvc = {}
                update("not created yet (the training's deploy task creates it)")
            else:
                raise StepFailed(f"kubectl get inferenceservice: {found.stderr.strip()}")
            if time.monotonic() > give_up:
                raise StepFailed(
                    f"InferenceService {namespace}/{name} not Ready after {timeout:.0f} s: "
                    + (conditions_of(isvc) if isvc else "it was never created")
                )
            time.sleep(POLL_SECONDS)
    status = isvc.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return Served(name, namespace, status.get("url", ""), conditions)


def read_predictions(transactions: Sequence[Transaction], body: Any) -> list[Scored]:
    """The transformer's answer, one Scored per transaction in order; StepFailed when it is
    not one prediction per transaction, each with a number and a model version."""
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list) or len(predictions) != len(transactions):
        raise StepFailed(
            f"the transformer answered {json.dumps(body)[:500]}: expected "
            f"{len(transactions)} predictions"
        )
    scored = []
    for transaction, prediction in zip(transactions, predictions, strict=True):
        probability = prediction.get("fraud_probability")
        version = prediction.get("model_version")
        if not isinstance(probability, int | float) or version is None:
            raise StepFailed(
                f"the transformer answered {prediction}: expected a fraud_probability and a "
                "model_version"
            )
        scored.append(Scored(transaction, float(probability), str(version)))
    return scored


def predict(
    base_url: str,
    transactions: Sequence[Transaction],
    request_id: str | None = None,
    timeout: float = 60,
) -> list[Scored]:
    """Scores the transactions with one request to the transformer at `base_url`."""
    headers = {"Content-Type": "application/json"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    request = urllib.request.Request(
        f"{base_url}/v1/models/{model_name()}:predict",
        data=json.dumps({"instances": [t.instance() for t in transactions]}).encode(),
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise StepFailed(
            f"the transformer answered {error.code}: {error.read().decode(errors='replace')}"
        ) from None
    except (urllib.error.URLError, TimeoutError) as error:
        raise StepFailed(f"the transformer at {base_url} did not answer: {error}") from None
    return read_predictions(transactions, body)


def score(target: DemoTarget, transactions: Sequence[Transaction]) -> list[Scored]:
    """Scores through a port-forward to the transformer's Service."""
    service = f"{model_name()}-transformer"
    with target.kube.forward(target.model_namespace, service, TRANSFORMER_PORT) as port:
        return predict(f"http://127.0.0.1:{port}", transactions)


def table(scored: Sequence[Scored]) -> Table:
    found = Table(title=f"{model_name()}: transactions scored")
    for column in ("customer", "merchant", "amount", "fraud probability", "model version"):
        found.add_column(column, justify="left" if column == "model version" else "right")
    for s in scored:
        t = s.transaction
        found.add_row(
            str(t.customer_id),
            str(t.merchant_id),
            f"{t.amount:.2f}",
            f"{s.fraud_probability:.4f}",
            s.model_version,
        )
    return found


def as_json(scored: Sequence[Scored]) -> list[dict[str, Any]]:
    return [s.as_dict() for s in scored]
