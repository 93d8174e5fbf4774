"""The `mlops` command where no cluster, Docker or Pulumi backend is needed to see what it does:
the commands the README gives exist, and bad input ends in one clear message, exit status 2 and
nothing made (no stack record, no backend, no passphrase)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from infra import versions
from mlops import state
from mlops.cli import app

ROOT = Path(__file__).resolve().parents[2]


def fake_bin(tmp_path: Path, **commands: str) -> Path:
    """A directory of stand-in commands (name -> shell body)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in commands.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def mlops(
    tmp_path: Path, *args: str, path: str | None = None, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`mlops` as a user runs it, its state in tmp_path/state."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "MLOPS_", "KUBECONFIG"))
    }
    environment.update(
        MLOPS_STATE_DIR=str(tmp_path / "state"),
        KUBECONFIG=str(tmp_path / "kubeconfig"),
        PATH=path or os.environ["PATH"],
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "mlops", *args],
        cwd=ROOT,
        env=environment,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def made_nothing(tmp_path: Path) -> bool:
    found = tmp_path / "state"
    return not found.exists() or not any(found.rglob("*"))


def refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_stack_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    result = mlops(tmp_path, "up", "nosuch", "--yes")
    refused(result, "no stack file")
    assert "known stacks: ci, dev, kind, prod, staging" in " ".join(result.stderr.split())
    assert made_nothing(tmp_path)


def test_a_pipeline_stack_is_not_deployed_to_whatever_context_is_current(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: prod-cluster\n"
        "contexts: [{name: prod-cluster, context: {cluster: c, user: u}}]\n"
    )
    result = mlops(tmp_path, "up", "dev", "--yes")
    refused(result, "stack dev is not pinned to a cluster yet")
    assert "mlops up dev --context <name> (current context: prod-cluster" in " ".join(
        result.stderr.split()
    )
    assert made_nothing(tmp_path)


def test_an_unknown_context_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    result = mlops(tmp_path, "up", "staging", "--context", "nowhere", "--yes")
    refused(result, "kube context 'nowhere' is not in your kubeconfig")
    assert made_nothing(tmp_path)


def test_a_pinned_stack_refuses_another_context(tmp_path: Path) -> None:
    state_dir = tmp_path / "state" / "stacks"
    state_dir.mkdir(parents=True)
    record = {
        "stack": "staging",
        "backend": f"file://{tmp_path / 'state' / 'pulumi'}",
        "passphrase_file": str(tmp_path / "state" / "passphrase"),
        "cluster": "context",
        "context": "staging-cluster",
        "kubeconfig": None,
    }
    (state_dir / "staging.json").write_text(json.dumps(record))
    before = sorted(p.name for p in (tmp_path / "state").rglob("*"))
    result = mlops(tmp_path, "up", "staging", "--context", "prod-cluster", "--yes")
    refused(result, "stack staging is pinned to kube context 'staging-cluster', not 'prod-cluster'")
    assert sorted(p.name for p in (tmp_path / "state").rglob("*")) == before


def test_the_kind_stack_without_docker_says_what_to_do_and_makes_nothing(tmp_path: Path) -> None:
    path = fake_bin(tmp_path, docker="echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    result = mlops(tmp_path, "up", "kind", "--yes", path=f"{path}:{os.environ['PATH']}")
    refused(result, "stack kind runs on a kind cluster, and no Docker engine answers")
    assert "mlops up ci" in result.stderr
    assert made_nothing(tmp_path)


def test_without_a_stack_up_picks_the_local_control_plane_when_docker_is_missing(
    tmp_path: Path,
) -> None:
    """No Docker and no Go (so no toolchain can be built): `mlops up` says it chose the ci
    stack on the local control plane, then that the toolchain cannot be built."""
    path = fake_bin(tmp_path, docker="exit 1")
    python = Path(sys.executable).parent
    result = mlops(
        tmp_path,
        "up",
        "--yes",
        path=f"{path}:{python}:/usr/bin:/bin",
        MLOPS_TOOLCHAIN_CACHE=str(tmp_path / "toolchain"),
    )
    refused(result, "the control-plane toolchain could not be built")
    assert "no stack given: ci (local cluster on this machine)" in " ".join(result.stderr.split())
    assert not (tmp_path / "state" / "stacks").exists()


def test_a_secret_on_the_command_line_is_refused_and_nothing_is_set(tmp_path: Path) -> None:
    for command in (["secrets", "set"], ["secrets", "rotate"]):
        result = mlops(tmp_path, *command, "dev", "redisPassword", "hunter2-Secret")
        refused(result, "a secret is never taken from the command line")
        assert "hunter2-Secret" not in result.stderr + result.stdout
        assert made_nothing(tmp_path)


def test_an_unknown_secret_key_is_refused_naming_the_keys(tmp_path: Path) -> None:
    result = mlops(tmp_path, "secrets", "set", "dev", "redisPasword", input="value")
    refused(result, "redisPasword: not a secret key of the platform; secret keys:")
    assert "redisPassword" in result.stderr
    assert made_nothing(tmp_path)


def test_commands_on_a_stack_never_deployed_here_say_how_to_deploy_it(tmp_path: Path) -> None:
    for command in ("status", "down", "env", "connect", "drift"):
        result = mlops(tmp_path, command, "prod")
        refused(result, "stack prod has not been deployed from this machine")
        assert "run mlops up prod" in result.stderr
    assert made_nothing(tmp_path)


def test_images_list_names_each_dockerfile_target_and_the_stacks_reference(tmp_path: Path) -> None:
    result = mlops(tmp_path, "images", "list", "dev")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"workloads {versions.WORKLOADS_IMAGE}",
        f"serving {versions.SERVING_IMAGE}",
    ]
    dockerfile = (ROOT / "workloads" / "Dockerfile").read_text()
    stages = {line.split(" AS ")[-1] for line in dockerfile.splitlines() if " AS " in line}
    assert {"workloads", "serving"} <= stages


def test_images_load_builds_each_target_under_its_reference_then_loads_it(tmp_path: Path) -> None:
    """On a kind cluster: one build per Dockerfile target, tagged with the reference the stack
    runs, then `kind load` into the cluster (docker, kind and the go that would build kind are
    stand-ins recording their calls)."""
    calls = tmp_path / "calls"
    path = fake_bin(
        tmp_path,
        docker=f'echo "docker $*" >> {calls}',
        kind=f'echo "kind $*" >> {calls}',
        go=f'echo "{tmp_path}/bin/kind"',
    )
    result = mlops(
        tmp_path, "images", "load", "dev", "mlops-dev", path=f"{path}:{os.environ['PATH']}"
    )
    assert result.returncode == 0, result.stderr
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    build = (
        "docker build --file workloads/Dockerfile --target {} --build-arg REVISION={} --tag {} ."
    )
    workloads, serving = versions.WORKLOADS_IMAGE, versions.SERVING_IMAGE
    assert [c for c in calls.read_text().splitlines() if c != "docker info"] == [
        build.format("workloads", revision or "unknown", workloads),
        build.format("serving", revision or "unknown", serving),
        f"kind load docker-image {workloads} --name mlops-dev",
        f"kind load docker-image {serving} --name mlops-dev",
    ]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl on PATH")
def test_the_pin_file_makes_kubectl_use_the_stacks_context_not_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlops env` puts a kubeconfig holding only the pinned context before the user's own:
    kubectl takes the first current-context it finds, and the rest of the user's config."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    user = tmp_path / "user-kubeconfig"
    user.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\n"
        "clusters: [{name: a, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: prod, context: {cluster: a, user: u}}, "
        "{name: dev, context: {cluster: a, user: u}}]\n"
    )
    record = state.StackRecord("dev", "file:///x", "/x/passphrase", "context", "dev")
    record.save()
    kubeconfig = f"{state.kube_pin_path('dev')}{os.pathsep}{user}"
    current = subprocess.run(
        ["kubectl", "config", "current-context"],
        env={**os.environ, "KUBECONFIG": kubeconfig},
        capture_output=True,
        text=True,
        check=False,
    )
    assert current.stdout.strip() == "dev", current.stderr
    assert "prod" in user.read_text()


def command_tree() -> Any:
    return typer.main.get_command(app)


def find(words: list[str]) -> tuple[Any, list[str]]:
    """The command a line of words names, and the words after it."""
    command = command_tree()
    rest = list(words)
    while rest and rest[0] in getattr(command, "commands", {}):
        command = command.commands[rest.pop(0)]
    return command, rest


def shell_blocks(text: str) -> list[str]:
    """The lines of a Markdown file's shell code blocks (fenced as bash, sh, console or plain)."""
    lines, inside, shell = [], False, False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if not inside:
                shell = line.strip().removeprefix("```") in ("", "bash", "sh", "console")
            inside = not inside
        elif inside and shell:
            lines.append(line)
    return lines


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every `mlops ...` line in the README's and docs' shell code blocks."""
    found = []
    for doc in [
        ROOT / "README.md",
        ROOT / "workloads" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]:
        for line in shell_blocks(doc.read_text()):
            line = line.split("#")[0].strip()
            for match in re.finditer(r"(?:^|[|;&(]\s*|\$\(|/)mlops\s+([^|;&)<>]*)", line):
                found.append((doc.name, match.group(1).split()))
    return found


def test_every_documented_mlops_command_and_flag_exists() -> None:
    documented = documented_commands()
    assert any(words[:1] == ["up"] for _, words in documented), "the README gives no mlops up"
    for doc, words in documented:
        command, rest = find(words)
        assert command is not command_tree(), f"{doc}: mlops {' '.join(words)}: no such command"
        assert not hasattr(command, "commands"), f"{doc}: mlops {' '.join(words)}: incomplete"
        options = {name for p in command.params for name in getattr(p, "opts", [])}
        options |= {name for p in command.params for name in getattr(p, "secondary_opts", [])}
        for word in rest:
            flag = word.split("=")[0]
            if flag.startswith("-"):
                assert flag in options, f"{doc}: mlops {' '.join(words)}: no option {flag}"


def test_the_quickstart_walks_from_a_clone_in_at_most_six_mlops_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quickstart, re.S)
    assert block is not None, "the quickstart has no bash block"
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    commands = [line for line in lines if line]
    assert all(line.startswith(("mlops ", "./scripts/", ". ", "source ")) for line in commands)
    assert len([c for c in commands if c.startswith("mlops ")]) <= 6
    assert any(c.startswith("mlops demo") for c in commands)
