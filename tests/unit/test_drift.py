"""The drift check's reading of a `pulumi refresh --preview-only --json` report (its shape as
pulumi 3.274 prints it; tests/integration/test_pipeline.py runs the real thing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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


def judged(
    capsys: pytest.CaptureFixture[str], digest: Any, status: int = 0, errors: str = ""
) -> tuple[int, str, str]:
    """`mlops drift`'s verdict on a refresh report: exit status, standard output and error."""
    text = digest if isinstance(digest, str) else json.dumps(digest)
    code = drift.judge("dev", text, status, errors)
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_status_says_clean_drifted_or_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    clean = judged(capsys, {"steps": [], "changeSummary": {"same": 4}})
    assert clean[:2] == (0, "drift: dev matches its cluster\n")
    code, _, err = judged(
        capsys, {"steps": [step("update", DEPLOYMENT, "grafana", diffReasons=["spec"])]}
    )
    assert code == 1
    assert "  kubernetes:apps/v1:Deployment grafana: update spec" in err
    assert "| `kubernetes:apps/v1:Deployment` | `grafana` | update spec |" in summary.read_text()
    code, _, err = judged(
        capsys,
        {"diagnostics": [{"severity": "error", "message": "cluster unreachable\n"}]},
        status=255,
    )
    assert code == 2
    assert "error: cluster unreachable" in err
    assert judged(capsys, "not json", status=0)[0] == 2


def test_a_failed_refresh_without_a_report_says_why_from_its_error_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = judged(capsys, "", status=255, errors="error: no stack named 'dev' found\n")
    assert code == 2
    assert err.splitlines() == [
        "drift: the refresh preview of dev failed (exit 255)",
        "  error: no stack named 'dev' found",
    ]
