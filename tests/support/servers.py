"""Local servers for the contract and workload tiers: their settings from the environment
(`./scripts/services.sh env`), rendered commands run against them, and server lifecycles."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops import render
from tests.support.rendering import pod_container, secret_data


def require_service(name: str, variable: str) -> str:
    """A local test server's setting; skipped without it, unless the test command requires it."""
    value = os.environ.get(variable)
    if value:
        return value
    message = f"no local {name} ({variable} unset): run ./scripts/services.sh start"
    if os.environ.get("MLOPS_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


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


def exposed_series(exposition: str) -> set[str]:
    """The series names in a Prometheus text exposition."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


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
                # A server still starting may accept and then answer slowly (TimeoutError).
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, f"{command[0]} did not become healthy"
                time.sleep(0.5)
            yield process
        finally:
            process.terminate()
            process.wait(timeout=60)
