"""The steps a deploy pipeline job runs before Pulumi (.github/workflows/deploy.yml): the
cluster credentials from a GitHub secret, and the stack's backend, which for a preview no
configured backend holds is a throwaway one with generated secrets."""

from __future__ import annotations

import base64
import binascii
import os
import secrets as random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra import config
from mlops import cluster, console, secrets, stackfile, state, tools, workspace
from mlops.errors import UserError
from mlops.paths import STACKS_DIR

# What ties a stack file to the backend it was made in: a throwaway backend cannot read them.
ENCRYPTION_KEYS = ("encryptionsalt", "secretsprovider", "encryptedkey")


def _kubeconfig(text: str) -> bool:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(document, dict) and document.get("kind") == "Config"


def decode_kubeconfig(data: str) -> str:
    """A kubeconfig given as YAML, or as base64 of it (what `mlops pipeline setup` stores)."""
    try:
        decoded = base64.b64decode(data.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    for text in (decoded, data):
        if _kubeconfig(text):
            return text
    raise UserError("KUBECONFIG_DATA is not a kubeconfig (YAML, or base64 of it)")


def write_kubeconfig() -> Path | None:
    """Writes $KUBECONFIG_DATA to a private file and points KUBECONFIG at it for the job's later
    steps ($GITHUB_ENV). Without it, nothing: a login step of the user's may have set
    KUBECONFIG, and a preview without a cluster still shows the plan."""
    data = os.environ.get("KUBECONFIG_DATA", "")
    if not data:
        console.say(f"no KUBECONFIG_DATA: using {os.environ.get('KUBECONFIG') or 'none'}")
        return None
    text = decode_kubeconfig(data)
    path = Path(os.environ.get("RUNNER_TEMP") or tempfile.gettempdir()) / "kubeconfig"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text if text.endswith("\n") else text + "\n")
    github_env = os.environ.get("GITHUB_ENV")
    if github_env:
        with open(github_env, "a") as out:
            out.write(f"KUBECONFIG={path}\n")
    console.say(f"wrote {path}")
    return path


@dataclass(frozen=True)
class Selected:
    """The backend a job's Pulumi steps use, and the passphrase of a throwaway one."""

    backend: str
    passphrase: str | None = None

    def lines(self) -> list[str]:
        """For $GITHUB_OUTPUT."""
        found = [f"backend={self.backend}"]
        return found + ([f"passphrase={self.passphrase}"] if self.passphrase else [])


def select(stack: str, offline_fallback: bool) -> Selected:
    """The configured backend (PULUMI_BACKEND_URL, or Pulumi Cloud with PULUMI_ACCESS_TOKEN),
    which must hold the stack; with `offline_fallback`, a throwaway one where it does not."""
    stack_file = stackfile.read(stack)
    reason = "neither PULUMI_BACKEND_URL nor PULUMI_ACCESS_TOKEN is set"
    if os.environ.get("PULUMI_BACKEND_URL") or os.environ.get("PULUMI_ACCESS_TOKEN"):
        pinned = stack_file.values.get(cluster.CONTEXT_KEY, "")
        record = state.StackRecord(
            stack,
            state.backend_for(stack),
            state.PASSPHRASE_FROM_ENVIRONMENT,
            cluster.CONTEXT,
            pinned,
        )
        try:
            workspace.open_stack(record, tools.pulumi_tools())
        except UserError as error:
            reason = str(error)
        else:
            require_committed_secrets(stack_file)
            console.say(f"stack {stack} in its backend {record.backend}")
            return Selected(record.backend)
    if not offline_fallback:
        raise UserError(
            f"stack {stack} is not in a configured backend ({reason}): set PULUMI_BACKEND_URL "
            "(or PULUMI_ACCESS_TOKEN) and the secrets provider's credentials "
            f"(PULUMI_CONFIG_PASSPHRASE), and deploy it once: mlops up {stack} (docs/deploy.md)"
        )
    console.say(f"stack {stack}: {reason}")
    return throwaway(stack)


def require_committed_secrets(stack_file: stackfile.StackFile) -> None:
    """A deploy from a stack file without its secrets would generate new ones on the runner,
    lost with it, and change every password at each deploy."""
    lacking = [
        k for k, a in stackfile.secret_plan(stack_file).items() if a not in ("set", "unused")
    ]
    if lacking:
        raise UserError(
            f"stacks/Pulumi.{stack_file.stack}.yaml lacks the secrets {', '.join(lacking)}: "
            f"generate them where the stack was deployed from (mlops secrets bootstrap "
            f"{stack_file.stack}) and commit the stack file"
        )


def forget_encryption(stack: str) -> None:
    """Drops what ties the stack file to its own backend (salt, key, encrypted values), so a
    throwaway backend can make its own: on a pipeline runner only, whose checkout is thrown
    away with it."""
    path = STACKS_DIR / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    values = document.get("config") or {}
    encrypted = [k for k, v in values.items() if isinstance(v, dict) and set(v) == {"secure"}]
    if not encrypted and not any(k in document for k in ENCRYPTION_KEYS):
        return
    if os.environ.get("GITHUB_ACTIONS") != "true":
        raise UserError(
            f"{path} holds the encrypted values of a deployed stack, which a throwaway backend "
            "cannot read: the offline fallback replaces them only on a pipeline runner "
            "(GITHUB_ACTIONS=true); here, run it in a copy of the checkout"
        )
    for key in ENCRYPTION_KEYS:
        document.pop(key, None)
    document["config"] = {k: v for k, v in values.items() if k not in encrypted}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def throwaway(stack: str) -> Selected:
    """A file backend in a temporary directory holding the stack with generated secrets (and
    placeholders for those only their owner knows): a preview validates the config and shows
    the whole plan, and nothing is deployed."""
    passphrase = random.token_urlsafe(24)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        # On standard error: the job sends standard output to $GITHUB_OUTPUT.
        print(f"::add-mask::{passphrase}", file=sys.stderr, flush=True)
    forget_encryption(stack)
    directory = tempfile.mkdtemp(prefix=f"mlops-{stack}-", dir=os.environ.get("RUNNER_TEMP"))
    os.environ["PULUMI_CONFIG_PASSPHRASE"] = passphrase
    os.environ.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    record = state.StackRecord(
        stack, f"file://{directory}", state.PASSPHRASE_FROM_ENVIRONMENT, cluster.CONTEXT, ""
    )
    pulumi = tools.pulumi_tools()
    workspace.open_stack(record, pulumi, create=True)
    markers = {key: marker for _, key, marker in config.SECRETS}
    for key, action in stackfile.secret_plan(stackfile.read(stack)).items():
        if action == "supply":
            placeholder = stackfile.PLACEHOLDER.format(key=key)
            secrets.set_secret(record, pulumi, key, markers[key].shape.format(placeholder))
    secrets.bootstrap(record, pulumi)
    console.say(
        f"stack {stack} in a throwaway backend, with generated secrets: nothing is deployed"
    )
    return Selected(record.backend, passphrase)
