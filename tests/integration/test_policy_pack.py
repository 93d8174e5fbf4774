"""The policy pack in a real `pulumi preview --policy-pack policy` on the local control plane:
the ci stack passes it, and a user's own project with a bad Deployment is refused with a
message naming the policy, the resource and what is wrong."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.integration.conftest import HERE, TIMINGS, Deployment

# Previews of the ci stack's own Pulumi state: local mode only, as the lifecycle tests.
pytestmark = pytest.mark.lifecycle
POLICY_PACK = HERE.parents[1] / "policy"
NAMESPACE = "mlops-ci"


def test_the_ci_stack_passes_the_policy_pack(deployed: Deployment) -> None:
    preview = deployed.pulumi("preview", "--policy-pack", str(POLICY_PACK))
    output = preview.stdout + preview.stderr
    assert preview.returncode == 0, output[-5000:]
    assert f"mlops-platform@v0.0.1 (local: {POLICY_PACK})" in output, output[-5000:]
    assert "[mandatory]" not in output
    # The stack rule ran over the deployed objects: the NetworkPolicies cover every pod.
    assert "network-policy-coverage" not in output


@pytest.fixture
def user_project(deployed: Deployment, tmp_path: Path) -> Path:
    """The user's project (policy_user_project/) with the platform project's environment and
    a stack of its own in the same backend, targeting the platform's namespace."""
    project = tmp_path / "user"
    shutil.copytree(HERE / "policy_user_project", project)
    (project / ".venv").symlink_to(deployed.project / ".venv")
    for command in (
        ["stack", "init", "user", "--secrets-provider", "passphrase"],
        ["config", "set", "namespace", NAMESPACE, "--stack", "user"],
    ):
        result = deployed.run("pulumi", *command, "--non-interactive", cwd=project, timeout=120)
        assert result.returncode == 0, result.stderr
    return project


def test_a_users_bad_deployment_fails_preview_naming_the_policy_and_the_fault(
    deployed: Deployment, user_project: Path
) -> None:
    started = time.monotonic()
    preview = deployed.run(
        "pulumi",
        "preview",
        "--stack",
        "user",
        "--non-interactive",
        "--policy-pack",
        str(POLICY_PACK),
        cwd=user_project,
        timeout=600,
    )
    TIMINGS.append(("pulumi preview --policy-pack (a user's project)", time.monotonic() - started))
    output = preview.stdout + preview.stderr
    assert preview.returncode != 0, output[-5000:]
    resource = "(kubernetes:apps/v1:Deployment: user-app)"
    expected = {
        "pinned-images": "Deployment user-app: container web: image 'nginx:latest' is not pinned: "
        "give a version tag (not latest) or an @sha256 digest",
        "requests-and-limits": "Deployment user-app: container web: resources.limits lacks "
        "cpu, memory",
        "probes": "Deployment user-app: container web: no readinessProbe",
        "restricted-pod-security": "Deployment user-app: container web: "
        "allowPrivilegeEscalation must be false",
        "network-policy-coverage": f"Deployment {NAMESPACE}/user-app: no NetworkPolicy in "
        f"namespace {NAMESPACE} selects its pods",
    }
    for policy, message in expected.items():
        assert f"[mandatory]  {policy}  {resource}" in output, (policy, output[-5000:])
        assert message in output, (message, output[-5000:])
    assert "no-secret-literals" not in output
