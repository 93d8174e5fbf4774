"""Where `mlops` keeps a stack's local state, in one place per machine: the Pulumi backend the
stack lives in, the passphrase its secrets are encrypted with, and the cluster it is pinned to.

    $MLOPS_STATE_DIR (default ${XDG_STATE_HOME:-~/.local/state}/mlops-platform)
      pulumi/                  the local file backend (stacks made without PULUMI_BACKEND_URL)
      passphrase               the generated passphrase of that backend's stacks (mode 0600)
      stacks/<stack>.json      the stack's record (a StackRecord)
      stacks/<stack>.kubeconfig  a kubeconfig whose only setting is the pinned context
      stacks/<stack>.passphrase  the generated passphrase of a stack in a shared backend
      clients/<stack>/         the client settings `mlops connect` writes
      local-cluster/           the local control plane (scripts/local-cluster.sh)
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from mlops.errors import UserError
from mlops.paths import STACKS_DIR

# Where the passphrase of a stack comes from when the environment names none.
PASSPHRASE_FROM_ENVIRONMENT = "environment"


def state_dir() -> Path:
    explicit = os.environ.get("MLOPS_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mlops-platform"


def local_backend() -> str:
    return f"file://{state_dir() / 'pulumi'}"


@dataclass(frozen=True)
class StackRecord:
    """What one stack needs from this machine, written at its first `mlops up`.

    backend: the Pulumi backend URL (file://, s3://, ..., https://api.pulumi.com).
    passphrase_file: the file holding the secrets passphrase, or PASSPHRASE_FROM_ENVIRONMENT
        when PULUMI_CONFIG_PASSPHRASE(_FILE) or a cloud KMS provider supplies it each time.
    cluster: `kind` (a kind cluster mlops made), `local` (the local control plane) or
        `context` (a kube context of the user's); empty with `context` until the first `up`
        pins the stack (its secrets can be set before).
    context: the kube context the stack deploys to.
    kubeconfig: the kubeconfig holding that context, when it is not the user's own.
    """

    stack: str
    backend: str
    passphrase_file: str
    cluster: str
    context: str
    kubeconfig: str | None = None

    @property
    def path(self) -> Path:
        return record_path(self.stack)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        if not self.context:
            return
        pin = kube_pin_path(self.stack)
        pin.write_text(
            f"apiVersion: v1\nkind: Config\ncurrent-context: {json.dumps(self.context)}\n"
        )


def record_path(stack: str) -> Path:
    return state_dir() / "stacks" / f"{stack}.json"


def kube_pin_path(stack: str) -> Path:
    return state_dir() / "stacks" / f"{stack}.kubeconfig"


def clients_dir(stack: str) -> Path:
    return state_dir() / "clients" / stack


def load(stack: str) -> StackRecord | None:
    path = record_path(stack)
    if not path.exists():
        return None
    try:
        return StackRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise UserError(
            f"{path}: not a stack record ({error}); remove it and run mlops up"
        ) from error


def require(stack: str, pinned_context: str | None = None) -> StackRecord:
    """The record of a stack that `mlops up` has deployed from this machine; on a machine with
    none (a pipeline's runner), the one the environment gives: PULUMI_BACKEND_URL (or
    PULUMI_ACCESS_TOKEN), the passphrase or KMS credentials, and the user's kubeconfig with the
    context the stack file pins (or its current one)."""
    found = load(stack)
    if found is not None:
        return found
    if os.environ.get("PULUMI_BACKEND_URL") or os.environ.get("PULUMI_ACCESS_TOKEN"):
        from mlops import kube

        context = pinned_context or kube.current_context()
        if context:
            return StackRecord(
                stack, backend_for(stack), PASSPHRASE_FROM_ENVIRONMENT, "context", context
            )
    raise UserError(
        f"stack {stack} has not been deployed from this machine (no {record_path(stack)}): "
        f"run mlops up {stack}, or set PULUMI_BACKEND_URL to the backend it lives in"
    )


def backend_for(stack: str) -> str:
    """The backend a new stack goes to: PULUMI_BACKEND_URL, Pulumi Cloud when only
    PULUMI_ACCESS_TOKEN is set, else the local file backend."""
    if os.environ.get("PULUMI_BACKEND_URL"):
        return os.environ["PULUMI_BACKEND_URL"]
    if os.environ.get("PULUMI_ACCESS_TOKEN"):
        return "https://api.pulumi.com"
    return local_backend()


def is_pulumi_cloud(backend: str) -> bool:
    """Pulumi Cloud (or a self-hosted Pulumi service): an HTTP(S) backend, not a bucket."""
    return backend.startswith(("https://", "http://"))


def passphrase_needed(stack: str, backend: str) -> bool:
    """Whether the stack's secrets are encrypted with a passphrase. Its stack file says:
    `encryptionsalt` for the passphrase, a `secretsprovider` URL (awskms://, gcpkms://, ...) for
    a cloud KMS; with neither, the stack is new and gets the backend's default provider, Pulumi
    Cloud's own there, the passphrase elsewhere."""
    path = STACKS_DIR / f"Pulumi.{stack}.yaml"
    document = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    provider = document.get("secretsprovider")
    if provider:
        return bool(provider == "passphrase")
    return bool(document.get("encryptionsalt")) or not is_pulumi_cloud(backend)


def passphrase_for(backend: str, stack: str) -> str:
    """The passphrase source of a new stack: the environment's when it sets one (or when the
    stack needs none: a KMS or Pulumi Cloud provider); else a generated file (made once, 0600):
    one for the local backend's stacks, one per stack in a shared backend, which `mlops pipeline
    setup` hands to the pipeline. A stack whose file already holds secrets (made elsewhere)
    needs the passphrase they were made with."""
    if not passphrase_needed(stack, backend):
        return PASSPHRASE_FROM_ENVIRONMENT
    if os.environ.get("PULUMI_CONFIG_PASSPHRASE") or os.environ.get(
        "PULUMI_CONFIG_PASSPHRASE_FILE"
    ):
        return PASSPHRASE_FROM_ENVIRONMENT
    if backend == local_backend():
        path = state_dir() / "passphrase"
    elif _has_encrypted_values(stack):
        raise UserError(
            f"stack {stack}'s file holds secrets encrypted elsewhere: set "
            "PULUMI_CONFIG_PASSPHRASE to the passphrase they were made with"
        )
    else:
        path = state_dir() / "stacks" / f"{stack}.passphrase"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return str(path)


def _has_encrypted_values(stack: str) -> bool:
    path = STACKS_DIR / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text()) if path.exists() else None
    return isinstance(document, dict) and "encryptionsalt" in document


def pulumi_env(record: StackRecord) -> dict[str, str]:
    """The environment every Pulumi command of the stack runs with."""
    env = {"PULUMI_BACKEND_URL": record.backend, "PULUMI_SKIP_UPDATE_CHECK": "true"}
    if record.passphrase_file != PASSPHRASE_FROM_ENVIRONMENT:
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = record.passphrase_file
    elif passphrase_needed(record.stack, record.backend) and not (
        os.environ.get("PULUMI_CONFIG_PASSPHRASE")
        or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    ):
        raise UserError(
            f"stack {record.stack}'s secrets passphrase comes from the environment: set "
            "PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE"
        )
    if record.kubeconfig:
        env["KUBECONFIG"] = record.kubeconfig
    return env
