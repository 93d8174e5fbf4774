"""kubectl against one stack's cluster: its kubeconfig and pinned context on every call."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlops.errors import UserError

# The annotation kwok puts on the nodes it fakes: pods there are reported Ready, none runs.
FAKE_NODE = ("kwok.x-k8s.io/node", "fake")


def kubeconfig_paths() -> list[Path]:
    """The user's kubeconfig files ($KUBECONFIG, else ~/.kube/config)."""
    paths = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return [Path(p) for p in paths.split(os.pathsep) if p]


def current_context(paths: list[Path] | None = None) -> str | None:
    """The current context of a kubeconfig list (the first file that sets one wins)."""
    for path in paths or kubeconfig_paths():
        if path.is_file():
            context = (yaml.safe_load(path.read_text()) or {}).get("current-context")
            if context:
                return str(context)
    return None


def contexts(paths: list[Path] | None = None) -> list[str]:
    found: list[str] = []
    for path in paths or kubeconfig_paths():
        if path.is_file():
            for item in (yaml.safe_load(path.read_text()) or {}).get("contexts") or []:
                if item.get("name") and item["name"] not in found:
                    found.append(str(item["name"]))
    return found


def runs_containers(nodes: list[dict[str, Any]]) -> bool:
    """False when no node would run a container: none at all, or every one a kwok fake."""
    key, fake = FAKE_NODE
    return any((n["metadata"].get("annotations") or {}).get(key) != fake for n in nodes)


@dataclass(frozen=True)
class Kube:
    """kubectl with a fixed kubeconfig (None: the user's) and context."""

    kubectl: str
    context: str
    kubeconfig: str | None = None

    def command(self, *args: str) -> list[str]:
        base = [self.kubectl]
        if self.kubeconfig:
            base += ["--kubeconfig", self.kubeconfig]
        return [*base, "--context", self.context, *args]

    def run(
        self, *args: str, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """kubectl with these arguments; the result whatever the exit status."""
        return subprocess.run(
            self.command(*args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, *args: str, timeout: float = 120, input: str | None = None) -> str:
        """kubectl that must succeed; its standard output."""
        result = self.run(*args, timeout=timeout, input=input)
        if result.returncode != 0:
            raise UserError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def get(self, *args: str) -> dict[str, Any]:
        """`kubectl get <args> -o json`, parsed."""
        return json.loads(self.check("get", *args, "-o", "json", timeout=60))  # type: ignore[no-any-return]

    def items(self, *args: str) -> list[dict[str, Any]]:
        """The items of a list get; none when the kind is not served (a CRD not installed)."""
        result = self.run("get", *args, "-o", "json", timeout=60)
        if result.returncode != 0:
            if "the server doesn't have a resource type" in result.stderr:
                return []
            raise UserError(f"kubectl get {' '.join(args)}: {result.stderr.strip()}")
        return list(json.loads(result.stdout).get("items") or [])

    def reachable(self) -> str | None:
        """None when the API server answers /readyz, else why not."""
        try:
            result = self.run("get", "--raw", "/readyz", timeout=30)
        except subprocess.TimeoutExpired:
            return "no answer in 30 s"
        return None if result.returncode == 0 else result.stderr.strip() or "not ready"

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded."""
        return self.check(
            "get",
            "secret",
            name,
            "-n",
            namespace,
            "-o",
            f"go-template={{{{index .data {json.dumps(key)} | base64decode}}}}",
        )

    @contextmanager
    def forward(self, namespace: str, service: str, port: int, local: int = 0) -> Iterator[int]:
        """`kubectl port-forward` to a Service's port on 127.0.0.1; yields the local port
        (`local` 0: a free one)."""
        process = subprocess.Popen(
            self.command(
                "port-forward",
                "-n",
                namespace,
                "--address=127.0.0.1",
                f"service/{service}",
                f"{local or ''}:{port}",
            ),
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
                raise UserError(f"port-forward to {service}:{port} failed: {line}{errors}".strip())
            yield int(match.group(1))
        finally:
            process.terminate()
            process.wait(timeout=10)
