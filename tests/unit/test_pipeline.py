"""`mlops pipeline`: setting the deploy pipeline up and checking it against a stand-in `gh` and
`kubectl` that record every call (its arguments and standard input) and keep the repository's
environments and secrets in a directory; the steps its jobs run."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops import state, tools
from mlops.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/platform"
BACKEND = "s3://acme-pulumi-state/mlops"
PASSPHRASE = "passphrase-sentinel-7f3a"
CONTEXT = "acme-dev"
KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- cluster: {{server: 'https://10.20.0.1:6443'}}
  name: {CONTEXT}
contexts:
- context: {{cluster: {CONTEXT}, user: deployer}}
  name: {CONTEXT}
current-context: {CONTEXT}
users:
- name: deployer
  user: {{token: kube-token-sentinel}}
"""

# gh: `auth status` answers $FAKE_GH_AUTH; environments are files under $FAKE_GH/envs, secrets
# files under $FAKE_GH/secrets/<environment>/; every call is a JSON line in $FAKE_GH/calls.
FAKE_GH = """
import json, os, sys
from pathlib import Path
base = Path(os.environ["FAKE_GH"])
argv = sys.argv[1:]
call = {"argv": argv}
if argv[:2] == ["secret", "set"]:
    call["stdin"] = sys.stdin.read()
with open(base / "calls", "a") as log:
    log.write(json.dumps(call) + "\\n")
def option(name):
    return argv[argv.index(name) + 1]
if argv[:2] == ["auth", "status"]:
    sys.exit(int(os.environ.get("FAKE_GH_AUTH", "0")))
if argv[:2] == ["repo", "view"]:
    print("acme/platform")
elif argv[0] == "api":
    path = argv[argv.index("--method") + 2] if "--method" in argv else argv[-1]
    env = base / "envs" / path.split("/")[-1]
    if "--method" in argv:
        env.write_text(json.dumps({"name": env.name, "protection_rules": []}))
    elif env.exists():
        print(env.read_text())
    else:
        print("gh: Not Found (HTTP 404)", file=sys.stderr)
        sys.exit(1)
elif argv[:2] == ["secret", "list"]:
    folder = base / "secrets" / option("--env")
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    print(json.dumps([{"name": n} for n in names]))
elif argv[:2] == ["secret", "set"]:
    folder = base / "secrets" / option("--env")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / argv[2]).write_text(call["stdin"])
"""

# kubectl: its arguments appended to ../kubectl-calls, the context's kubeconfig printed.
FAKE_KUBECTL = """
import sys
from pathlib import Path
base = Path(sys.argv[0]).resolve().parent.parent
with open(base / "kubectl-calls", "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
print((base / "kubeconfig-of-context").read_text(), end="")
"""


def fake_bin(tmp_path: Path, gh: bool = True) -> Path:
    """gh (when asked) and kubectl stand-ins, and git: alone on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "kubeconfig-of-context").write_text(KUBECONFIG)
    scripts = {"kubectl": f"#!{sys.executable}\n{FAKE_KUBECTL}"}
    if gh:
        scripts["gh"] = f"#!{sys.executable}\n{FAKE_GH}"
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    (tmp_path / "gh" / "envs").mkdir(parents=True)
    return bin_dir


def save_record(tmp_path: Path, stack: str, passphrase_file: str | None = None) -> None:
    if passphrase_file is None:
        passphrase_file = str(tmp_path / "passphrase")
        Path(passphrase_file).write_text(PASSPHRASE + "\n")
    record = {
        "stack": stack,
        "backend": BACKEND,
        "passphrase_file": passphrase_file,
        "cluster": "context",
        "context": CONTEXT,
        "kubeconfig": None,
    }
    (tmp_path / "state" / "stacks").mkdir(parents=True, exist_ok=True)
    (tmp_path / "state" / "stacks" / f"{stack}.json").write_text(json.dumps(record))


def mlops(
    tmp_path: Path, *args: str, stdin: str = "", cwd: Path = ROOT, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "GITHUB_"))}
    return subprocess.run(
        [sys.executable, "-m", "mlops", *args],
        cwd=cwd,
        input=stdin,
        env={
            **clean,
            "PATH": str(tmp_path / "bin"),
            "MLOPS_STATE_DIR": str(tmp_path / "state"),
            "FAKE_GH": str(tmp_path / "gh"),
            "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
            "COLUMNS": "300",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def gh_calls(tmp_path: Path) -> list[dict[str, Any]]:
    calls = tmp_path / "gh" / "calls"
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def writes(tmp_path: Path) -> list[dict[str, Any]]:
    return [
        c
        for c in gh_calls(tmp_path)
        if "--method" in c["argv"] or c["argv"][:2] == ["secret", "set"]
    ]


def test_setup_creates_both_environments_and_sets_each_secret_on_stdin(tmp_path: Path) -> None:
    fake_bin(tmp_path)
    save_record(tmp_path, "dev")
    result = mlops(tmp_path, "pipeline", "setup", "dev", "--repo", REPO)
    assert result.returncode == 0, result.stderr
    created = [c["argv"] for c in writes(tmp_path) if "--method" in c["argv"]]
    assert created == [
        ["api", "--method", "PUT", f"repos/{REPO}/environments/{name}", "--silent"]
        for name in ("dev", "dev-read")
    ]
    secrets = {
        (c["argv"][c["argv"].index("--env") + 1], c["argv"][2]): c["stdin"]
        for c in writes(tmp_path)
        if c["argv"][:2] == ["secret", "set"]
    }
    assert secrets == {
        ("dev", "PULUMI_BACKEND_URL"): BACKEND,
        ("dev", "PULUMI_CONFIG_PASSPHRASE"): PASSPHRASE,
        ("dev", "KUBECONFIG_DATA"): base64.b64encode(KUBECONFIG.encode()).decode(),
        ("dev-read", "PULUMI_BACKEND_URL"): BACKEND,
        ("dev-read", "PULUMI_CONFIG_PASSPHRASE"): PASSPHRASE,
    }
    for call in gh_calls(tmp_path):
        assert call["argv"][-2:] == ["--repo", REPO] or call["argv"][0] in ("api", "auth")
        assert not any(PASSPHRASE in arg or "kube-token" in arg for arg in call["argv"])
    # The kubeconfig is the pinned context's, read from kubectl.
    kubectl = (tmp_path / "kubectl-calls").read_text().splitlines()
    assert kubectl == [f"--context {CONTEXT} config view --minify --flatten"]
    assert PASSPHRASE not in result.stdout + result.stderr
    assert "kube-token-sentinel" not in result.stdout + result.stderr
    assert "KUBECONFIG_DATA of dev-read: a kubeconfig of a ServiceAccount" in result.stdout
    assert f"the backend {BACKEND} needs AWS credentials" in result.stdout


def test_setup_of_prod_names_its_required_reviewers_as_left_to_do(tmp_path: Path) -> None:
    fake_bin(tmp_path)
    save_record(tmp_path, "prod")
    result = mlops(tmp_path, "pipeline", "setup", "prod", "--repo", REPO)
    assert result.returncode == 0, result.stderr
    assert "required reviewers of prod: Settings → Environments → prod → Required" in result.stdout
    assert "reviewers of prod-read" not in result.stdout


def test_setup_takes_a_passphrase_from_the_environment_on_stdin(tmp_path: Path) -> None:
    fake_bin(tmp_path)
    save_record(tmp_path, "staging", passphrase_file=state.PASSPHRASE_FROM_ENVIRONMENT)
    result = mlops(tmp_path, "pipeline", "setup", "staging", "--repo", REPO, stdin=PASSPHRASE)
    assert result.returncode == 0, result.stderr
    given = [c["stdin"] for c in writes(tmp_path) if c["argv"][2:3] == ["PULUMI_CONFIG_PASSPHRASE"]]
    assert given == [PASSPHRASE, PASSPHRASE]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no record", "stack dev has not been deployed from this machine"),
        ("gh not logged in", "the GitHub CLI is not logged in (gh auth status failed)"),
        ("gh missing", "the GitHub CLI (gh) is not on PATH"),
        ("passphrase from the environment", "give it on standard input"),
        ("a cluster on this machine", "a GitHub-hosted runner cannot deploy it"),
    ],
)
def test_setup_refuses_before_any_write(tmp_path: Path, case: str, message: str) -> None:
    fake_bin(tmp_path, gh=case != "gh missing")
    if case == "passphrase from the environment":
        save_record(tmp_path, "dev", passphrase_file=state.PASSPHRASE_FROM_ENVIRONMENT)
    elif case != "no record":
        save_record(tmp_path, "dev")
    if case == "a cluster on this machine":
        path = tmp_path / "state" / "stacks" / "dev.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "cluster": "kind"}))
    auth = "1" if case == "gh not logged in" else "0"
    result = mlops(tmp_path, "pipeline", "setup", "dev", "--repo", REPO, FAKE_GH_AUTH=auth)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "nothing was changed" in result.stderr
    assert writes(tmp_path) == []


def test_check_reports_what_is_missing_and_exits_1(tmp_path: Path) -> None:
    fake_bin(tmp_path)
    # dev: both environments with every secret; the others: nothing yet.
    for name in ("dev", "dev-read"):
        (tmp_path / "gh" / "envs" / name).write_text(json.dumps({"name": name}))
        folder = tmp_path / "gh" / "secrets" / name
        folder.mkdir(parents=True)
        for secret in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "KUBECONFIG_DATA"):
            (folder / secret).write_text("x")
    result = mlops(tmp_path, "pipeline", "check", "--repo", REPO)
    assert result.returncode == 1, result.stderr
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.stdout.splitlines()]
    found = {(r[0], r[1]): r[2] for r in rows if len(r) == 4}
    assert found[("dev", "environment dev-read")] == "ok"
    assert found[("dev", "secrets of dev")] == "ok"
    assert found[("staging", "environment staging")] == "missing"
    assert found[("prod", "environment prod-read")] == "missing"
    assert found[("prod", "pinned to a kube context")] == "missing"
    assert found[("prod", "stack in its backend")] == "missing"
    assert found[("prod", "reviewers of prod")] == "missing"
    assert "mlops pipeline setup staging" in result.stdout
    assert "required reviewers of prod: Settings → Environments → prod" in result.stdout
    assert "PULUMI_BACKEND_URL=<url> mlops up prod --context <context>" in result.stdout
    # Nothing is written by a check.
    assert writes(tmp_path) == []


def test_check_without_gh_names_each_check_it_could_not_make(tmp_path: Path) -> None:
    fake_bin(tmp_path, gh=False)
    result = mlops(tmp_path, "pipeline", "check")
    assert result.returncode == 1, result.stderr
    unchecked = [line for line in result.stdout.splitlines() if "not checked" in line]
    for stack in ("dev", "staging", "prod"):
        for need in (f"environment {stack}", f"secrets of {stack}-read"):
            assert any(need in line for line in unchecked), need
    assert any("reviewers of prod" in line for line in unchecked)
    assert "the GitHub CLI (gh) is not on PATH" in result.stdout
    assert "install the GitHub CLI (https://cli.github.com) and log in" in result.stdout
    assert "Settings → Environments → prod → Required reviewers" in result.stdout
    assert (
        "Settings → Environments → dev-read → Environment secrets: PULUMI_BACKEND_URL or "
        "PULUMI_ACCESS_TOKEN and PULUMI_CONFIG_PASSPHRASE and KUBECONFIG_DATA" in result.stdout
    )


@pytest.mark.parametrize("encoding", ["yaml", "base64"])
def test_kubeconfig_writes_yaml_or_base64_privately_and_exports_it(
    tmp_path: Path, encoding: str
) -> None:
    fake_bin(tmp_path, gh=False)
    data = KUBECONFIG if encoding == "yaml" else base64.b64encode(KUBECONFIG.encode()).decode()
    github_env = tmp_path / "github-env"
    result = mlops(
        tmp_path,
        "pipeline",
        "kubeconfig",
        KUBECONFIG_DATA=data,
        RUNNER_TEMP=str(tmp_path),
        GITHUB_ENV=str(github_env),
    )
    assert result.returncode == 0, result.stderr
    written = tmp_path / "kubeconfig"
    assert written.read_text() == KUBECONFIG
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert github_env.read_text() == f"KUBECONFIG={written}\n"
    assert "kube-token-sentinel" not in result.stdout + result.stderr


def test_kubeconfig_refuses_what_is_not_a_kubeconfig(tmp_path: Path) -> None:
    fake_bin(tmp_path, gh=False)
    result = mlops(
        tmp_path, "pipeline", "kubeconfig", KUBECONFIG_DATA="not: a kubeconfig", RUNNER_TEMP="/x"
    )
    assert result.returncode == 2
    assert "KUBECONFIG_DATA is not a kubeconfig (YAML, or base64 of it)" in result.stderr


def test_stack_without_a_configured_backend_refuses_unless_offline_fallback(
    tmp_path: Path,
) -> None:
    fake_bin(tmp_path, gh=False)
    result = mlops(tmp_path, "pipeline", "stack", "dev")
    assert result.returncode == 2
    assert (
        "stack dev is not in a configured backend (neither PULUMI_BACKEND_URL nor "
        "PULUMI_ACCESS_TOKEN is set)" in result.stderr
    )
    assert result.stdout == ""


def project_copy(tmp_path: Path) -> Path:
    """The parts of the checkout `mlops` reads, copied: a throwaway stack writes the generated
    secrets into its stack file, which must not be this checkout's."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "pyproject.toml", "uv.lock", ".go-version"):
        shutil.copy(ROOT / name, project / name)
    for name in ("infra", "mlops", "stacks", "scripts", "tools"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".venv").symlink_to(ROOT / ".venv")
    return project


def require_pulumi() -> None:
    try:
        tools.pulumi_tools()
    except UserError as error:
        pytest.skip(f"no Pulumi CLI here: {error}")


def select_stack(
    tmp_path: Path, project: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return mlops(
        tmp_path,
        "pipeline",
        "stack",
        "dev",
        *args,
        cwd=project,
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        RUNNER_TEMP=str(tmp_path),
        **env,
    )


def outputs_of(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def test_stack_offline_fallback_makes_a_throwaway_backend_with_generated_secrets(
    tmp_path: Path,
) -> None:
    require_pulumi()
    fake_bin(tmp_path, gh=False)
    project = project_copy(tmp_path)
    stack_file = project / "stacks" / "Pulumi.dev.yaml"
    before = stack_file.read_text()
    result = select_stack(tmp_path, project, "--offline-fallback", GITHUB_ACTIONS="true")
    outputs = outputs_of(result)
    assert set(outputs) == {"backend", "passphrase"}
    assert outputs["backend"].startswith(f"file://{tmp_path}/mlops-dev-")
    # Masked in the job's log before anything could print it (it goes on to $GITHUB_OUTPUT).
    shown = [line for line in result.stderr.splitlines() if outputs["passphrase"] in line]
    assert shown == [f"::add-mask::{outputs['passphrase']}"]
    assert "nothing is deployed" in result.stderr
    after = stack_file.read_text()
    assert after != before and "encryptionsalt" in after and "secure:" in after
    assert outputs["passphrase"] not in after
    # A stack file that holds a deployed stack's salt and secrets (a fork's pull request on
    # dev): replaced on a runner only, whose checkout goes with it.
    refused = select_stack(tmp_path, project, "--offline-fallback")
    assert refused.returncode == 2
    assert "holds the encrypted values of a deployed stack" in refused.stderr
    assert stack_file.read_text() == after
    again = outputs_of(select_stack(tmp_path, project, "--offline-fallback", GITHUB_ACTIONS="true"))
    assert again["passphrase"] != outputs["passphrase"]
    assert stack_file.read_text() != after


def test_stack_selects_the_configured_backend_that_holds_the_stack(tmp_path: Path) -> None:
    require_pulumi()
    fake_bin(tmp_path, gh=False)
    project = project_copy(tmp_path)
    made = outputs_of(select_stack(tmp_path, project, "--offline-fallback"))
    configured = {
        "PULUMI_BACKEND_URL": made["backend"],
        "PULUMI_CONFIG_PASSPHRASE": made["passphrase"],
    }
    for args in ((), ("--offline-fallback",)):
        result = select_stack(tmp_path, project, *args, **configured)
        assert outputs_of(result) == {"backend": made["backend"]}
        assert f"stack dev in its backend {made['backend']}" in result.stderr


def test_a_kms_or_pulumi_cloud_stack_needs_no_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack file names the secrets provider; only the passphrase one needs
    PULUMI_CONFIG_PASSPHRASE (in the pipeline's secrets, and in `mlops` on a runner)."""
    monkeypatch.setattr(state, "STACKS_DIR", tmp_path)
    files = {
        "kms": "secretsprovider: awskms://alias/pulumi\nencryptedkey: Zm9v\nconfig: {}\n",
        "salted": "encryptionsalt: v1:c2FsdA==:v1:bm9uY2U=:Y2lwaGVy\nconfig: {}\n",
        "new": "config: {}\n",
    }
    for stack, text in files.items():
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(text)
    assert not state.passphrase_needed("kms", BACKEND)
    assert state.passphrase_needed("salted", "https://api.pulumi.com")
    assert not state.passphrase_needed("new", "https://api.pulumi.com")
    assert state.passphrase_needed("new", BACKEND)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    kms = state.StackRecord("kms", BACKEND, state.PASSPHRASE_FROM_ENVIRONMENT, "context", CONTEXT)
    assert state.pulumi_env(kms)["PULUMI_BACKEND_URL"] == BACKEND
    assert state.passphrase_for(BACKEND, "kms") == state.PASSPHRASE_FROM_ENVIRONMENT
    salted = state.StackRecord("salted", BACKEND, kms.passphrase_file, "context", CONTEXT)
    with pytest.raises(UserError, match="set PULUMI_CONFIG_PASSPHRASE"):
        state.pulumi_env(salted)
