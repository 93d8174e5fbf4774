"""The cluster the integration tests check, in one of two modes.

Local mode (the default, under ./scripts/test.sh): `mlops up ci`, as a user without Docker runs
it, stands the ci stack up on the local control plane (scripts/local-cluster.sh: kube-apiserver
and kwok, which fakes pods Ready and runs no container) with KServe's controller reconciling
(scripts/kserve-controller.sh); then the platform checks, then the lifecycle tests
(test_kserve_controller.py, test_pulumi_up.py, test_pipeline.py), `mlops down` last.

Live mode (`MLOPS_VERIFY_STACK=<stack>`, as `mlops verify` sets it): nothing is deployed or
destroyed; the checks run against the stack already deployed in the current kube context
(`KUBECONFIG` and `MLOPS_KUBE_CONTEXT` choose another), with the stack's config read from
stacks/Pulumi.<stack>.yaml. Lifecycle tests skip there.

Markers: `containers` (the check needs running containers: it skips where none run, such as
on kwok) and `lifecycle` (deploys, changes or destroys the ci stack: local mode only). With
`MLOPS_REQUIRE_CONTAINERS=1` every skipped test fails instead, so nothing is skipped silently
on a real cluster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import testinfra
from testinfra.host import Host

from infra import config as platform_config
from mlops import kube, stackfile

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOCAL_STACK = "ci"
# Pulumi operations and how long each took, printed at the end of the session.
TIMINGS: list[tuple[str, float]] = []
NO_CONTAINERS = (
    "kwok runs no container: this check runs on a real cluster "
    "(scripts/kind-test.sh or mlops verify)"
)
LIVE_ONLY_CHECKS = "lifecycle tests deploy and destroy the ci stack: local mode only"


def verify_stack() -> str | None:
    """The stack of live mode, or None in local mode."""
    return os.environ.get("MLOPS_VERIFY_STACK") or None


def environment_after(*commands: str) -> dict[str, str]:
    """The environment a shell has after `eval "$(<command>)"` of each command."""
    script = "".join(f'out="$({c})" || exit 1; eval "$out"; ' for c in commands) + "env -0"
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        message = f"no Pulumi toolchain: {result.stderr.strip()} (build it: scripts/toolchain.sh)"
        if os.environ.get("MLOPS_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)


@dataclass
class Cluster:
    """A cluster with the platform deployed, for the checks and the golden path.

    `config` is the stack's validated config (which components are on, the model namespace,
    Flyte's projects and domains); `live` is True in live mode; `containers` says whether
    containers really run (False on kwok). kubectl runs with the cluster's kubeconfig and
    context; every method defaults to the platform namespace.
    """

    stack: str
    config: platform_config.PlatformConfig
    live: bool
    containers: bool
    kubectl_path: str
    env: dict[str, str]
    kubeconfig: str | None = None
    context: str | None = None
    _hosts: dict[tuple[str, str, str], Host] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def _command(self, *args: str) -> list[str]:
        command = [self.kubectl_path]
        if self.kubeconfig:
            command += ["--kubeconfig", self.kubeconfig]
        if self.context:
            command += ["--context", self.context]
        return [*command, *args]

    def kubectl(
        self, *args: str, timeout: int = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """kubectl with these arguments (and `input` on its standard input); the result is
        returned whatever the exit code."""
        return subprocess.run(
            self._command(*args),
            input=input,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def get(self, *args: str) -> dict[str, Any]:
        """`kubectl get <args> -o json`, parsed; a failed get fails the test."""
        result = self.kubectl("get", *args, "-o", "json", timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def secret_value(self, name: str, key: str, namespace: str | None = None) -> str:
        """One key of a Secret, decoded."""
        result = self.kubectl(
            "get",
            "secret",
            name,
            "-n",
            namespace or self.namespace,
            "-o",
            f"go-template={{{{index .data {json.dumps(key)} | base64decode}}}}",
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def pods(self, component: str, namespace: str | None = None) -> list[str]:
        """Names of the running pods of a component (its `app.kubernetes.io/name`)."""
        found = self.get(
            "pods",
            "-n",
            namespace or self.namespace,
            "-l",
            f"app.kubernetes.io/name={component}",
            "--field-selector=status.phase=Running",
        )
        return sorted(p["metadata"]["name"] for p in found["items"])

    def host(self, pod: str, container: str, namespace: str | None = None) -> Host:
        """A testinfra Host inside one container: commands run through `kubectl exec ...
        /bin/sh -c`, so the image needs a shell."""
        ns = namespace or self.namespace
        key = (ns, pod, container)
        if key not in self._hosts:
            query = {"namespace": ns, "container": container}
            if self.kubeconfig:
                query["kubeconfig"] = self.kubeconfig
            if self.context:
                query["context"] = self.context
            self._hosts[key] = testinfra.get_host(f"kubectl://{pod}?{urlencode(query)}")
        return self._hosts[key]

    @contextmanager
    def forward(self, service: str, port: int, namespace: str | None = None) -> Iterator[int]:
        """`kubectl port-forward` to a Service's port; yields the local port on 127.0.0.1."""
        process = subprocess.Popen(
            self._command(
                "port-forward",
                "-n",
                namespace or self.namespace,
                "--address=127.0.0.1",
                f"service/{service}",
                f":{port}",
            ),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if match is None:
                process.kill()
                _, errors = process.communicate(timeout=10)
                raise AssertionError(f"port-forward to {service}:{port} failed: {line}{errors}")
            yield int(match.group(1))
        finally:
            process.terminate()
            process.wait(timeout=10)


@dataclass
class Deployment:
    """A copy of the project that deploys the ci stack with the `mlops` command, keeping its
    state (file backend, passphrase, local control plane) in a directory of its own.

    `env` is what a user's shell holds: the test's environment at first, and after the deploy
    what `eval "$(mlops env ci)"` exports, so plain `pulumi` and `kubectl` reach the stack."""

    project: Path
    env: dict[str, str]
    kubectl: str

    def run(
        self,
        *args: str,
        timeout: int = 900,
        cwd: Path | None = None,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """A command with the deployment's environment (and `env`), in its project (or `cwd`)."""
        return subprocess.run(
            list(args),
            cwd=cwd or self.project,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def mlops(
        self,
        *args: str,
        timeout: int = 1800,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The `mlops` command a user runs, from the project's own environment."""
        started = time.monotonic()
        command = str(self.project / ".venv" / "bin" / "mlops")
        result = self.run(command, *args, timeout=timeout, input=input, env=env)
        if args[0] in ("up", "preview", "down", "status", "drift") or args[:2] == (
            "secrets",
            "rotate",
        ):
            outcome = f"exit {result.returncode}"
            # A secret's command line is named by its key only, whatever else it was given.
            shown = args[:4] if args[0] == "secrets" else args
            TIMINGS.append((f"mlops {' '.join(shown)} ({outcome})", time.monotonic() - started))
        return result

    def pulumi(
        self, *args: str, timeout: int = 900, stack: str = LOCAL_STACK
    ) -> subprocess.CompletedProcess[str]:
        """Plain `pulumi`, as a user runs it after `mlops env`."""
        return self.run("pulumi", *args, "--stack", stack, "--non-interactive", timeout=timeout)

    def get(self, *args: str) -> dict[str, Any]:
        result = self.run(self.kubectl, "get", *args, "-o", "json", timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def shell_after(self, command: str) -> dict[str, str]:
        """The environment a shell has after `eval "$(<command>)"`."""
        script = f'out="$({command})" || exit 1; eval "$out"; env -0'
        result = self.run("bash", "-c", script, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)


# What the project copy holds: everything `mlops up` reads (tools/ keys the toolchain).
PROJECT_FILES = ("Pulumi.yaml", "pyproject.toml", "uv.lock", "README.md")
PROJECT_DIRS = ("infra", "mlops", "scripts", "tools", "policy")


@pytest.fixture(scope="package")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A project copy with its own state directory, ready for `mlops up ci` (not yet run).
    Torn down after the last integration test: `mlops down ci --delete-cluster`."""
    if verify_stack():
        pytest.skip(LIVE_ONLY_CHECKS)
    tools = environment_after("./scripts/toolchain.sh env")
    # A copy of the project, so the stack's secrets and pin do not touch the repository's files;
    # its own .venv holds the Pulumi program and the mlops command, as `uv sync` gives a user.
    project = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, project / name)
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".venv-policy").symlink_to(ROOT / ".venv-policy")
    (project / "stacks").mkdir()
    shutil.copy(ROOT / "stacks" / f"Pulumi.{LOCAL_STACK}.yaml", project / "stacks")
    state = tmp_path_factory.mktemp("state")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PULUMI_", "KUBECONFIG", "MLOPS_", "VIRTUAL_ENV"))
    }
    env.update(MLOPS_STATE_DIR=str(state), UV_PROJECT_ENVIRONMENT=str(project / ".venv"))
    deployment = Deployment(project, env, f"{tools['MLOPS_TOOLCHAIN_DIR']}/bin/kubectl")
    setup = deployment.run("uv", "sync", "--locked", "--no-dev", "--quiet", timeout=600)
    assert setup.returncode == 0, setup.stderr
    try:
        yield deployment
    finally:
        deployment.mlops("down", LOCAL_STACK, "--yes", "--delete-cluster")
        # Stopped even when the stack never came up (down then refuses an unknown stack).
        deployment.run(str(project / "scripts" / "local-cluster.sh"), "down", timeout=300)


@pytest.fixture(scope="package")
def deployed(deployment: Deployment) -> Deployment:
    """The ci stack after `mlops up ci` (the local control plane, the KServe controller, the
    backend, secrets and `pulumi up`), with the user's shell set by `mlops env ci`."""
    up = deployment.mlops("up", LOCAL_STACK, "--yes", timeout=3600)
    assert up.returncode == 0, (up.stdout + up.stderr)[-5000:]
    deployment.env = deployment.shell_after(
        f"{deployment.project / '.venv' / 'bin' / 'mlops'} env {LOCAL_STACK}"
    )
    return deployment


def _stack_config(stack: str) -> platform_config.PlatformConfig:
    """The stack file's config, validated as `pulumi up` would, without the Pulumi CLI."""
    try:
        return stackfile.read(stack).config()
    except platform_config.ConfigError as error:
        pytest.fail(f"MLOPS_VERIFY_STACK={stack}: {error}")


def _runs_containers(cluster: Cluster) -> bool:
    """False when every node is one kwok fakes (no container runs there)."""
    return kube.runs_containers(cluster.get("nodes")["items"])


def _live_cluster(stack: str) -> Cluster:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not on PATH (mlops verify adds the one it runs with)")
    cluster = Cluster(
        stack=stack,
        config=_stack_config(stack),
        live=True,
        containers=True,
        kubectl_path=kubectl,
        env=dict(os.environ),
        context=os.environ.get("MLOPS_KUBE_CONTEXT") or None,
    )
    reached = cluster.kubectl("get", "namespace", cluster.namespace, timeout=30)
    if reached.returncode != 0:
        pytest.fail(
            f"stack {stack}: namespace {cluster.namespace} not reachable in the kube context "
            f"({reached.stderr.strip()})"
        )
    cluster.containers = _runs_containers(cluster)
    return cluster


@pytest.fixture(scope="package")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The cluster under check: the live stack's (live mode) or the freshly deployed ci stack
    on the local control plane (local mode)."""
    stack = verify_stack()
    if stack is not None:
        found = _live_cluster(stack)
    else:
        deployed: Deployment = request.getfixturevalue("deployed")
        found = Cluster(
            stack=LOCAL_STACK,
            config=_stack_config(LOCAL_STACK),
            live=False,
            containers=False,
            kubectl_path=deployed.kubectl,
            env=deployed.env,
        )
    # testinfra's kubectl backend runs `kubectl` from PATH.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{Path(found.kubectl_path).parent}{os.pathsep}{os.environ['PATH']}")
        yield found


@pytest.fixture(autouse=True)
def _needs_what_it_is_marked_for(request: pytest.FixtureRequest) -> None:
    """Skips a `containers` test where no container runs, a `lifecycle` test in live mode."""
    if request.node.get_closest_marker("lifecycle") and verify_stack():
        pytest.skip(LIVE_ONLY_CHECKS)
    if request.node.get_closest_marker("containers"):
        found: Cluster = request.getfixturevalue("cluster")
        if not found.containers:
            pytest.skip(NO_CONTAINERS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Runs the integration tests in the lifecycle's order: the checks on the fresh deploy,
    then the lifecycle tests, the destroy last of all (other tiers' tests keep their places)."""

    def rank(item: pytest.Item) -> int:
        if item.name.startswith("test_destroy"):
            return 2
        return 1 if item.get_closest_marker("lifecycle") else 0

    places = [i for i, item in enumerate(items) if HERE in item.path.resolve().parents]
    ordered = sorted((items[i] for i in places), key=rank)
    for place, item in zip(places, ordered, strict=True):
        items[place] = item


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With MLOPS_REQUIRE_CONTAINERS=1 a skipped integration test fails, saying why it was
    skipped: on a real cluster every check must run."""
    report = yield
    if (
        report.skipped
        and os.environ.get("MLOPS_REQUIRE_CONTAINERS") == "1"
        and HERE in item.path.resolve().parents
        and not hasattr(report, "wasxfail")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (
            "skipped, but MLOPS_REQUIRE_CONTAINERS=1 forbids skips: "
            + reason.removeprefix("Skipped: ")
        )
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints how long the real Pulumi operations took, when the lifecycle ran."""
    if TIMINGS:
        terminalreporter.section("pulumi timings")
        for step, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:7.1f} s  {step}")
