"""The rendered redis.conf, run by a real redis-server: its memory bound and eviction policy.

The config comes from the offline render; only the data directory, the included password file
and the port change (the pod's paths do not exist here, and the local Redis holds 6379).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.rendering import evaluate
from tests.support.servers import free_port, require_service
from tests.support.tools import require_module

redis_client = require_module("redis", "the workloads dependency group")

MAX_MEMORY = 4 * 2**20
VALUE = "x" * 1024


def _local_conf(rendered: str, work: Path, port: int) -> str:
    (work / "auth.conf").write_text("requirepass contract-password\n")
    replaced = {
        "dir": f"dir {work}",
        "include": f"include {work / 'auth.conf'}",
        "port": f"port {port}",
        "bind": "bind 127.0.0.1",
    }
    lines = [replaced.get(line.split(" ", 1)[0], line) for line in rendered.splitlines()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_service("Redis", "MLOPS_TEST_REDIS_HOST")
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not on PATH: run ./scripts/install-prerequisites.sh"
    rendering = evaluate({"redis": {"maxMemory": "4Mi"}})
    rendered = rendering.find("ConfigMap", "redis-config").inputs["data"]["redis.conf"]
    work = tmp_path_factory.mktemp("redis")
    port = free_port()
    (work / "redis.conf").write_text(_local_conf(rendered, work, port))
    process = subprocess.Popen(
        [binary, str(work / "redis.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    client = redis_client.Redis(port=port, password="contract-password")
    try:
        for _ in range(60):
            try:
                client.ping()
                break
            except redis_client.exceptions.ConnectionError:
                assert process.poll() is None, process.stdout.read().decode()
                time.sleep(0.2)
        yield client
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_rendered_bound_and_policy_are_what_the_server_runs(server: Any) -> None:
    assert server.config_get("maxmemory") == {"maxmemory": str(MAX_MEMORY)}
    assert server.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}


def test_past_the_bound_expiring_keys_go_and_lasting_keys_stay(server: Any) -> None:
    client = server
    lasting = [f"feature:{n}" for n in range(1000)]
    for key in lasting:
        client.set(key, VALUE)
    # Twice the bound of keys with an expiry: the server evicts them to stay under it.
    for n in range(2 * MAX_MEMORY // len(VALUE)):
        client.set(f"expiring:{n}", VALUE, ex=3600)
    assert client.info("stats")["evicted_keys"] > 0
    assert client.info("memory")["used_memory"] <= MAX_MEMORY * 1.05
    assert client.exists(*lasting) == len(lasting)
    # Once only lasting keys are left, a write is refused rather than a feature dropped.
    with pytest.raises(redis_client.exceptions.ResponseError, match="used memory > 'maxmemory'"):
        for n in range(2 * MAX_MEMORY // len(VALUE)):
            client.set(f"feature:more:{n}", VALUE)
    assert client.exists(*lasting) == len(lasting)
