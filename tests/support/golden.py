"""The golden path's platform on loopback, shared by the workload tests that need a trained
and registered model: the rendered Postgres init, buckets, feast apply and materialize
commands run against the local servers, the seeded data in the offline store, the rendered
MLflow server, and the training workflow through `pyflyte run`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.components import flyte
from mlops import render
from tests.support.feast_store import platform_store
from tests.support.kserve import predictor_command, transformer_command
from tests.support.mlflow_server import (
    ADMIN,
    ADMIN_PASSWORD,
    addresses,
    mlflow_server,
    platform_rendering,
    prepare_storage,
)
from tests.support.rendering import pod_container
from tests.support.servers import (
    LocalPostgres,
    LocalRedis,
    LocalS3,
    free_port,
    local_postgres,
    local_redis,
    local_s3,
    running_server,
)
from tests.support.tools import require_module

mlflow = require_module("mlflow", "the workloads dependency group")
redis_client = require_module("redis", "the workloads dependency group")
from mlops.demo.data import RUN_AT, materialize_window, seeded  # noqa: E402
from workloads.feature_repo.datagen import fraud_events  # noqa: E402
from workloads.monitoring.retraining import printed_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SERVING_BIN = ROOT / ".venv-serving" / "bin"


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
        every project namespace (the rendered ConfigMap of the first), with loopback addresses,
        and the secrets' local values."""
        first = flyte.project_namespaces(self.rendering.config.flyte)[0]
        settings = next(
            r.manifest()["data"]
            for r in self.rendering.of_type("ConfigMap")
            if r.inputs["metadata"]["name"] == flyte.WORKLOADS_CONFIG
            and r.inputs["metadata"]["namespace"] == first
        )
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FEAST_", "MLFLOW_"))},
            **settings,
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
    """The training workflow's outputs as `pyflyte run` prints them: the Outcome's fields and
    the InferenceService manifest."""
    outputs = printed_outputs(stdout)
    assert outputs, stdout[-3000:]
    return outputs["o0"], outputs["o1"]


@contextmanager
def loopback_platform(work: Path) -> Iterator[Stack]:
    """A fresh platform on loopback: databases and buckets from the rendered Jobs, the
    seeded data in the offline store, the feature repo applied and materialized, MLflow up."""
    pg, s3, redis = local_postgres(), local_s3(), local_redis()
    rendering = platform_rendering(pg, s3)
    (work / "home").mkdir()
    prepare_storage(rendering, pg, s3, work, ["mlflow", "feast"])
    redis_client.Redis(host=redis.host, port=redis.port, password=redis.password).flushdb()

    feast_env = platform_store(rendering, pg, redis, work / "etc-feast")
    # The data `mlops demo seed` loads, and the window `mlops demo materialize` takes.
    dataset = seeded()
    fraud_events.load_postgres(dataset, feast_env["FEAST_REGISTRY_URL"].split("?")[0])
    repo = ROOT / "workloads" / "feature_repo"
    feast_run = {**os.environ, **feast_env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    cronjob = rendering.find("CronJob", "feast-materialize").manifest()
    for command in (
        pod_container(rendering, "Job", "feast-apply")["command"],
        ["feast", "materialize", *materialize_window(dataset)],
        cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"],
    ):
        done = subprocess.run(
            command, cwd=repo, env=feast_run, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    with mlflow_server(rendering, addresses(pg, s3), work / "mlflow") as url:
        yield Stack(rendering, pg, s3, redis, work, feast_env, url)


@contextmanager
def serving(
    stack: Stack,
    manifest: dict[str, Any],
    model_dir: Path,
    work: Path,
    transformer_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """The InferenceService `manifest` on loopback: the predictor (the rendered ServingRuntime
    in the serving environment) on the model in `model_dir`, and the transformer in front of
    it; yields the transformer's base URL (http://127.0.0.1:<port>)."""
    runtime = stack.rendering.find("ServingRuntime", "mlops-mlflow").manifest()
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    command, env = predictor_command(runtime, manifest, model_dir, ports, SERVING_BIN)
    predictor_work, transformer_work = work / "predictor", work / "transformer"
    predictor_work.mkdir(parents=True)
    transformer_work.mkdir(parents=True)
    name = manifest["metadata"]["name"]
    predictor_env = {**os.environ, **env, "HOME": str(predictor_work)}
    ready = f"http://127.0.0.1:{ports['http']}/v2/models/{name}/ready"
    with running_server(command, ready, predictor_work, predictor_env, timeout=180):
        port = free_port()
        command, env = transformer_command(
            manifest, f"127.0.0.1:{ports['http']}", port, VENV_BIN / "python"
        )
        env = {**stack.transformer_env(env), **(transformer_env or {})}
        base = f"http://127.0.0.1:{port}"
        with running_server(command, f"{base}/v1/models/{name}", transformer_work, env):
            yield base
