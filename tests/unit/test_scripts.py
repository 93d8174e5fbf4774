"""The scripts' behaviour where no cluster, Docker or backend is needed to see it."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

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


def test_kubeconfig_writes_yaml_or_base64_privately_and_exports_it(tmp_path: Path) -> None:
    kubeconfig = "apiVersion: v1\nkind: Config\nclusters: []\n"
    for data in (kubeconfig, __import__("base64").b64encode(kubeconfig.encode()).decode()):
        github_env = tmp_path / "github-env"
        github_env.write_text("")
        result = run(
            "kubeconfig.sh",
            path=tmp_path,
            KUBECONFIG_DATA=data,
            RUNNER_TEMP=str(tmp_path),
            GITHUB_ENV=str(github_env),
        )
        assert result.returncode == 0, result.stderr
        written = tmp_path / "kubeconfig"
        assert written.read_text().strip() == kubeconfig.strip()
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        assert github_env.read_text() == f"KUBECONFIG={written}\n"
        assert data not in result.stderr


def test_kubeconfig_refuses_what_is_not_a_kubeconfig(tmp_path: Path) -> None:
    result = run(
        "kubeconfig.sh",
        path=tmp_path,
        KUBECONFIG_DATA="not: a kubeconfig",
        RUNNER_TEMP=str(tmp_path),
    )
    assert result.returncode == 1
    assert "KUBECONFIG_DATA is not a kubeconfig" in result.stderr


def test_pulumi_cli_version_is_the_toolchain_pin() -> None:
    result = run("pulumi-cli.sh", "version", path=ROOT)
    assert result.returncode == 0, result.stderr
    go_mod = (ROOT / "tools" / "pulumi" / "go.mod").read_text()
    assert f"github.com/pulumi/pulumi/pkg/v3 v{result.stdout.strip()} " in go_mod
