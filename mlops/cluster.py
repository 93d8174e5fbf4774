"""Which cluster a stack deploys to, and getting it ready.

A stack is pinned to one kube context (`kubernetes:context` in its config, recorded at its first
`mlops up`); every later command uses that context, whatever the current one is, and refuses
another. Two stacks bring their own cluster when they have none yet:
  kind  a kind cluster named mlops-kind (needs Docker), the project's images loaded into it;
  ci    the local control plane (scripts/local-cluster.sh: kube-apiserver and kwok, which fakes
        pods Ready and runs no container) with KServe's controller as a local process.
Any other stack deploys to the kube context given with --context at its first `up`.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlops import console, kube, tools
from mlops.errors import UserError
from mlops.paths import ROOT, SCRIPTS
from mlops.stackfile import StackFile
from mlops.state import state_dir

KIND = "kind"
LOCAL = "local"
CONTEXT = "context"
# The stacks that bring their own cluster, and which.
OWN_CLUSTER = {"kind": KIND, "ci": LOCAL}
KIND_CONFIG = SCRIPTS / "kind-cluster.yaml"
CONTEXT_KEY = "kubernetes:context"


@dataclass(frozen=True)
class Target:
    """Where a stack deploys: the kind of cluster, its context and its kubeconfig (None: the
    user's own)."""

    cluster: str
    context: str
    kubeconfig: str | None = None

    def describe(self) -> str:
        if self.cluster == KIND:
            return f"kind cluster {kind_cluster(self.context)} (context {self.context})"
        if self.cluster == LOCAL:
            return (
                "the local control plane (kwok plays the kubelet: objects are created, no "
                "container runs)"
            )
        return f"kube context {self.context}"


def kind_context(stack: str) -> str:
    return f"kind-mlops-{stack}"


def kind_cluster(context: str) -> str:
    return context.removeprefix("kind-")


def local_kubeconfig() -> Path:
    """Where scripts/local-cluster.sh writes the local control plane's kubeconfig."""
    base = os.environ.get("MLOPS_LOCAL_CLUSTER_DIR") or str(state_dir() / "local-cluster")
    return Path(base) / "clusters" / "mlops-local" / "kubeconfig.yaml"


LOCAL_CONTEXT = "kwok-mlops-local"


def resolve(
    stack_file: StackFile,
    pinned: Target | None,
    requested: str | None,
    docker: bool,
) -> Target:
    """The target of `mlops up`: the pinned one (a different --context is refused), else the
    requested context, else the stack's own cluster. Checks what it can before anything is
    made."""
    stack = stack_file.stack
    in_file = stack_file.values.get(CONTEXT_KEY)
    pin = pinned.context if pinned else in_file
    if requested and pin and requested != pin:
        raise UserError(
            f"stack {stack} is pinned to kube context '{pin}', not '{requested}': deploy it "
            f"there (mlops up {stack}), or move it: mlops down {stack}, then "
            f'pulumi config rm {CONTEXT_KEY} --stack {stack} (after eval "$(mlops env {stack})")'
        )
    if pinned is not None:
        return pinned
    own = OWN_CLUSTER.get(stack)
    context = requested or in_file
    if context:
        if own == KIND and context == kind_context(stack):
            return _kind_target(stack, docker)
        if own == LOCAL and context == LOCAL_CONTEXT:
            return Target(LOCAL, LOCAL_CONTEXT, str(local_kubeconfig()))
        known = kube.contexts()
        if context not in known:
            raise UserError(
                f"kube context '{context}' is not in your kubeconfig "
                f"({', '.join(str(p) for p in kube.kubeconfig_paths())}); contexts: "
                f"{', '.join(known) or 'none'}"
            )
        return Target(CONTEXT, context)
    if own == KIND:
        return _kind_target(stack, docker)
    if own == LOCAL:
        return Target(LOCAL, LOCAL_CONTEXT, str(local_kubeconfig()))
    current = kube.current_context()
    raise UserError(
        f"stack {stack} is not pinned to a cluster yet: give the kube context to deploy it to, "
        f"mlops up {stack} --context <name> (current context: {current or 'none'}; contexts: "
        f"{', '.join(kube.contexts()) or 'none'})"
    )


def _kind_target(stack: str, docker: bool) -> Target:
    if not docker:
        raise UserError(
            f"stack {stack} runs on a kind cluster, and no Docker engine answers (docker info): "
            "start Docker, or stand the platform up on the local control plane instead: "
            "mlops up ci"
        )
    return Target(KIND, kind_context(stack))


def prepare(target: Target) -> None:
    """Makes the target's cluster exist and answer: a kind cluster is created, the local control
    plane (and its toolchain) built and started; a user's context must answer already."""
    if target.cluster == KIND:
        _kind_up(kind_cluster(target.context))
    elif target.cluster == LOCAL:
        _local_up()


def _kind_up(name: str) -> None:
    binary = tools.kind()
    clusters = subprocess.run(
        [binary, "get", "clusters"], capture_output=True, text=True, check=False
    ).stdout.split()
    if name in clusters:
        return
    with console.step(f"creating kind cluster {name}"):
        _run(
            [
                binary,
                "create",
                "cluster",
                "--name",
                name,
                "--config",
                str(KIND_CONFIG),
                "--wait",
                "300s",
            ]
        )


def build_toolchain() -> None:
    """The control-plane toolchain, built when missing (about 30 minutes the first time),
    its progress shown line by line."""
    if tools.toolchain_env() is not None:
        return
    console.say(
        "building the control-plane toolchain from the Go module proxy (about 30 minutes the "
        "first time)"
    )
    process = subprocess.Popen(
        [str(SCRIPTS / "toolchain.sh"), "build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**_env(), "MLOPS_TOOLCHAIN_TRIM": "1"},
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(("build", "built", "pins", "toolchain", "summary", "  ")):
            console.err.print(f"  {line.rstrip()}")
    if process.wait() != 0 or tools.toolchain_env() is None:
        raise UserError(
            "the control-plane toolchain could not be built (scripts/toolchain.sh; its logs are "
            "under the toolchain directory's logs/); it needs Go 1.26 and the Go module proxy"
        )


def _local_up() -> None:
    build_toolchain()
    with console.step("starting the local control plane"):
        _run([str(SCRIPTS / "local-cluster.sh"), "up"])
    with console.step("starting the KServe controller"):
        _run([str(SCRIPTS / "kserve-controller.sh"), "up"])


def teardown(target: Target) -> None:
    """Removes a cluster mlops made (kind) or stops the local control plane."""
    if target.cluster == KIND:
        with console.step(f"deleting kind cluster {kind_cluster(target.context)}"):
            _run([tools.kind(), "delete", "cluster", "--name", kind_cluster(target.context)])
    elif target.cluster == LOCAL:
        with console.step("stopping the local control plane"):
            _run([str(SCRIPTS / "kserve-controller.sh"), "down"])
            _run([str(SCRIPTS / "local-cluster.sh"), "down"])


def _env() -> dict[str, str]:
    return dict(os.environ)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise UserError(f"{Path(command[0]).name} {' '.join(command[1:])} failed:\n{tail}")
