"""The deploy pipeline's commands against the local control plane: the offline preview a pull
request gets without backend or cluster credentials, and `mlops drift`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import LOCAL_STACK, Deployment, environment_after

pytestmark = pytest.mark.lifecycle
ROOT = Path(__file__).resolve().parents[2]


def test_offline_preview_validates_and_plans_without_backend_or_cluster(
    deployment: Deployment, tmp_path: Path
) -> None:
    """What a pull request's preview job runs, on a machine with no mlops state, no backend and
    no cluster: `mlops pipeline stack <stack> --offline-fallback`, then a plain preview."""
    project = tmp_path / "project"
    shutil.copytree(
        deployment.project, project, symlinks=True, ignore=shutil.ignore_patterns(".venv")
    )
    (project / ".venv").symlink_to(deployment.project / ".venv")
    # A fresh copy of the stack file: the deployed one holds that deployment's secrets.
    shutil.copy(ROOT / "stacks" / f"Pulumi.{LOCAL_STACK}.yaml", project / "stacks")
    env = {
        k: v
        for k, v in deployment.env.items()
        if not k.startswith(("PULUMI_", "KUBECONFIG", "MLOPS_"))
    }
    # The Pulumi CLI on PATH, as pulumi/actions puts it on a runner.
    env.update(environment_after("./scripts/toolchain.sh env"))
    env.update(MLOPS_STATE_DIR=str(tmp_path / "state"), KUBECONFIG=str(tmp_path / "none"))
    copy = Deployment(project, env, deployment.kubectl)
    # `-m` runs the copy's mlops (the shared .venv's editable install names the other copy).
    selected = copy.run(
        str(project / ".venv" / "bin" / "python"),
        "-m",
        "mlops",
        "pipeline",
        "stack",
        LOCAL_STACK,
        "--offline-fallback",
    )
    assert selected.returncode == 0, selected.stderr
    outputs = dict(line.split("=", 1) for line in selected.stdout.splitlines())
    assert set(outputs) == {"backend", "passphrase"}
    assert outputs["backend"].startswith("file://")
    assert "nothing is deployed" in selected.stderr
    copy.env.update(
        PULUMI_BACKEND_URL=outputs["backend"], PULUMI_CONFIG_PASSPHRASE=outputs["passphrase"]
    )
    preview = copy.pulumi("preview", timeout=600)
    assert preview.returncode == 0, (preview.stdout + preview.stderr)[-3000:]
    assert "to create" in preview.stdout
    # Nothing reached the cluster the deployment runs on.
    assert outputs["passphrase"] not in preview.stdout + preview.stderr


def test_drift_check_names_an_out_of_band_change(deployed: Deployment, tmp_path: Path) -> None:
    clean = deployed.mlops("drift", LOCAL_STACK, timeout=600)
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert f"{LOCAL_STACK} matches its cluster" in clean.stdout
    namespace = "mlops-ci"
    scaled = deployed.run(
        deployed.kubectl, "scale", "deployment", "grafana", "-n", namespace, "--replicas=2"
    )
    assert scaled.returncode == 0, scaled.stderr
    try:
        summary = tmp_path / "summary.md"
        drifted = deployed.mlops(
            "drift", LOCAL_STACK, timeout=600, env={"GITHUB_STEP_SUMMARY": str(summary)}
        )
        assert drifted.returncode == 1, drifted.stdout + drifted.stderr[-3000:]
        listed = [line for line in drifted.stderr.splitlines() if line.startswith("  ")]
        assert len(listed) == 1, drifted.stderr
        assert listed[0].startswith("  kubernetes:apps/v1:Deployment grafana: update"), listed
        assert "| `kubernetes:apps/v1:Deployment` | `grafana` |" in summary.read_text()
    finally:
        # kubectl now owns .spec.replicas: the deploy takes it back (docs/deploy.md).
        restored = subprocess.run(
            ["pulumi", "up", "--refresh", "--yes", "--skip-preview", "--stack", LOCAL_STACK],
            cwd=deployed.project,
            env={**deployed.env, "PULUMI_K8S_ENABLE_PATCH_FORCE": "true"},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert restored.returncode == 0, (restored.stdout + restored.stderr)[-3000:]
    assert deployed.mlops("drift", LOCAL_STACK, timeout=600).returncode == 0
