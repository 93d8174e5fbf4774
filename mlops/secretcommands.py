"""`mlops secrets`: a stack's secrets, generated where a random value will do and otherwise
read from standard input, never from a command line (where a shell's history and the process
list would keep them)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mlops import console
from mlops.arguments import Stack, Yes
from mlops.errors import UserError

secrets_app = typer.Typer(
    help="A stack's secrets: generate, set, read, rotate.", no_args_is_help=True
)


@secrets_app.command("bootstrap")
def secrets_bootstrap(stack: Stack) -> None:
    """Generate every missing secret a random value will do for; name the ones only you know."""
    from mlops import deploy, secrets

    record = deploy.record_of(stack)
    secrets.bootstrap(record, deploy.pulumi_for(deploy.target_of(record)))


def _read_stdin(key: str) -> str:
    if sys.stdin.isatty():
        raise UserError(
            f"{key}: the value is read from standard input, never the command line: "
            f'printf %s "$VALUE" | mlops secrets set <stack> {key}'
        )
    value = sys.stdin.read().removesuffix("\n")
    if not value:
        raise UserError(f"{key}: standard input was empty")
    return value


def _refuse_value_on_command_line(extra: list[str], key: str) -> None:
    if extra:
        raise UserError(
            f"{key}: a secret is never taken from the command line (it would stay in your shell "
            "history and the process list): give it on standard input, "
            f'printf %s "$VALUE" | mlops secrets set <stack> {key}; nothing was changed'
        )


SecretKey = Annotated[str, typer.Argument(help="the secret's config key, e.g. redisPassword")]
Extra = Annotated[list[str] | None, typer.Argument(hidden=True)]


@secrets_app.command("set")
def secrets_set(stack: Stack, key: SecretKey, value: Extra = None) -> None:
    """Set one secret, its value read from standard input."""
    from mlops import deploy, secrets

    _refuse_value_on_command_line(value or [], key)
    secrets.require_secret_key(key)
    record = deploy.record_of(stack)
    secrets.set_secret(record, deploy.pulumi_for(deploy.target_of(record)), key, _read_stdin(key))
    console.say(f"{stack}: set {key}; apply it with mlops up {stack}")


@secrets_app.command("get")
def secrets_get(stack: Stack, key: SecretKey) -> None:
    """Print one secret (for a shell's command substitution)."""
    from mlops import deploy, secrets

    secrets.require_secret_key(key)
    record = deploy.record_of(stack)
    sys.stdout.write(
        secrets.get_secret(record, deploy.pulumi_for(deploy.target_of(record)), key) + "\n"
    )


@secrets_app.command("rotate")
def secrets_rotate(
    stack: Stack,
    key: SecretKey,
    value: Extra = None,
    generate: Annotated[
        bool, typer.Option(help="generate the new value instead of reading it")
    ] = False,
    apply: Annotated[bool, typer.Option(help="run mlops up after setting it")] = True,
    yes: Yes = False,
) -> None:
    """Replace one secret (from standard input, or --generate) and apply it: its init Jobs
    re-run and the pods that read it roll (docs/security.md)."""
    from infra import config
    from mlops import deploy, secrets

    _refuse_value_on_command_line(value or [], key)
    secrets.require_secret_key(key)
    record = deploy.record_of(stack)
    pulumi = deploy.pulumi_for(deploy.target_of(record))
    if generate:
        marker = next(m for _, k, m in config.SECRETS if k == key)
        if not marker.generated:
            raise UserError(f"{key}: only you know this credential; give it on standard input")
        new = secrets.generate("generate-rsa" if marker.kind == "rsa" else "generate")
    else:
        new = _read_stdin(key)
    secrets.set_secret(record, pulumi, key, new)
    console.say(f"{stack}: rotated {key}")
    if apply:
        deploy.up(stack, yes=yes)
