"""The serving stacks benchmarks/inference.py compares: one per code tree (the working tree,
and any git ref or directory to compare it with), each deployed as that tree renders it.

A tree's InferenceService (workloads.serving.inference_service), the platform's ServingRuntime
and the transformers' store config (the `feast-client` ConfigMap) are rendered by the tree's
own code, in a subprocess whose imports are that tree's; then the predictor and the transformer
start from those manifests as the golden path starts them (tests/support/kserve.py), with only
hosts, ports, the registry database and Redis's logical database changed for loopback. One
predictor per tree serves its transformers: one without the prediction log, and one with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.kserve import predictor_command, transformer_command
from tests.support.servers import free_port, running_server
from workloads.model_inputs import MODEL_NAME

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVING_BIN = ROOT / ".venv-serving" / "bin"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Run with a tree's code on sys.path: what that tree deploys, as JSON.
RENDER = """
import json
from tests.support.rendering import evaluate
from workloads.serving.inference_service import inference_service
rendering = evaluate({})
store = rendering.find("ConfigMap", "feast-client").manifest()["data"]["feature_store.yaml"]
print(json.dumps({
    "runtime": rendering.find("ServingRuntime", "mlops-mlflow").manifest(),
    "store_config": store,
    "isvc": inference_service("MODEL", "1", "s3://unused"),
}))
""".replace("MODEL", MODEL_NAME)


def cpu_seconds(root: int) -> float:
    """CPU time so far of a process and of every process below it (/proc, Linux)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    family, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        family.update(children)
        frontier = children
    return sum(times.get(pid, 0.0) for pid in family)


@dataclass(frozen=True)
class Tree:
    """Code to deploy: a label and where its files are."""

    label: str
    path: Path


@dataclass
class Stack:
    """One transformer of a tree, its predictor, and the processes whose CPU it uses."""

    label: str
    logged: bool
    port: int
    # The transformer's process (with the writer it starts) and the predictor's.
    pids: tuple[int, int]
    # The store config the transformer reads features with.
    store_config: Path

    @property
    def path(self) -> str:
        return f"/v1/models/{MODEL_NAME}:predict"

    @property
    def name(self) -> str:
        return f"{self.label}{' + log' if self.logged else ''}"

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time so far of the transformer (and its writer) and of the predictor."""
        return cpu_seconds(self.pids[0]), cpu_seconds(self.pids[1])


def checkout(spec: str, work: Path) -> Tree:
    """A git ref of this repository (its files written below `work`) or a directory."""
    if Path(spec).is_dir():
        return Tree(Path(spec).name, Path(spec).resolve())
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", spec],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = work / f"tree-{commit}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryFile() as file:
        file.write(archive)
        file.seek(0)
        with tarfile.open(fileobj=file) as tar:
            tar.extractall(target, filter="data")
    return Tree(f"{spec} ({commit})" if spec != commit else commit, target)


def rendered(tree: Tree) -> dict[str, Any]:
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-c", RENDER],
        cwd=tree.path,
        env={**os.environ, "PYTHONPATH": str(tree.path), "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"rendering {tree.label} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def loopback_store_config(text: str, redis: Any, redis_db: int) -> str:
    """A rendered store config with the online store on the local Redis's benchmark
    database; the registry URL and the passwords stay `${VARIABLE}` references."""
    config = yaml.safe_load(text)
    password = config["online_store"]["connection_string"].split("password=", 1)[1].split(",")[0]
    config["online_store"]["connection_string"] = (
        f"{redis.host}:{redis.port},password={password},db={redis_db}"
    )
    return yaml.safe_dump(config, sort_keys=False)


@contextmanager
def deployed(
    tree: Tree,
    work: Path,
    model_dir: Path,
    env: dict[str, str],
    log_env: dict[str, str] | None,
    redis: Any,
    redis_db: int,
) -> Iterator[list[Stack]]:
    """The tree's predictor and transformers on loopback (with the prediction log when
    `log_env` is given, to a prefix of the tree's own)."""
    manifests = rendered(tree)
    home = work / f"stack-{len(list(work.glob('stack-*')))}"
    home.mkdir()
    store = home / "feature_store.yaml"
    store.write_text(loopback_store_config(manifests["store_config"], redis, redis_db))
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    command, predictor_env = predictor_command(
        manifests["runtime"], manifests["isvc"], model_dir, ports, SERVING_BIN, tree.path
    )
    predictor = f"127.0.0.1:{ports['http']}"
    stacks = []
    with ExitStack() as running:
        (home / "predictor").mkdir()
        process = running.enter_context(
            running_server(
                command,
                f"http://{predictor}/v2/models/{MODEL_NAME}/ready",
                home / "predictor",
                {**env, **predictor_env, "HOME": str(home)},
                timeout=300,
            )
        )
        predictor_pid = process.pid
        for logged in (False, True) if log_env is not None else (False,):
            port = free_port()
            command, container_env = transformer_command(
                manifests["isvc"], predictor, port, VENV_BIN / "python"
            )
            transformer_env = {
                **env,
                **container_env,
                **((log_env or {}) if logged else {}),
                "FEAST_FS_YAML_FILE_PATH": str(store),
                "PYTHONPATH": str(tree.path),
                "HOME": str(home),
            }
            part = home / ("logged" if logged else "transformer")
            part.mkdir()
            process = running.enter_context(
                running_server(
                    command,
                    f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}",
                    part,
                    transformer_env,
                    timeout=300,
                )
            )
            stacks.append(Stack(tree.label, logged, port, (process.pid, predictor_pid), store))
        yield stacks
