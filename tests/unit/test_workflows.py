"""The GitHub Actions workflows, read as GitHub reads them: the promotion chain, environments,
per-stack concurrency, the stack matrix, pinned actions and the Go version of every job that
builds Go tools. actionlint checks their syntax and scripts in the test command."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import versions
from mlops import pipelinesetup

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
STACK_FILES = sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
PROMOTION = ["dev", "staging", "prod"]
# Scripts that build or run Go tools (the toolchain, Prometheus, actionlint, kind, go vet);
# pulumi-cli.sh reads its pin without Go.
GO_SCRIPTS = ("test.sh", "lint.sh", "kind-test.sh", "toolchain.sh")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")
# Every job runs the project's command from the environment setup.sh makes with this group.
MLOPS = ".venv/bin/mlops"
SETUP = "./scripts/setup.sh"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as true.
    document["on"] = document.pop(True, document.get("on"))
    return document


def jobs(name: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load(name)["jobs"]
    return found


def uses_lines() -> list[tuple[str, str]]:
    """Every `uses:` line of every workflow, with its comment."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for line in path.read_text().splitlines():
            match = re.match(r"^\s*(?:- )?uses: (.+)$", line)
            if match:
                found.append((path.name, match.group(1).strip()))
    return found


def runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def needs(job: dict[str, Any]) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def step_index(job: dict[str, Any], command: str) -> int:
    """The index of the step whose script runs `command`."""
    return next(i for i, s in enumerate(job["steps"]) if command in s.get("run", ""))


def deploy_jobs() -> dict[str, dict[str, Any]]:
    """The jobs that run `mlops up`, by the stack they deploy (in file order), with `name`."""
    found = {}
    for name, job in jobs("deploy.yml").items():
        if f'{MLOPS} up "$STACK" --yes' in runs(job):
            found[job["env"]["STACK"]] = {**job, "name": name}
    return found


def test_pushes_promote_dev_then_staging_then_prod() -> None:
    deploys = deploy_jobs()
    assert list(deploys) == PROMOTION
    previous = None
    for stack in PROMOTION:
        job = deploys[stack]
        assert job["if"] == "github.event_name == 'push'"
        assert job["environment"] == stack
        # Each waits for the one before it and deploys the images built once, by digest.
        assert "images" in needs(job)
        if previous is not None:
            assert deploys[previous]["name"] in needs(job)
        else:
            assert needs(job) == ["images"]
        assert job["env"]["WORKLOADS_IMAGE"] == "${{ needs.images.outputs.workloads }}"
        previous = stack


def test_prod_deploys_in_the_prod_environment() -> None:
    assert deploy_jobs()["prod"]["environment"] == "prod"
    # Reviewers are an environment setting: the docs say to require them for prod.
    assert "required reviewers" in (ROOT / "docs" / "deploy.md").read_text().lower()


def test_each_deploy_is_verified_before_the_next_environment() -> None:
    for stack, job in deploy_jobs().items():
        up = step_index(job, f'{MLOPS} up "$STACK"')
        assert step_index(job, f'{MLOPS} verify "$STACK"') > up, stack
        assert not any(s.get("continue-on-error") for s in job["steps"]), stack


def test_each_deploy_checks_its_stack_and_sets_the_images_by_digest_first() -> None:
    """`mlops up` would create a stack its backend lacks, and deploy the images the stack file
    names: the stack is checked and the images of this commit set before it runs."""
    for stack, job in deploy_jobs().items():
        up = step_index(job, f'{MLOPS} up "$STACK"')
        select = step_index(job, f"{MLOPS} pipeline stack")
        assert job["steps"][select]["run"] == f'{MLOPS} pipeline stack "$STACK"', stack
        assert select < up, stack
        images = job["steps"][step_index(job, "images.workloads")]
        assert step_index(job, "images.workloads") < up, stack
        assert 'images.serving "$SERVING_IMAGE"' in images["run"], stack
        for step in (images, job["steps"][up]):
            assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == (
                "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
            )


def test_every_job_runs_mlops_from_the_environment_setup_makes() -> None:
    for name, job in jobs("deploy.yml").items():
        if MLOPS not in runs(job):
            continue
        assert step_index(job, SETUP) < step_index(job, MLOPS), name
        assert "uv run" not in runs(job), name


def test_the_pipeline_commands_read_the_stacks_and_secrets_this_workflow_uses() -> None:
    """`mlops pipeline setup` and `check` derive the stacks from the deploy jobs and name the
    secrets and `-read` environments the jobs use."""
    assert pipelinesetup.pipeline_stacks() == PROMOTION
    assert pipelinesetup.reviewed_stack() == "prod"
    text = (WORKFLOWS / "deploy.yml").read_text()
    used = set(re.findall(r"secrets\.([A-Z_]+)", text)) - {"GITHUB_TOKEN"}
    assert used == set(pipelinesetup.SECRET_NAMES)
    workflow = jobs("deploy.yml")
    for name in ("preview", "drift"):
        assert workflow[name]["environment"] == "${{ matrix.stack }}" + pipelinesetup.READ_SUFFIX


def test_the_preview_runs_in_the_backend_mlops_selected() -> None:
    preview = jobs("deploy.yml")["preview"]
    select = preview["steps"][step_index(preview, f"{MLOPS} pipeline stack")]
    assert select["run"] == (
        f'{MLOPS} pipeline stack "$STACK" --offline-fallback >> "$GITHUB_OUTPUT"'
    )
    (action,) = [s for s in preview["steps"] if s.get("with", {}).get("command") == "preview"]
    assert action["with"]["cloud-url"] == f"${{{{ steps.{select['id']}.outputs.backend }}}}"
    assert action["env"]["PULUMI_CONFIG_PASSPHRASE"] == (
        f"${{{{ steps.{select['id']}.outputs.passphrase || secrets.PULUMI_CONFIG_PASSPHRASE }}}}"
    )


@pytest.mark.parametrize("workflow", ["ci.yml", "deploy.yml", "integration.yml"])
def test_every_script_a_workflow_runs_exists(workflow: str) -> None:
    text = (WORKFLOWS / workflow).read_text()
    for script in re.findall(r"\./(scripts/[\w./-]+\.sh)", text):
        assert (ROOT / script).is_file(), f"{workflow}: {script}"


def test_each_stack_deploys_in_its_own_concurrency_group_without_cancelling() -> None:
    groups = {}
    for name, job in jobs("deploy.yml").items():
        group = job.get("concurrency", {}).get("group", "")
        if group.startswith("pulumi-"):
            groups[name] = job["concurrency"]
    deploys = deploy_jobs()
    assert groups == {
        deploys[stack]["name"]: {"group": f"pulumi-{stack}", "cancel-in-progress": False}
        for stack in PROMOTION
    }


def test_previews_and_drift_checks_never_share_a_deploys_group() -> None:
    """GitHub cancels a pending job when another joins its group: a preview or drift check
    there could cancel a deploy waiting for prod's reviewers."""
    workflow = jobs("deploy.yml")
    assert workflow["preview"]["concurrency"] == {
        "group": "preview-${{ matrix.stack }}-${{ github.event.pull_request.number }}",
        "cancel-in-progress": True,
    }
    assert workflow["drift"]["concurrency"] == {
        "group": "drift-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }


def test_preview_matrix_covers_every_stack_file(tmp_path: Path) -> None:
    workflow = jobs("deploy.yml")
    assert workflow["preview"]["strategy"]["matrix"]["stack"] == (
        "${{ fromJSON(needs.stacks.outputs.all) }}"
    )
    assert workflow["preview"]["if"] == "github.event_name == 'pull_request'"
    # The list step, run as the workflow runs it.
    (step,) = [s for s in workflow["stacks"]["steps"] if s.get("id") == "list"]
    output = tmp_path / "output"
    subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=ROOT,
        env={**os.environ, "GITHUB_OUTPUT": str(output)},
        check=True,
    )
    assert output.read_text() == f"all={json.dumps(STACK_FILES)}\n"
    assert set(PROMOTION) < set(STACK_FILES)


def test_drift_checks_every_deployed_environment() -> None:
    drift = jobs("deploy.yml")["drift"]
    assert drift["strategy"]["matrix"]["stack"] == PROMOTION
    assert "schedule" in load("deploy.yml")["on"]
    assert step_index(drift, f'{MLOPS} pipeline stack "$STACK"') == step_index(
        drift, f'{MLOPS} drift "$STACK"'
    )


@pytest.mark.parametrize("workflow", WORKFLOW_FILES)
def test_third_party_actions_are_pinned_by_commit(workflow: str) -> None:
    lines = [uses for name, uses in uses_lines() if name == workflow]
    assert lines
    for uses in lines:
        assert PINNED.match(uses), f"{workflow}: {uses}"


def test_one_commit_per_action_across_workflows() -> None:
    commits: dict[str, set[str]] = {}
    for _, uses in uses_lines():
        action, _, rest = uses.partition("@")
        commits.setdefault(action, set()).add(rest)
    assert {a: c for a, c in commits.items() if len(c) > 1} == {}


def go_directives() -> dict[str, str]:
    found = {}
    for go_mod in sorted((ROOT / "tools").glob("*/go.mod")):
        match = re.search(r"^go (\S+)$", go_mod.read_text(), re.M)
        assert match, go_mod
        found[go_mod.parent.name] = match.group(1)
    return found


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_the_pinned_go_builds_every_tool_module() -> None:
    pinned = (ROOT / ".go-version").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned)
    for tool, directive in go_directives().items():
        assert version_tuple(pinned) >= version_tuple(directive), tool


@pytest.mark.parametrize("workflow", WORKFLOW_FILES)
def test_jobs_that_build_go_tools_set_up_the_pinned_go_first(workflow: str) -> None:
    for name, job in jobs(workflow).items():
        steps = job.get("steps", [])
        go_steps = [
            i
            for i, s in enumerate(steps)
            if any(f"scripts/{script}" in s.get("run", "") for script in GO_SCRIPTS)
        ]
        if not go_steps:
            continue
        setups = [
            i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/setup-go@")
        ]
        assert setups, f"{workflow} {name}: no setup-go"
        assert setups[0] < go_steps[0], f"{workflow} {name}"
        assert steps[setups[0]]["with"] == {"go-version-file": ".go-version", "cache": False}


def test_ci_runs_the_lints_and_every_tier_as_parallel_jobs() -> None:
    ci = jobs("ci.yml")
    assert "./scripts/lint.sh" in runs(ci["lint"])
    tiers = sorted({p.parent.name for p in (ROOT / "tests").glob("*/test_*.py")})
    for tier in tiers:
        assert f"./scripts/test.sh -m {tier}" in runs(ci[tier]), tier
        assert "needs" not in ci[tier]
    assert load("ci.yml")["env"]["MLOPS_LINT"] == "0"
    assert all(job["timeout-minutes"] <= 90 for job in ci.values())


def test_integration_workflow_only_calls_the_kind_script() -> None:
    (job,) = jobs("integration.yml").values()
    commands = [s["run"] for s in job["steps"] if "run" in s]
    assert commands == ["./scripts/kind-test.sh"]


def test_kind_node_image_is_a_supported_kubernetes_version() -> None:
    cluster = yaml.safe_load((ROOT / "scripts" / "kind-cluster.yaml").read_text())
    (node,) = cluster["nodes"]
    match = re.fullmatch(r"kindest/node:v(\d+\.\d+)\.\d+@sha256:[0-9a-f]{64}", node["image"])
    assert match, node["image"]
    assert match.group(1) == versions.KUBERNETES_VERSIONS[-1]
