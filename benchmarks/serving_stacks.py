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

from benchmarks.host import cpu_limit, cpu_seconds, cpus, peak_memory, pod_network, throttling
from tests.support.kserve import predictor_command, transformer_command
from tests.support.servers import free_port, running_server
from workloads.model_inputs import MODEL_NAME

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVING_BIN = ROOT / ".venv-serving" / "bin"
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


@dataclass(frozen=True)
class Tree:
    """Code to deploy: a label, where its files are, and the bin directories of the
    environments its transformer (group workloads) and predictor (group serving) run in."""

    label: str
    path: Path
    workloads_bin: Path = VENV_BIN
    serving_bin: Path = SERVING_BIN


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
    # The transformer's and the predictor's cgroups, when their CPU limits are applied.
    cgroups: tuple[Path | None, Path | None] = (None, None)

    @property
    def path(self) -> str:
        return f"/v1/models/{MODEL_NAME}:predict"

    @property
    def name(self) -> str:
        return f"{self.label}{' + log' if self.logged else ''}"

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time so far of the transformer (and its writer) and of the predictor."""
        return cpu_seconds(self.pids[0]), cpu_seconds(self.pids[1])

    def peak_memory(self) -> tuple[float, float]:
        """Peak resident memory so far of the transformer (and its writer) and the predictor."""
        return peak_memory(self.pids[0]), peak_memory(self.pids[1])

    def throttled(self) -> tuple[int, int, int, int]:
        """CFS periods run and throttled so far: the transformer's, then the predictor's."""
        return (*throttling(self.cgroups[0]), *throttling(self.cgroups[1]))


def checkout(spec: str, work: Path) -> Tree:
    """A git ref of this repository (its files written below `work`) or a directory, with
    environments from its own lock file when it differs from this checkout's (as its images
    would be built from it)."""
    if Path(spec).is_dir():
        return with_environments(Tree(Path(spec).name, Path(spec).resolve()), work)
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
    return with_environments(Tree(f"{spec} ({commit})" if spec != commit else commit, target), work)


def with_environments(tree: Tree, work: Path) -> Tree:
    locks = ("uv.lock", "pyproject.toml")
    if all((tree.path / f).read_bytes() == (ROOT / f).read_bytes() for f in locks):
        return tree
    bins = []
    for group in ("workloads", "serving"):
        environment = work / f"env-{tree.path.name}-{group}"
        done = subprocess.run(
            ["uv", "sync", "--locked", "--quiet", "--no-default-groups", "--group", group],
            cwd=tree.path,
            env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(environment)},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{tree.label}: uv sync of {group} failed:\n{done.stderr[-2000:]}")
        bins.append(environment / "bin")
    return Tree(tree.label, tree.path, bins[0], bins[1])


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
    predictor_pod: int | None = None,
    limit_cpu: bool = False,
) -> Iterator[list[Stack]]:
    """The tree's predictor and transformers on loopback (with the prediction log when
    `log_env` is given, to a prefix of the tree's own); with `predictor_pod` (an index), the
    predictor in a network namespace of its own, reached over a veth pair; with `limit_cpu`,
    each under its container's CPU limit (both need root)."""
    manifests = rendered(tree)
    home = work / f"stack-{len(list(work.glob('stack-*')))}"
    home.mkdir()
    store = home / "feature_store.yaml"
    store.write_text(loopback_store_config(manifests["store_config"], redis, redis_db))
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    command, predictor_env = predictor_command(
        manifests["runtime"], manifests["isvc"], model_dir, ports, tree.serving_bin, tree.path
    )
    label = tree.label
    stacks = []
    with ExitStack() as running:
        host = "127.0.0.1"
        if predictor_pod is not None:
            namespace, host = running.enter_context(pod_network(predictor_pod))
            command = ["ip", "netns", "exec", namespace, *command]
            predictor_env["MLSERVER_HOST"] = host
            label = f"{tree.label}, predictor pod"
        predictor = f"{host}:{ports['http']}"
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
        isvc = manifests["isvc"]["spec"]
        predictor_group = None
        if limit_cpu:
            limit = cpus(isvc["predictor"]["model"]["resources"]["limits"]["cpu"])
            predictor_group = running.enter_context(
                cpu_limit(predictor_pid, limit, f"{home.name}-predictor")
            )
        for logged in (False, True) if log_env is not None else (False,):
            port = free_port()
            command, container_env = transformer_command(
                manifests["isvc"], predictor, port, tree.workloads_bin / "python"
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
            transformer_group = None
            if limit_cpu:
                limit = cpus(isvc["transformer"]["containers"][0]["resources"]["limits"]["cpu"])
                transformer_group = running.enter_context(
                    cpu_limit(process.pid, limit, f"{home.name}-{part.name}")
                )
            stacks.append(
                Stack(
                    label,
                    logged,
                    port,
                    (process.pid, predictor_pid),
                    store,
                    (transformer_group, predictor_group),
                )
            )
        yield stacks
