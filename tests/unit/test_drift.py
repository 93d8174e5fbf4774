"""The drift check's reading of a `pulumi refresh --preview-only --json` report (its shape as
pulumi 3.274 prints it; tests/integration/test_pipeline.py runs the real thing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlops import drift

URN = "urn:pulumi:dev::mlops-platform::mlops:platform:Platform${}::{}"


def step(op: str, kind: str, name: str, before: Any = None, after: Any = None, **more: Any) -> Any:
    found = {"op": op, "urn": URN.format(kind, name), **more}
    if before is not None:
        found["oldState"] = {"outputs": before}
    if after is not None or op == "refresh":
        found["newState"] = None if after is None else {"outputs": after}
    return found


DEPLOYMENT = "mlops:components:Monitoring$kubernetes:apps/v1:Deployment"
SECRET = "mlops:components:Redis$kubernetes:core/v1:Secret"


def test_unchanged_refresh_steps_are_no_drift() -> None:
    outputs = {"spec": {"replicas": 1}, "metadata": {"name": "grafana"}}
    digest = {
        "steps": [step("refresh", DEPLOYMENT, "grafana", outputs, outputs)],
        "changeSummary": {"same": 1},
    }
    assert drift.drifted(digest) == []


def test_each_kind_of_drift_is_named_with_its_type_and_change() -> None:
    digest = {
        "steps": [
            step("update", DEPLOYMENT, "grafana", diffReasons=["spec"]),
            step(
                "refresh",
                SECRET,
                "redis",
                {"data": "a", "type": "Opaque"},
                {"data": "b", "type": "Opaque"},
            ),
            step("refresh", SECRET, "gone", {"data": "a"}, None),
            step("same", SECRET, "kept"),
        ],
        "changeSummary": {"same": 1, "update": 2, "delete": 1},
    }
    assert drift.drifted(digest) == [
        drift.Drift("kubernetes:apps/v1:Deployment", "grafana", "update spec"),
        drift.Drift("kubernetes:core/v1:Secret", "redis", "changed data"),
        drift.Drift("kubernetes:core/v1:Secret", "gone", "gone"),
    ]


def test_a_summary_with_changes_but_no_named_step_is_still_drift() -> None:
    found = drift.drifted({"steps": [], "changeSummary": {"same": 3, "update": 1}})
    assert found == [drift.Drift("(unnamed)", "", "1 to update")]


def run(tmp_path: Path, digest: Any, status: int = 0) -> subprocess.CompletedProcess[str]:
    report = tmp_path / "report.json"
    report.write_text(digest if isinstance(digest, str) else json.dumps(digest))
    summary = tmp_path / "summary.md"
    return subprocess.run(
        [sys.executable, "-m", "mlops.drift", "dev", str(report), str(status)],
        cwd=Path(__file__).resolve().parents[2],
        env={"GITHUB_STEP_SUMMARY": str(summary), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_exit_status_says_clean_drifted_or_failed(tmp_path: Path) -> None:
    clean = run(tmp_path, {"steps": [], "changeSummary": {"same": 4}})
    assert (clean.returncode, clean.stdout) == (0, "drift: dev matches its cluster\n")
    drifted = run(
        tmp_path, {"steps": [step("update", DEPLOYMENT, "grafana", diffReasons=["spec"])]}
    )
    assert drifted.returncode == 1
    assert "  kubernetes:apps/v1:Deployment grafana: update spec" in drifted.stderr
    assert (
        "| `kubernetes:apps/v1:Deployment` | `grafana` | update spec |"
        in (tmp_path / "summary.md").read_text()
    )
    failed = run(
        tmp_path,
        {"diagnostics": [{"severity": "error", "message": "cluster unreachable\n"}]},
        status=255,
    )
    assert failed.returncode == 2
    assert "error: cluster unreachable" in failed.stderr
    assert run(tmp_path, "not json", status=0).returncode == 2
