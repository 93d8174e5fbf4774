"""Client settings written from a stack's outputs, read back by the clients themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops import clientconfig
from tests.support.rendering import SENTINELS, stack_rendering
from tests.support.tools import require_module

ROOT = Path(__file__).resolve().parents[2]


def test_connect_writes_flyte_and_mlflow_settings_for_its_port_forwards(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlops", "connect", "ci", "--print"],
        cwd=ROOT,
        env={**os.environ, "MLOPS_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    clients = tmp_path / "clients" / "ci"
    env = dict(
        line.split("=", 1)
        for line in (clients / "mlflow.env").read_text().splitlines()
        if not line.startswith("#")
    )
    assert env == {
        "MLFLOW_TRACKING_URI": "http://localhost:5000",
        "MLFLOW_TRACKING_USERNAME": "admin",
    }
    flyte = yaml.safe_load((clients / "flyte" / "config.yaml").read_text())
    assert flyte["admin"]["endpoint"] == "dns:///localhost:8089"
    # No secret is written: each client reads its login from the environment.
    written = "".join(p.read_text() for p in clients.rglob("*") if p.is_file())
    assert "[secret]" not in written and "placeholder" not in written


def test_flytekit_reads_the_endpoint_and_the_client_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = require_module("flytekit.configuration", "the workloads dependency group")
    [path, *_] = clientconfig.write(stack_rendering("dev").outputs, tmp_path)
    assert "S3NT1NEL" not in path.read_text()
    monkeypatch.setenv(clientconfig.CLIENT_SECRET_ENV, SENTINELS["flyteClientSecret"])
    platform = configuration.PlatformConfig.auto(str(path))
    assert platform.endpoint == "flyte-grpc.mlops.svc.cluster.local:8089"
    assert platform.insecure is True
    assert platform.auth_mode == "ClientSecret"
    assert platform.client_id == "mlops-ci"
    assert platform.client_credentials_secret == SENTINELS["flyteClientSecret"]


def test_overrides_point_clients_at_a_port_forward(tmp_path: Path) -> None:
    clientconfig.write(
        stack_rendering("dev").outputs, tmp_path, "localhost:8089", "http://localhost:5000"
    )
    assert "dns:///localhost:8089" in (tmp_path / "flyte" / "config.yaml").read_text()
    assert "MLFLOW_TRACKING_URI=http://localhost:5000\n" in (tmp_path / "mlflow.env").read_text()


def test_no_secret_is_written(tmp_path: Path) -> None:
    written = clientconfig.write(stack_rendering("dev").outputs, tmp_path)
    text = "".join(p.read_text() for p in written)
    assert text and not any(s in text for s in SENTINELS.values())


def test_disabled_services_get_no_settings(tmp_path: Path) -> None:
    assert clientconfig.write({}, tmp_path) == []
    with pytest.raises(FileNotFoundError):
        (tmp_path / "mlflow.env").read_text()


def test_workloads_env_holds_what_training_tasks_read_in_the_cluster(tmp_path: Path) -> None:
    """The same settings the platform writes into Flyte's project namespaces."""
    rendering = stack_rendering("dev")
    clientconfig.write(rendering.outputs, tmp_path)
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "workloads.env").read_text().splitlines()
        if not line.startswith("#")
    )
    in_cluster = rendering.find("ConfigMap", "mlops-workloads").manifest()["data"]
    for key in ("MLOPS_MLFLOW_ARTIFACTS", "MLOPS_MODEL_NAMESPACE", "MLOPS_WORKLOADS_IMAGE"):
        assert env[key] == in_cluster[key], key
    assert env["FEAST_FS_YAML_FILE_PATH"] == str(tmp_path / "feast" / "feature_store.yaml")
