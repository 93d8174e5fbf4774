"""The release workflow (.github/workflows/release.yml), its steps run as GitHub runs them: the
images it pushes for a version tag are the ones every stack runs by default, only a tag that
names the project version releases, and both images are signed by the digests just pushed."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops import stackfile

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
STACKS = sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# The repository the default image references name (infra/versions.py).
UPSTREAM = "mlops-platform/mlops-platform"
BUILD_PUSH = "docker/build-push-action@"
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(RELEASE.read_text())
    # YAML 1.1 reads the key `on` as true.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps() -> list[dict[str, Any]]:
    (job,) = workflow()["jobs"].values()
    found: list[dict[str, Any]] = job["steps"]
    return found


def builds() -> list[dict[str, Any]]:
    return [s for s in steps() if s.get("uses", "").startswith(BUILD_PUSH)]


def run_step(
    step: dict[str, Any], tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """A `run` step as GitHub's bash runs it, and what it wrote to GITHUB_OUTPUT."""
    output = tmp_path / f"output-{step.get('id', 'step')}"
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=ROOT,
        env={**os.environ, "GITHUB_OUTPUT": str(output), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = output.read_text().splitlines() if output.exists() else []
    return result, dict(line.split("=", 1) for line in lines)


def resolve(text: str, outputs: dict[str, dict[str, str]], github: dict[str, str]) -> str:
    """A workflow value with its `${{ steps.<id>.outputs.<name> }}` and `${{ github.<key> }}`
    expressions evaluated; any other expression fails the test."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        step = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
        if step:
            return outputs[step.group(1)][step.group(2)]
        if expression.startswith("github."):
            return github[expression.removeprefix("github.")]
        raise AssertionError(f"no value for the expression {expression!r}")

    return EXPRESSION.sub(value, text)


def release_outputs(tmp_path: Path, repository: str, tag: str) -> dict[str, dict[str, str]]:
    """The outputs of the `run` steps before the first build (the version, the image names)."""
    outputs: dict[str, dict[str, str]] = {}
    for step in steps():
        if step.get("uses", "").startswith(BUILD_PUSH):
            break
        if "run" in step and "id" in step:
            result, outputs[step["id"]] = run_step(
                step, tmp_path, GITHUB_REPOSITORY=repository, GITHUB_REF_NAME=tag
            )
            assert result.returncode == 0, result.stdout + result.stderr
    return outputs


def pushed(tmp_path: Path, repository: str, tag: str) -> dict[str, str]:
    """The reference each workloads/Dockerfile target is pushed under for this tag."""
    outputs = release_outputs(tmp_path, repository, tag)
    github = {"sha": "0" * 40}
    found = {}
    for build in builds():
        inputs = build["with"]
        assert inputs["push"] is True
        assert inputs["file"] == "workloads/Dockerfile"
        (tag_reference,) = resolve(inputs["tags"], outputs, github).split()
        found[inputs["target"]] = tag_reference
    return found


def test_the_release_pushes_exactly_the_images_every_stack_runs_by_default(
    tmp_path: Path,
) -> None:
    images = pushed(tmp_path, UPSTREAM, f"v{VERSION}")
    assert sorted(images) == ["serving", "workloads"]
    for stack in STACKS:
        defaults = stackfile.read(stack).config().images
        assert {"workloads": defaults.workloads, "serving": defaults.serving} == images, stack


def test_image_names_follow_the_repository_in_lowercase(tmp_path: Path) -> None:
    images = pushed(tmp_path, "Acme/ML-Platform", f"v{VERSION}")
    assert images == {
        "workloads": f"ghcr.io/acme/ml-platform-workloads:{VERSION}",
        "serving": f"ghcr.io/acme/ml-platform-serving:{VERSION}",
    }


def test_only_a_pushed_version_tag_starts_a_release() -> None:
    assert workflow()["on"] == {"push": {"tags": ["v*"]}}


@pytest.mark.parametrize("tag", ["v0.0.0-not-the-version", VERSION, f"v{VERSION}.1", "main"])
def test_a_tag_that_is_not_v_and_the_project_version_stops_the_release(
    tag: str, tmp_path: Path
) -> None:
    (check,) = [s for s in steps() if s.get("id") == "version"]
    result, outputs = run_step(check, tmp_path, GITHUB_REF_NAME=tag)
    assert result.returncode == 1
    assert result.stdout == (
        f"::error title=Tag and version differ::tag {tag} is not v{VERSION} (pyproject.toml "
        f"[project] version): tag the release v{VERSION}, or set its version in pyproject.toml "
        "and infra/versions.py (PROJECT_VERSION) first\n"
    )
    assert outputs == {}
    # Nothing is built or pushed after it.
    assert steps().index(check) < min(steps().index(b) for b in builds())


def test_each_image_is_signed_by_the_digest_its_build_pushed(tmp_path: Path) -> None:
    (job,) = workflow()["jobs"].values()
    assert job["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    outputs = release_outputs(tmp_path, UPSTREAM, f"v{VERSION}")
    digests = {}
    for build in builds():
        digests[build["with"]["target"]] = f"sha256:{build['with']['target'][0] * 64}"
        outputs[build["id"]] = {"digest": digests[build["with"]["target"]]}
    (sign,) = [s for s in steps() if "cosign sign" in s.get("run", "")]
    assert steps().index(sign) > max(steps().index(b) for b in builds())
    calls = tmp_path / "cosign-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cosign").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (bin_dir / "cosign").chmod(stat.S_IRWXU)
    summary = tmp_path / "summary"
    ref = f"refs/tags/v{VERSION}"
    env = {key: resolve(value, outputs, {}) for key, value in sign["env"].items()}
    result, _ = run_step(
        sign,
        tmp_path,
        **env,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        GITHUB_STEP_SUMMARY=str(summary),
        GITHUB_REPOSITORY=UPSTREAM,
        GITHUB_REF=ref,
    )
    assert result.returncode == 0, result.stderr
    names = outputs["names"]
    references = [f"{names[target]}@{digests[target]}" for target in ("workloads", "serving")]
    # Keyless: no --key; --yes answers the upload prompt a job cannot.
    assert calls.read_text() == f"sign --yes {' '.join(references)}\n"
    text = summary.read_text()
    for target, reference in zip(("workloads", "serving"), references, strict=True):
        assert f"| {target} | `{reference}` |" in text
    assert (
        f"--certificate-identity https://github.com/{UPSTREAM}/.github/workflows/release.yml@{ref}"
        in text
    )
