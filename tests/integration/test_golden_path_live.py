"""The golden path on a live cluster with real containers (scripts/kind-test.sh runs it on kind).

What tests/workloads/test_golden_path.py proves on loopback, here through the deployed
platform: the seeded transactions loaded into the offline store and materialized by Jobs built
from the platform's own feast-apply Job (its image, env, volumes and security context), the
training workflow registered with the workload image (`--copy none`: the image holds the code)
and launched through Flyte's API, the InferenceService its deploy task creates turning Ready,
and a transaction scored through the transformer. The steps run in order and each needs the
one before it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.components import flyteauth
from mlops import clientconfig
from tests.integration.conftest import NO_CONTAINERS, Cluster
from tests.support.tools import require_module

flytekit = require_module("flytekit", "the workloads dependency group")
from flytekit.configuration import Config  # noqa: E402
from flytekit.models.core.execution import WorkflowExecutionPhase  # noqa: E402
from flytekit.remote import FlyteRemote  # noqa: E402

from workloads.feature_repo.datagen import fraud_events  # noqa: E402
from workloads.model_inputs import MODEL_NAME  # noqa: E402

# Not part of scripts/verify.sh: it trains and serves a model, so it runs where the stack is
# a test stack (scripts/kind-test.sh), never on a deploy's way to prod.
pytestmark = [pytest.mark.containers, pytest.mark.golden_path]

ROOT = Path(__file__).resolve().parents[2]
SIZES = fraud_events.Sizes(customers=400, merchants=40, days=35)
SEED = 7
RUN_AT = fraud_events.END.replace(tzinfo=None)
PROJECT, DOMAIN = "ml", "development"
WORKFLOW = "workloads.training.workflow.training"


def run_job(cluster: Cluster, name: str, command: list[str], timeout: int = 900) -> None:
    """A Job in the platform namespace shaped like the deployed feast-apply Job (its image,
    env, volumes, labels, service account and security context) running `command` instead."""
    template = cluster.get("job", "feast-apply", "-n", cluster.namespace)["spec"]["template"]
    pod = copy.deepcopy(template)
    # The feast-apply pod's labels: Feast's NetworkPolicy lets it reach Postgres and Redis.
    pod["metadata"] = {"labels": template["metadata"]["labels"]}
    pod["spec"]["containers"][0]["command"] = command
    pod["spec"]["containers"][0].pop("args", None)
    pod["spec"]["restartPolicy"] = "Never"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cluster.namespace,
            "labels": {"app.kubernetes.io/part-of": "mlops-platform"},
        },
        "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 600, "template": pod},
    }
    cluster.kubectl("delete", "job", name, "-n", cluster.namespace, "--ignore-not-found")
    created = cluster.kubectl("create", "-f", "-", input=json.dumps(job))
    assert created.returncode == 0, created.stderr
    done = cluster.kubectl(
        "wait",
        f"job/{name}",
        "-n",
        cluster.namespace,
        "--for=condition=Complete",
        f"--timeout={timeout}s",
        timeout=timeout + 30,
    )
    logs = cluster.kubectl("logs", f"job/{name}", "-n", cluster.namespace, "--tail=50")
    assert done.returncode == 0, f"{name} did not complete:\n{done.stderr}\n{logs.stdout}"


@pytest.fixture(scope="module")
def live(cluster: Cluster) -> Cluster:
    # Module fixtures set up before the per-test `containers` skip: say it here too.
    if not cluster.containers:
        pytest.skip(NO_CONTAINERS)
    if cluster.config.flyte is None or cluster.config.kserve is None:
        pytest.skip(f"the {cluster.stack} stack runs without Flyte or KServe")
    return cluster


@pytest.fixture(scope="module")
def features(live: Cluster) -> None:
    """The seeded transactions in the offline store, materialized into the online store."""
    events = fraud_events.generate(SEED, SIZES).transactions["event_timestamp"]
    start = (events.min() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (events.max() + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    script = "/app/workloads/feature_repo/datagen/fraud_events.py"
    run_job(
        live,
        "golden-path-seed",
        [
            "/bin/sh",
            "-c",
            f"exec python {script} --seed {SEED} --customers {SIZES.customers} "
            f"--merchants {SIZES.merchants} --days {SIZES.days} "
            '--postgres-url "${FEAST_REGISTRY_URL%%\\?*}"',
        ],
    )
    run_job(live, "golden-path-materialize", ["feast", "materialize", start, end])


@pytest.fixture(scope="module")
def trained(live: Cluster, features: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The training workflow registered and run through Flyte; the version it ran as."""
    image = live.config.images.workloads
    version = f"golden-{int(time.time())}"
    # The login of the generated client config: client mlops-ci, its secret in the environment.
    secret = live.secret_value(flyteauth.AUTH_SECRET, flyteauth.CI_SECRET_FILE)
    login = {**os.environ, clientconfig.CLIENT_SECRET_ENV: secret}
    with live.forward("flyte-grpc", 8089) as port:
        config = tmp_path_factory.mktemp("flyte") / "config.yaml"
        settings = clientconfig.flyte_config(f"127.0.0.1:{port}", None, flyteauth.CI_CLIENT)
        config.write_text(yaml.safe_dump(settings))
        registered = subprocess.run(
            [
                str(Path(sys.executable).parent / "pyflyte"),
                "--config",
                str(config),
                "register",
                "--copy",
                "none",
                "--image",
                image,
                "--project",
                PROJECT,
                "--domain",
                DOMAIN,
                "--version",
                version,
                "workloads/training/workflow.py",
            ],
            cwd=ROOT,
            env=login,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert registered.returncode == 0, registered.stdout[-3000:] + registered.stderr[-3000:]
        os.environ[clientconfig.CLIENT_SECRET_ENV] = secret
        remote = FlyteRemote(
            Config.auto(str(config)), default_project=PROJECT, default_domain=DOMAIN
        )
        plan = remote.fetch_launch_plan(name=WORKFLOW, version=version)
        execution = remote.execute(plan, inputs={"run_at": RUN_AT})
        execution = remote.wait(execution, timeout=timedelta(minutes=40), sync_nodes=False)
        phase = WorkflowExecutionPhase.enum_to_string(execution.closure.phase)
        error = execution.closure.error.message if execution.closure.error else ""
        assert execution.closure.phase == WorkflowExecutionPhase.SUCCEEDED, (phase, error)
    return version


def test_training_through_flyte_deploys_a_ready_inference_service(
    live: Cluster, trained: str
) -> None:
    namespace = live.config.kserve.model_namespace  # type: ignore[union-attr]
    deadline = time.monotonic() + 900
    while True:
        found = live.kubectl("get", "inferenceservice", MODEL_NAME, "-n", namespace, "-o", "json")
        conditions: dict[str, Any] = {}
        if found.returncode == 0:
            status = json.loads(found.stdout).get("status", {})
            conditions = {c["type"]: c for c in status.get("conditions", [])}
        if conditions.get("Ready", {}).get("status") == "True":
            break
        assert time.monotonic() < deadline, f"not Ready: {conditions or found.stderr}"
        time.sleep(10)


def test_a_transaction_is_scored_through_the_transformer(live: Cluster, trained: str) -> None:
    namespace = live.config.kserve.model_namespace  # type: ignore[union-attr]
    events = fraud_events.generate(SEED, SIZES).transactions
    known = events.iloc[-1]
    body = {
        "instances": [
            {
                "customer_id": int(known["customer_id"]),
                "merchant_id": int(known["merchant_id"]),
                "amount": float(known["amount"]),
            },
            {"customer_id": 999_999, "merchant_id": 999_999, "amount": 12.5},
        ]
    }
    with live.forward(f"{MODEL_NAME}-transformer", 80, namespace=namespace) as port:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}:predict",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            predictions = json.loads(response.read())["predictions"]
    assert len(predictions) == 2
    for prediction in predictions:
        assert 0.0 <= prediction["fraud_probability"] <= 1.0
        assert prediction["model_version"] == "1"
