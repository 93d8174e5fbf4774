"""What the tests need that may be missing: tools from the toolchain cache, and modules of
optional dependency groups. Missing, a test skips, unless the test command requires it."""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest


def _monitoring_binary(name: str, variable: str) -> str:
    override = os.environ.get(variable)
    if override:
        return override
    root = Path(__file__).resolve().parents[2]
    found = subprocess.run(
        [str(root / "scripts" / "prometheus.sh"), "path", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    message = f"{name} is not built: run ./scripts/prometheus.sh"
    if os.environ.get("MLOPS_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def promtool() -> str:
    """The promtool of the pinned Prometheus (scripts/prometheus.sh builds it); skipped
    without it, unless the test command requires it."""
    return _monitoring_binary("promtool", "MLOPS_PROMTOOL")


def prometheus_server() -> str:
    """The Prometheus server of the pinned version, built like promtool."""
    return _monitoring_binary("prometheus", "MLOPS_PROMETHEUS")


def alertmanager() -> str:
    """The Alertmanager server of the pinned version (scripts/prometheus.sh builds it)."""
    return _monitoring_binary("alertmanager", "MLOPS_ALERTMANAGER")


def amtool() -> str:
    """amtool of the pinned Alertmanager, which checks its config files."""
    return _monitoring_binary("amtool", "MLOPS_AMTOOL")


def pushgateway() -> str:
    """The Pushgateway of the pinned version (scripts/prometheus.sh builds it)."""
    return _monitoring_binary("pushgateway", "MLOPS_PUSHGATEWAY")


def require_module(name: str, why: str) -> Any:
    """Imports a module of an optional dependency group; skipped without it, unless the test
    command requires it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"{name} is not installed ({why}): run ./scripts/setup.sh"
        if os.environ.get("MLOPS_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)
