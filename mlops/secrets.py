"""A stack's secrets: generated where a random value will do, supplied by the user (on standard
input, never on a command line) where only they know it, rotated one key at a time."""

from __future__ import annotations

import secrets as random
import subprocess

from infra import config
from mlops import console, stackfile
from mlops.errors import UserError
from mlops.state import StackRecord
from mlops.tools import PulumiTools
from mlops.workspace import environment

SECRET_KEYS = frozenset(key for _, key, _ in config.SECRETS)


def require_secret_key(key: str) -> None:
    if key not in SECRET_KEYS:
        raise UserError(
            f"{key}: not a secret key of the platform; secret keys: "
            + ", ".join(sorted(SECRET_KEYS))
        )


def generate(kind: str) -> str:
    """A new value of a generated secret: a URL-safe token, or an RSA key (PKCS#1 PEM: flyteadmin
    reads its token signing key with ParsePKCS1PrivateKey)."""
    if kind == "generate":
        return random.token_urlsafe(24)
    if kind == "generate-rsa":
        return subprocess.run(
            ["openssl", "genrsa", "-traditional", "2048"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    raise ValueError(kind)


def set_secret(record: StackRecord, tools: PulumiTools, key: str, value: str) -> None:
    """`pulumi config set --secret`, the value on standard input."""
    result = subprocess.run(
        [
            tools.pulumi,
            "config",
            "set",
            "--secret",
            key,
            "--stack",
            record.stack,
            "--non-interactive",
        ],
        input=value,
        capture_output=True,
        text=True,
        env={**_base_env(), **environment(record, tools)},
        check=False,
    )
    if result.returncode != 0:
        raise UserError(f"setting {key} on stack {record.stack}: {result.stderr.strip()}")


def get_secret(record: StackRecord, tools: PulumiTools, key: str) -> str:
    result = subprocess.run(
        [tools.pulumi, "config", "get", key, "--stack", record.stack, "--non-interactive"],
        capture_output=True,
        text=True,
        env={**_base_env(), **environment(record, tools)},
        check=False,
    )
    if result.returncode != 0:
        raise UserError(f"stack {record.stack} has no {key}: {result.stderr.strip()}")
    return result.stdout.removesuffix("\n")


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def missing_supplied(stack: str) -> list[str]:
    """The secrets only the user can give (external services, a registry token) that the
    stack still lacks."""
    return [k for k, a in stackfile.secret_plan(stackfile.read(stack)).items() if a == "supply"]


def supply_message(stack: str, keys: list[str]) -> str:
    lines = [
        f"stack {stack} needs credentials only you know (external services, a registry token):"
    ]
    lines += [f'printf %s "$VALUE" | mlops secrets set {stack} {key}' for key in keys]
    return "\n  ".join(lines)


def bootstrap(record: StackRecord, tools: PulumiTools) -> list[str]:
    """Generates every missing generated secret; the keys it generated. Refuses, before
    generating anything, when a secret only the user knows is missing."""
    plan = stackfile.secret_plan(stackfile.read(record.stack))
    supply = [key for key, action in plan.items() if action == "supply"]
    if supply:
        raise UserError(supply_message(record.stack, supply))
    generated = []
    for key, action in plan.items():
        if action.startswith("generate"):
            set_secret(record, tools, key, generate(action))
            generated.append(key)
    if generated:
        console.say(f"{record.stack}: generated {', '.join(generated)}")
    return generated
