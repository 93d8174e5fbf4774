"""What the deploy pipeline (.github/workflows/deploy.yml) needs from GitHub for each stack it
deploys, and `mlops pipeline setup`: the stack's two environments and their secrets, taken from
where they live on this machine. Everything is read and checked before the first write."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

from mlops import cluster, console, github, kube, state, tools
from mlops.errors import UserError
from mlops.paths import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
# Pull-request previews and drift checks run in `<stack>-read`: no reviewers, read-only access.
READ_SUFFIX = "-read"
BACKEND_URL = "PULUMI_BACKEND_URL"
ACCESS_TOKEN = "PULUMI_ACCESS_TOKEN"
PASSPHRASE = "PULUMI_CONFIG_PASSPHRASE"
KUBECONFIG_DATA = "KUBECONFIG_DATA"
SECRET_NAMES = (BACKEND_URL, ACCESS_TOKEN, PASSPHRASE, KUBECONFIG_DATA)
LOOPBACK = ("localhost", "127.0.0.1", "::1")
CLOUD_LOGIN = {"s3": "AWS", "gs": "Google Cloud", "azblob": "Azure"}


def pipeline_stacks() -> list[str]:
    """The stacks deploy.yml promotes, in order: its jobs that deploy in the environment their
    STACK names."""
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    return [
        job["env"]["STACK"]
        for job in jobs
        if job.get("environment") and job.get("environment") == (job.get("env") or {}).get("STACK")
    ]


def reviewed_stack() -> str:
    """The last environment of the promotion (prod): a person approves each deploy to it."""
    return pipeline_stacks()[-1]


def require_pipeline_stack(stack: str) -> None:
    known = pipeline_stacks()
    if stack not in known:
        raise UserError(
            f"{stack}: not a stack the deploy pipeline deploys ({WORKFLOW.relative_to(ROOT)}): "
            + ", ".join(known)
        )


def environments(stack: str) -> tuple[str, str]:
    return stack, stack + READ_SUFFIX


def backend_secret(backend: str | None) -> tuple[str, ...]:
    """The secret that gives a job the stack's backend; either, while the backend is unknown."""
    if backend is None:
        return BACKEND_URL, ACCESS_TOKEN
    return (ACCESS_TOKEN,) if state.is_pulumi_cloud(backend) else (BACKEND_URL,)


def unreachable(record: state.StackRecord) -> str | None:
    """Why a GitHub-hosted runner cannot deploy the stack, or None."""
    if record.cluster in (cluster.KIND, cluster.LOCAL):
        return f"it deploys to a cluster on this machine ({record.cluster})"
    if record.backend.startswith("file://"):
        return f"its backend is a directory on this machine ({record.backend})"
    return None


def stack_file_changed(stack: str) -> bool:
    """Whether stacks/Pulumi.<stack>.yaml differs from the last commit: the pipeline deploys
    the committed one (its pinned context, encryption salt and secrets)."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--", f"stacks/Pulumi.{stack}.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


def reviewers_by_hand(repo: str, stack: str) -> str:
    return (
        f"required reviewers of {stack}: Settings → Environments → {stack} → Required reviewers, "
        "add the people or teams who approve its deploys (up to six), or: gh api --method PUT "
        f"repos/{repo}/environments/{stack} --input reviewers.json with "
        '{"reviewers": [{"type": "User", "id": <gh api users/LOGIN --jq .id>}]}'
    )


def read_kubeconfig_by_hand(repo: str, stack: str) -> str:
    return (
        f"KUBECONFIG_DATA of {stack}{READ_SUFFIX}: a kubeconfig of a ServiceAccount that may only "
        "get, list and watch what the stack deploys (Secrets included: a refresh reads them), "
        "on standard input: base64 -w0 read-only.kubeconfig | gh secret set KUBECONFIG_DATA "
        f"--env {stack}{READ_SUFFIX} --repo {repo}"
    )


@dataclass
class Plan:
    """What `setup` will write: secret values stay in here, never printed."""

    stack: str
    hub: github.GitHub
    create: list[str] = field(default_factory=list)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    by_hand: list[str] = field(default_factory=list)


def kubeconfig_data(record: state.StackRecord) -> tuple[str, list[str]]:
    """The pinned context's kubeconfig, self-contained and base64 (one line, masked whole in
    logs), and what a runner needs besides it."""
    k = kube.Kube(tools.kubectl(), record.context, record.kubeconfig)
    text = k.check("config", "view", "--minify", "--flatten")
    document = yaml.safe_load(text) or {}
    clusters = document.get("clusters") or []
    server = str((clusters[0].get("cluster") or {}).get("server", "")) if clusters else ""
    if not server:
        raise UserError(f"kube context {record.context}: its kubeconfig names no API server")
    if urlparse(server).hostname in LOOPBACK:
        raise UserError(
            f"kube context {record.context} reaches its API server at {server}, on this "
            "machine: a GitHub-hosted runner cannot; nothing was changed"
        )
    needs = []
    for user in document.get("users") or []:
        command = ((user.get("user") or {}).get("exec") or {}).get("command")
        if command:
            needs.append(
                f"the kubeconfig logs in by running {command}: the jobs need it and its cloud "
                "credentials (a login step, docs/deploy.md)"
            )
    return base64.b64encode(text.encode()).decode(), needs


def passphrase_of(record: state.StackRecord, read_stdin: Callable[[], str | None]) -> str:
    """The stack's passphrase: its file here, else standard input (the user's own)."""
    if record.passphrase_file != state.PASSPHRASE_FROM_ENVIRONMENT:
        value = Path(record.passphrase_file).read_text().strip()
    else:
        value = (read_stdin() or "").strip()
    if not value:
        raise UserError(
            f"stack {record.stack}'s secrets passphrase comes from your environment, not a file "
            "mlops keeps: give it on standard input (the one the stack was made with), "
            f'printf %s "$PULUMI_CONFIG_PASSPHRASE" | mlops pipeline setup {record.stack}; '
            "nothing was changed"
        )
    return value


def plan(stack: str, repo: str | None, read_stdin: Callable[[], str | None]) -> Plan:
    """Everything setup needs, read and checked; refuses (UserError) before any write."""
    require_pipeline_stack(stack)
    record = state.load(stack)
    if record is None:
        raise UserError(
            f"stack {stack} has not been deployed from this machine (no {state.record_path(stack)})"
            f": deploy it once with the backend the pipeline will use, PULUMI_BACKEND_URL=<url> "
            f"mlops up {stack} --context <context>; nothing was changed"
        )
    why = unreachable(record)
    if why is not None:
        raise UserError(
            f"stack {stack}: a GitHub-hosted runner cannot deploy it: {why}; deploy it with a "
            "shared backend (PULUMI_BACKEND_URL=s3://..., gs://..., azblob://...) to a cluster "
            "the runners reach; nothing was changed"
        )
    gh = github.find()
    if gh is None:
        raise UserError(f"{github.missing_reason()}: {github.INSTALL}; nothing was changed")
    hub = github.GitHub(gh, github.repository(gh, repo))
    found = Plan(stack, hub)
    values: dict[str, str] = {}
    if state.is_pulumi_cloud(record.backend):
        found.by_hand.append(
            f"{ACCESS_TOKEN} of {stack} and {stack}{READ_SUFFIX}: an organization or team token "
            f"of {record.backend} (not your personal one), on standard input: gh secret set "
            f"{ACCESS_TOKEN} --env <environment> --repo {hub.repo}"
        )
    else:
        values[BACKEND_URL] = record.backend
        scheme = urlparse(record.backend).scheme
        if scheme in CLOUD_LOGIN:
            found.by_hand.append(
                f"the backend {record.backend} needs {CLOUD_LOGIN[scheme]} credentials in the "
                "jobs: a login step before 'Cluster credentials' (docs/deploy.md, OIDC)"
            )
    if state.passphrase_needed(stack, record.backend):
        values[PASSPHRASE] = passphrase_of(record, read_stdin)
    kubeconfig, needs = kubeconfig_data(record)
    found.by_hand += needs
    deploying, reading = environments(stack)
    found.secrets = {deploying: {**values, KUBECONFIG_DATA: kubeconfig}, reading: dict(values)}
    found.by_hand.append(read_kubeconfig_by_hand(hub.repo, stack))
    for name in (deploying, reading):
        existing = hub.environment(name)
        if existing is None:
            found.create.append(name)
        if name == reviewed_stack() and not (existing and existing.reviewers):
            found.by_hand.append(reviewers_by_hand(hub.repo, name))
    if stack_file_changed(stack):
        found.by_hand.append(
            f"commit and push stacks/Pulumi.{stack}.yaml: the pipeline deploys the committed one"
        )
    return found


def apply(found: Plan) -> None:
    """Creates the missing environments, then sets every secret (values on standard input)."""
    for name in found.create:
        found.hub.create_environment(name)
        console.say(f"created environment {name} in {found.hub.repo}")
    for environment, values in found.secrets.items():
        for name, value in values.items():
            found.hub.set_secret(environment, name, value)
        console.say(f"set {', '.join(values)} in environment {environment}")
