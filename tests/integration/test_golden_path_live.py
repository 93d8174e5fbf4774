"""The golden path on a live cluster with real containers (scripts/kind-test.sh runs it on kind),
through the command the README gives users: `mlops demo run <stack> --json`.

What tests/workloads/test_golden_path.py proves on loopback, here through the deployed
platform: the seeded transactions loaded into the offline store and materialized by Jobs made
from the platform's own feast-apply Job, the training workflow registered with the workload
image and launched through Flyte's API, the InferenceService its deploy task creates turning
Ready, and transactions scored through the transformer. The command runs once, as a user runs
it; the tests read its JSON and check the cluster themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops import deploy
from tests.integration.conftest import NO_CONTAINERS, Cluster
from tests.support.tools import require_module

require_module("flytekit", "the workloads dependency group")
from workloads.model_inputs import MODEL_NAME  # noqa: E402

# Not part of `mlops verify`: it trains and serves a model, so it runs where the stack is
# a test stack (scripts/kind-test.sh), never on a deploy's way to prod.
pytestmark = [pytest.mark.containers, pytest.mark.golden_path]

ROOT = Path(__file__).resolve().parents[2]
MLOPS = Path(sys.executable).parent / "mlops"
# The command's own waits (40 min of training, 15 for Ready) and the Jobs, with room to spare.
TIMEOUT = 75 * 60


@pytest.fixture(scope="module")
def live(cluster: Cluster) -> Cluster:
    # Module fixtures set up before the per-test `containers` skip: say it here too.
    if not cluster.containers:
        pytest.skip(NO_CONTAINERS)
    if cluster.config.flyte is None or cluster.config.kserve is None:
        pytest.skip(f"the {cluster.stack} stack runs without Flyte or KServe")
    return cluster


@pytest.fixture(scope="module")
def demo(live: Cluster) -> dict[str, Any]:
    """`mlops demo run <stack> --json` with the stack's environment; its JSON."""
    # The command finds the cluster through the stack's record: the one the checks look at.
    record = deploy.record_of(live.stack)
    if live.context:
        assert record.context == live.context, (record.context, live.context)
    done = subprocess.run(
        [str(MLOPS), "demo", "run", live.stack, "--json"],
        cwd=ROOT,
        env=live.env,
        stdout=subprocess.PIPE,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    # Its progress went to standard error, which pytest shows with a failure.
    assert done.returncode == 0, f"mlops demo run exited {done.returncode}: {done.stdout[-3000:]}"
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_training_through_flyte_deploys_a_ready_inference_service(
    live: Cluster, demo: dict[str, Any]
) -> None:
    assert demo["training"]["phase"] == "SUCCEEDED"
    served = demo["inference_service"]
    namespace = live.config.kserve.model_namespace  # type: ignore[union-attr]
    assert (served["name"], served["namespace"]) == (MODEL_NAME, namespace)
    assert served["conditions"]["Ready"] == "True"
    found = live.get("inferenceservice", MODEL_NAME, "-n", namespace)
    conditions = {c["type"]: c["status"] for c in found["status"]["conditions"]}
    assert conditions["Ready"] == "True", conditions


def test_a_transaction_is_scored_through_the_transformer(demo: dict[str, Any]) -> None:
    predictions = demo["scored"]
    assert len(predictions) == 2
    for prediction in predictions:
        assert 0.0 <= prediction["fraud_probability"] <= 1.0
        assert prediction["model_version"] == "1"
