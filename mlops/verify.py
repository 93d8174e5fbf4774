"""`mlops verify`: the platform checks of tests/integration, run against a deployed stack from
outside and inside its pods (live mode). The deploy pipeline gates each promotion with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlops import cluster, deploy, kube, state
from mlops.errors import UserError
from mlops.paths import ROOT


def kubeconfig_value(record: state.StackRecord) -> str:
    """KUBECONFIG for the stack: the pinned context first, then the kubeconfig holding it."""
    files = [record.kubeconfig] if record.kubeconfig else [str(p) for p in kube.kubeconfig_paths()]
    return os.pathsep.join([str(state.kube_pin_path(record.stack)), *files])


def verify(stack: str, pytest_args: list[str]) -> int:
    """Runs the checks; pytest's exit status. Every check must run where containers run (a
    skipped one fails), so on the local control plane the container checks may skip."""
    record = deploy.record_of(stack)
    k = deploy.kube_of(record)
    # Every check would fail on its own otherwise, none saying why.
    reason = k.reachable()
    if reason is not None:
        raise UserError(
            f"stack {stack}'s kube context {record.context} does not answer: {reason} (set "
            "KUBECONFIG to the kubeconfig that holds it)"
        )
    kubectl = k.kubectl
    requires = "0" if record.cluster == cluster.LOCAL else "1"
    env = {
        **os.environ,
        "MLOPS_VERIFY_STACK": stack,
        "MLOPS_KUBE_CONTEXT": record.context,
        "KUBECONFIG": kubeconfig_value(record),
        "MLOPS_REQUIRE_CONTAINERS": os.environ.get("MLOPS_REQUIRE_CONTAINERS", requires),
        "PATH": os.pathsep.join(
            [str(Path(kubectl).parent), str(Path(sys.executable).parent), os.environ["PATH"]]
        ),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/integration",
        "-m",
        "not lifecycle and not golden_path",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
