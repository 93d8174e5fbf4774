"""Helpers for tests: config built in-test, stack renders under mocks, pod walkers."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from infra import config, render

STACKS = ("dev", "ci", "staging", "prod")

# Secret values no rendered file may contain; each is long and unique so a leak is unambiguous.
SENTINELS: Mapping[str, str] = {key: f"S3NT1NEL-{key}-4f9c2e7a1b" for key in config.SECRET_KEYS}


def raw_config(
    values: Mapping[str, Any], secrets: Mapping[str, str] = SENTINELS
) -> tuple[dict[str, str], frozenset[str]]:
    """Pulumi's raw form of a stack config: `project:key` names, strings, objects as JSON."""
    raw = {
        f"{config.PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in values.items()
    }
    raw.update({f"{config.PROJECT}:{key}": value for key, value in secrets.items()})
    return raw, frozenset(f"{config.PROJECT}:{key}" for key in secrets)


def evaluate(
    values: Mapping[str, Any], secrets: Mapping[str, str] = SENTINELS, stack: str = "test"
) -> render.Rendering:
    raw, secret_keys = raw_config(values, secrets)
    return render.evaluate(stack, raw, secret_keys)


@cache
def stack_rendering(name: str) -> render.Rendering:
    """A stack file's config with sentinel secrets, so leak checks know what to look for."""
    raw, _ = render.stack_config(name)
    plain = {k: v for k, v in raw.items() if k.split(":")[-1] not in config.SECRET_KEYS}
    values = {k.split(":", 1)[1]: v for k, v in plain.items() if k.startswith(config.PROJECT)}
    decoded = {k: v if not v.startswith(("{", "[")) else json.loads(v) for k, v in values.items()}
    return evaluate(decoded, stack=name)


def containers(rendering: render.Rendering) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every container of every pod template: (owner, container, runs to completion).

    Job containers and init containers run to completion; probes do not apply to them.
    """
    for obj in rendering.objects():
        template = _pod_template(obj)
        if template is None:
            continue
        spec = template["spec"]
        owner = f"{obj['kind']}/{obj['metadata']['name']}"
        is_job = obj["kind"] in ("Job", "CronJob")
        for c in spec.get("initContainers", []):
            yield f"{owner}/{c['name']}", c, True
        for c in spec["containers"]:
            yield f"{owner}/{c['name']}", c, is_job


def pod_specs(rendering: render.Rendering) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in rendering.objects():
        template = _pod_template(obj)
        if template is not None:
            yield f"{obj['kind']}/{obj['metadata']['name']}", template["spec"]


def _pod_template(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]  # type: ignore[no-any-return]
    return (
        spec.get("template")
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
        else None
    )


def component_objects(rendering: render.Rendering, component: str) -> list[dict[str, Any]]:
    """Objects labelled as part of one component."""
    return [
        o
        for o in rendering.objects()
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == component
    ]


def unwrap(value: Any) -> Any:
    """A raw input value with Pulumi's secret markers removed (the real values)."""
    if render.is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def secret_data(rendering: render.Rendering, name: str) -> dict[str, str]:
    """The real (unredacted) string data of a Secret, as the program sent it."""
    return unwrap(rendering.find("Secret", name).inputs["stringData"])  # type: ignore[no-any-return]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def require_service(name: str, variable: str) -> str:
    """A local test server's setting; skipped without it, unless the test command requires it."""
    value = os.environ.get(variable)
    if value:
        return value
    message = f"no local {name} ({variable} unset): run ./scripts/services.sh start"
    if os.environ.get("MLOPS_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def require_module(name: str, why: str) -> Any:
    """Imports a module of an optional dependency group; skipped without it, unless the test
    command requires it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"{name} is not installed ({why}): run ./scripts/setup.sh --group workloads"
        if os.environ.get("MLOPS_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)


@dataclass(frozen=True)
class LocalPostgres:
    host: str
    port: int
    user: str
    password: str
    bin: Path

    def psql(
        self,
        sql: str,
        *,
        user: str | None = None,
        password: str | None = None,
        database: str = "postgres",
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PGPASSWORD": password or self.password, "PGCONNECT_TIMEOUT": "5"}
        return subprocess.run(
            [
                str(self.bin / "psql"),
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                f"--host={self.host}",
                f"--port={self.port}",
                f"--username={user or self.user}",
                f"--dbname={database}",
                "--set=ON_ERROR_STOP=1",
                "--command",
                sql,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )

    def query(self, sql: str, database: str = "postgres") -> str:
        result = self.psql(sql, database=database)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


def local_postgres() -> LocalPostgres:
    password_file = require_service("Postgres", "MLOPS_TEST_POSTGRES_PASSWORD_FILE")
    return LocalPostgres(
        host=os.environ["MLOPS_TEST_POSTGRES_HOST"],
        port=int(os.environ["MLOPS_TEST_POSTGRES_PORT"]),
        user=os.environ["MLOPS_TEST_POSTGRES_USER"],
        password=Path(password_file).read_text().strip(),
        bin=Path(os.environ["MLOPS_TEST_PG_BIN"]),
    )


def pod_container(rendering: render.Rendering, kind: str, name: str) -> dict[str, Any]:
    """The first container of a rendered workload's pod template."""
    spec = rendering.find(kind, name).manifest()["spec"]["template"]["spec"]
    return spec["containers"][0]  # type: ignore[no-any-return]


def local_env(
    rendering: render.Rendering, container: Mapping[str, Any], addresses: Mapping[str, str]
) -> dict[str, str]:
    """A container's env as the kubelet would build it (secret references resolved), with
    in-cluster addresses swapped for local ones."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            value = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secret_data(rendering, ref["name"])[ref["key"]]
        for cluster_address, local_address in addresses.items():
            value = value.replace(cluster_address, local_address)
        env[item["name"]] = value
    return env


def run_script_job(
    rendering: render.Rendering,
    name: str,
    tmp_path: Path,
    addresses: Mapping[str, str],
    path: str,
    **overrides: str,
) -> subprocess.CompletedProcess[str]:
    """Runs a rendered script Job (kube.script_job) locally: its ConfigMap script, command and
    env, in-cluster addresses swapped for local ones, tools found on `path`."""
    container = pod_container(rendering, "Job", name)
    script = tmp_path / f"{name}.sh"
    script.write_text(rendering.find("ConfigMap", name).inputs["data"]["run.sh"])
    env = {**local_env(rendering, container, addresses), "HOME": str(tmp_path), **overrides}
    env["PATH"] = f"{path}:{os.environ['PATH']}"
    command = [str(script) if a == "/scripts/run.sh" else a for a in container["command"]]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False
    )


@dataclass(frozen=True)
class LocalS3:
    """The local SeaweedFS server: S3 gateway and the master its shell talks to."""

    endpoint: str
    master: str
    access_key: str
    secret_key: str
    weed: Path


def local_s3() -> LocalS3:
    credentials = require_service("S3 server", "MLOPS_TEST_S3_CREDENTIALS_FILE")
    access_key, secret_key = Path(credentials).read_text().split()
    return LocalS3(
        endpoint=os.environ["MLOPS_TEST_S3_ENDPOINT"],
        master=os.environ["MLOPS_TEST_S3_MASTER"],
        access_key=access_key,
        secret_key=secret_key,
        weed=Path(os.environ["MLOPS_TEST_WEED_BIN"]),
    )


@dataclass(frozen=True)
class LocalRedis:
    host: str
    port: int
    password: str


def local_redis() -> LocalRedis:
    password_file = require_service("Redis", "MLOPS_TEST_REDIS_PASSWORD_FILE")
    return LocalRedis(
        host=os.environ["MLOPS_TEST_REDIS_HOST"],
        port=int(os.environ["MLOPS_TEST_REDIS_PORT"]),
        password=Path(password_file).read_text().strip(),
    )


def _prometheus_binary(name: str, variable: str) -> str:
    override = os.environ.get(variable)
    if override:
        return override
    root = Path(__file__).resolve().parents[1]
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
    return _prometheus_binary("promtool", "MLOPS_PROMTOOL")


def prometheus_server() -> str:
    """The Prometheus server of the pinned version, built like promtool."""
    return _prometheus_binary("prometheus", "MLOPS_PROMETHEUS")


def exposed_series(exposition: str) -> set[str]:
    """The series names in a Prometheus text exposition."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def declared_metrics(rendering: render.Rendering, component: str) -> frozenset[str]:
    """The series a component's telemetry says its targets expose."""
    return next(t.metrics for t in rendering.telemetry if t.component == component)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(
    command: list[str],
    health_url: str,
    work: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts a server, waits until `health_url` answers 200, and stops it afterwards."""
    log_path = work / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(health_url, timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError):
                    pass
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, f"{command[0]} did not become healthy"
                time.sleep(0.5)
            yield process
        finally:
            process.terminate()
            process.wait(timeout=60)
