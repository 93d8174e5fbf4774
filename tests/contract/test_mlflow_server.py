"""The rendered MLflow server, started for real against local Postgres and S3.

The migration Job's command and the server's command, args and env come from the offline
render of a stack; only in-cluster addresses become loopback ones. The mlflow package is the
version the image is pinned to.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.components import mlflow as mlflow_component
from mlops import render
from tests.support.mlflow_server import (
    addresses,
    mlflow_server,
    platform_rendering,
    prepare_storage,
)
from tests.support.rendering import (
    SENTINELS,
    declared_metrics,
    pod_container,
    secret_data,
)
from tests.support.servers import (
    exposed_series,
    free_port,
    local_env,
    local_postgres,
    local_s3,
    running_server,
)
from tests.support.tools import prometheus_server, require_module

mlflow = require_module("mlflow", "the workloads dependency group")
VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[render.Rendering, dict[str, str]]]:
    """A rendering whose credentials are the local servers', with the Postgres init and
    bucket Jobs run: the state a deploy leaves before MLflow starts."""
    pg, s3 = local_postgres(), local_s3()
    rendering = platform_rendering(pg, s3)
    prepare_storage(rendering, pg, s3, tmp_path_factory.mktemp("jobs"), ["mlflow"])
    yield rendering, addresses(pg, s3)


def test_migration_job_upgrades_both_schemas(
    platform: tuple[render.Rendering, dict[str, str]], tmp_path: Path
) -> None:
    rendering, local = platform
    container = pod_container(rendering, "Job", "mlflow-db-upgrade")
    env = {
        **local_env(rendering, container, local),
        "HOME": str(tmp_path),
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    }
    for run in (1, 2):
        result = subprocess.run(
            container["command"], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, f"run {run}: {result.stderr[-2000:]}"
    pg = local_postgres()
    tables = pg.query(
        "SELECT string_agg(tablename, ',') FROM pg_tables WHERE tablename LIKE 'alembic_version%'",
        database="mlflow",
    )
    assert set(tables.split(",")) == {"alembic_version", "alembic_version_auth"}


@pytest.fixture(scope="module")
def server(
    platform: tuple[render.Rendering, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    rendering, local = platform
    with mlflow_server(rendering, local, tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture
def client(server: str, monkeypatch: pytest.MonkeyPatch) -> mlflow.MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SENTINELS["mlflowAdminPassword"])
    mlflow.set_tracking_uri(server)
    return mlflow.MlflowClient(server)


def test_run_metric_and_artifact_round_trip(client: mlflow.MlflowClient, tmp_path: Path) -> None:
    experiment = client.create_experiment(f"contract-{time.time_ns()}")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "auc", 0.91, step=1)
    report = tmp_path / "report.txt"
    report.write_text("evaluation: ok\n")
    client.log_artifact(run.info.run_id, str(report))
    client.set_terminated(run.info.run_id)

    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.91}
    downloaded = client.download_artifacts(run.info.run_id, "report.txt", str(tmp_path / "dl"))
    assert Path(downloaded).read_text() == "evaluation: ok\n"


def test_artifacts_land_in_the_mlflow_bucket(client: mlflow.MlflowClient, tmp_path: Path) -> None:
    import boto3

    s3 = local_s3()
    run = client.create_run(client.create_experiment(f"bucket-{time.time_ns()}"))
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01")
    client.log_artifact(run.info.run_id, str(tmp_path / "weights.bin"))
    bucket = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name="us-east-1",
    )
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="mlflow")["Contents"]]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/weights.bin") for k in keys)


def test_model_version_and_alias(client: mlflow.MlflowClient) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    name = f"fraud-{time.time_ns()}"
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    client.set_registered_model_alias(name, "champion", version.version)

    by_alias = client.get_model_version_by_alias(name, "champion")
    assert (by_alias.version, by_alias.run_id) == (version.version, run.info.run_id)
    loaded = mlflow.sklearn.load_model(f"models:/{name}@champion")
    assert list(loaded.predict(np.array([[0.0], [3.0]]))) == [0, 1]


def test_anonymous_requests_are_refused(server: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            f"{server}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10
        )
    assert refused.value.code == 401


def test_health_is_open_and_metrics_need_credentials(
    server: str, platform: tuple[render.Rendering, dict[str, str]]
) -> None:
    with urllib.request.urlopen(f"{server}{mlflow_component.HEALTH_PATH}", timeout=10) as health:
        assert health.status == 200
    metrics_url = f"{server}{mlflow_component.METRICS_PATH}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(metrics_url, timeout=10)
    assert refused.value.code == 401
    token = base64.b64encode(f"admin:{SENTINELS['mlflowAdminPassword']}".encode()).decode()
    authorized = {"Authorization": f"Basic {token}"}
    search = f"{server}/api/2.0/mlflow/experiments/search?max_results=1"
    urllib.request.urlopen(urllib.request.Request(search, headers=authorized), timeout=10).close()
    request = urllib.request.Request(metrics_url, headers=authorized)
    with urllib.request.urlopen(request, timeout=10) as metrics:
        body = metrics.read().decode()
    assert metrics.status == 200
    # What Prometheus, the dashboards and the alerts expect MLflow to expose, it exposes.
    declared = declared_metrics(platform[0], "mlflow")
    assert declared and declared <= exposed_series(body), declared - exposed_series(body)


def test_foreign_host_header_is_rejected(server: str) -> None:
    request = urllib.request.Request(
        f"{server}/api/2.0/mlflow/experiments/search?max_results=1",
        headers={"Host": "evil.example.com"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code in (400, 403)


def test_rendered_prometheus_scrapes_mlflow_and_evaluates_every_rule(
    server: str, platform: tuple[render.Rendering, dict[str, str]], tmp_path: Path
) -> None:
    """The pinned Prometheus with the rendered StatefulSet args, config and rule files: it
    logs into the real MLflow with the password file the pod mounts, finds the declared
    series, and evaluates every alert rule without an error.

    Only what needs a cluster changes: the kubelet and predictor discovery jobs are left out,
    the mounted paths move into a temporary directory, MLflow's address becomes the local
    one, and the intervals shrink so the test does not wait half a minute per round."""
    rendering = platform[0]
    binary = prometheus_server()
    root = tmp_path / "pod"
    config = yaml.safe_load(
        rendering.find("ConfigMap", "prometheus-config").inputs["data"]["prometheus.yaml"]
    )
    mlflow_job = next(j for j in config["scrape_configs"] if j["job_name"] == "mlflow")
    mlflow_job["static_configs"][0]["targets"] = [server.removeprefix("http://")]
    config["scrape_configs"] = [mlflow_job]
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    text = yaml.safe_dump(config).replace("/etc/prometheus", str(root / "etc/prometheus"))
    config_file = root / "etc/prometheus/config/prometheus.yaml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(text)
    rules_dir = root / "etc/prometheus/rules"
    rules_dir.mkdir(parents=True)
    rules = rendering.find("ConfigMap", "prometheus-rules").inputs["data"]
    for name, body in rules.items():
        (rules_dir / name).write_text(body)
    password = root / "etc/prometheus/secrets/mlflow/admin-password"
    password.parent.mkdir(parents=True)
    password.write_text(secret_data(rendering, "mlflow")["admin-password"])

    pod = rendering.find("StatefulSet", "prometheus").manifest()["spec"]["template"]["spec"]
    port = free_port()
    args = [
        a.replace("/etc/prometheus", str(root / "etc/prometheus")).replace(
            "--storage.tsdb.path=/prometheus", f"--storage.tsdb.path={root / 'data'}"
        )
        for a in pod["containers"][0]["args"]
    ]
    base = f"http://127.0.0.1:{port}"

    def api(path: str) -> Any:
        with urllib.request.urlopen(f"{base}/api/v1/{path}", timeout=10) as response:
            return json.load(response)["data"]

    def evaluated(rule: dict[str, Any]) -> bool:
        return not str(rule.get("lastEvaluation", "0001")).startswith("0001")

    with running_server(
        [binary, *args, f"--web.listen-address=127.0.0.1:{port}"], f"{base}/-/ready", tmp_path
    ):
        deadline = time.monotonic() + 60
        while True:
            up = api("query?query=up%7Bjob%3D%22mlflow%22%7D")["result"]
            groups = api("rules")["groups"]
            rules_seen = [r for g in groups for r in g["rules"]]
            done = rules_seen and all(evaluated(r) for r in rules_seen)
            if up and up[0]["value"][1] == "1" and done:
                break
            assert time.monotonic() < deadline, (up, [r["name"] for r in rules_seen])
            time.sleep(1)
        assert up[0]["metric"]["component"] == "mlflow"
        names = set(api("label/__name__/values"))
        declared = declared_metrics(rendering, "mlflow")
        assert declared <= names, declared - names
        assert {g["file"].rsplit("/", 1)[1] for g in groups} == set(rules)
        assert len(rules_seen) == sum(body.count("- alert:") for body in rules.values())
        broken = {r["name"]: r.get("lastError") for r in rules_seen if r["health"] != "ok"}
        assert not broken
