"""The pipeline scripts' behaviour where no cluster, Docker or backend is needed to see it."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from infra import versions

ROOT = Path(__file__).resolve().parents[2]


def fake_bin(tmp_path: Path, **commands: str) -> Path:
    """A directory of stand-in commands (name -> shell body), put first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in commands.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def run(script: str, *args: str, path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{path}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_kind_test_stops_before_creating_anything_without_docker(tmp_path: Path) -> None:
    stack_file = ROOT / "stacks" / "Pulumi.kind.yaml"
    before = stack_file.read_text()
    # A `docker` whose engine does not answer, and a `kind` that records any call.
    calls = tmp_path / "kind-calls"
    path = fake_bin(
        tmp_path,
        docker="echo 'Cannot connect to the Docker daemon' >&2; exit 1",
        kind=f'echo "$@" >> {calls}',
    )
    artifacts = tmp_path / "artifacts"
    result = run("kind-test.sh", path=path, MLOPS_KIND_ARTIFACTS=str(artifacts))
    assert result.returncode == 2, result.stderr
    assert "no Docker engine answers (docker info)" in result.stderr
    assert "Nothing was created." in result.stderr
    assert "./scripts/test.sh -m integration" in result.stderr
    assert not calls.exists() and not artifacts.exists()
    assert stack_file.read_text() == before


def test_images_refuses_to_build_without_docker(tmp_path: Path) -> None:
    path = fake_bin(tmp_path, docker="exit 1")
    result = run("images.sh", "build", "kind", path=path)
    assert result.returncode == 1
    assert "no Docker engine answers" in result.stderr


def test_pulumi_cli_version_is_the_toolchain_pin() -> None:
    result = run("pulumi-cli.sh", "version", path=ROOT)
    assert result.returncode == 0, result.stderr
    go_mod = (ROOT / "tools" / "pulumi" / "go.mod").read_text()
    assert f"github.com/pulumi/pulumi/pkg/v3 v{result.stdout.strip()} " in go_mod


def test_images_builds_each_target_under_its_stack_reference_and_loads_it(tmp_path: Path) -> None:
    """What up.sh does on a kind context: one build per Dockerfile target, tagged with the
    reference the stack runs, then `kind load` into that cluster (docker, kind and the go that
    would build kind are stand-ins recording their calls)."""
    calls = tmp_path / "calls"
    path = fake_bin(
        tmp_path,
        docker=f'echo "docker $*" >> {calls}',
        kind=f'echo "kind $*" >> {calls}',
        go=f'echo "{tmp_path}/bin/kind"',
    )
    result = run("images.sh", "load", "dev", "mlops-dev", path=path)
    assert result.returncode == 0, result.stderr
    revision = (
        subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        or "unknown"
    )
    workloads, serving = versions.WORKLOADS_IMAGE, versions.SERVING_IMAGE
    build = (
        "docker build --file workloads/Dockerfile --target {} --build-arg REVISION={} --tag {} ."
    )
    assert [c for c in calls.read_text().splitlines() if c != "docker info"] == [
        build.format("workloads", revision, workloads),
        build.format("serving", revision, serving),
        f"kind load docker-image {workloads} --name mlops-dev",
        f"kind load docker-image {serving} --name mlops-dev",
    ]
