"""What `mlops connect` reaches: each named Service and port is one the stack renders,
and each login points at the Secret key that holds the password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra import config
from mlops import access, stackfile
from tests.support.rendering import secret_data, stack_rendering

ROOT = Path(__file__).resolve().parents[2]


def stack_config(name: str) -> config.PlatformConfig:
    return stackfile.read(name).config()


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_service_and_login_is_in_the_render(stack: str) -> None:
    rendering = stack_rendering(stack)
    found = access.services(stack_config(stack))
    assert [a.name for a in found] == [
        "mlflow",
        "flyte-console",
        "flyte-api",
        "grafana",
        "prometheus",
    ]
    for entry in found:
        service = rendering.find("Service", entry.service).manifest()
        assert service["metadata"]["namespace"] == entry.namespace
        assert entry.port in [p["port"] for p in service["spec"]["ports"]], entry.name
        if entry.login is not None:
            _, secret, key = entry.login
            assert secret_data(rendering, secret)[key], entry.name


def test_prometheus_alone_has_no_login() -> None:
    """Flyte's console logs people in through the stack's identity provider, not a Secret."""
    logins = {a.name: a.login for a in access.services(stack_config("dev"))}
    assert {name for name, login in logins.items() if login is None} == {
        "flyte-console",
        "prometheus",
    }
    assert logins["flyte-api"] == ("mlops-ci", "flyte-auth", "mlops_ci_client_secret")


def test_disabled_components_have_nothing_to_reach() -> None:
    cfg = stack_config("dev").model_copy(update={"monitoring": None, "flyte": None})
    assert [a.name for a in access.services(cfg)] == ["mlflow"]


def test_connect_prints_each_address_and_where_its_login_is(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlops", "connect", "ci", "--print"],
        cwd=ROOT,
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "MLOPS_STATE_DIR": str(tmp_path),
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "mlflow http://localhost:5000 MLflow UI and tracking API" in lines
    assert any(line.startswith("flyte-api localhost:8089 ") for line in lines)
    assert any(
        "kubectl -n mlops-ci get secret grafana -o jsonpath={.data.admin-password}" in line
        for line in lines
    )
    assert sum("no login of its own" in line for line in lines) == 2
