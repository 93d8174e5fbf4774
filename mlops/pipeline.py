"""`mlops pipeline`: the deploy pipeline (.github/workflows/deploy.yml). `setup` and `check`
are a person's, run once per stack from the machine that deployed it; `kubeconfig` and `stack`
are the steps the pipeline's jobs run."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from mlops import console

pipeline_app = typer.Typer(
    help="The deploy pipeline (.github/workflows/deploy.yml): set it up, check it, and the "
    "steps its jobs run.",
    no_args_is_help=True,
)

Repo = Annotated[
    str | None,
    typer.Option(
        "--repo", help="the GitHub repository, owner/name; default: the one this checkout's remote"
    ),
]
PipelineStack = Annotated[
    str, typer.Argument(help="a stack the pipeline deploys: dev, staging, prod")
]
# How each state of pipelinecheck (OK, MISSING, UNCHECKED) is shown.
COLOURS = {"ok": "green", "missing": "red", "not checked": "yellow"}


@pipeline_app.command("check")
def check_command(repo: Repo = None) -> None:
    """What the deploy pipeline needs for each stack, and whether it is there.

    For each stack deploy.yml deploys: the environments <stack> and <stack>-read, their
    secrets and prod's required reviewers (read with gh); the stack pinned to a kube context,
    its secrets committed, the stack in its backend. Exit 1 when something is missing or could
    not be checked."""
    from mlops import pipelinecheck

    items = pipelinecheck.check(repo)
    table = Table(title="the deploy pipeline's needs")
    for column in ("stack", "need", "state", "detail"):
        table.add_column(column)
    for item in items:
        colour = COLOURS[item.state]
        table.add_row(item.stack, item.what, f"[{colour}]{item.state}[/]", item.detail)
    console.out.print(table)
    todo = list(dict.fromkeys(item.todo for item in items if item.state != pipelinecheck.OK))
    if not todo:
        console.out.print("the pipeline has everything it needs")
        return
    console.out.print("left to do:")
    for number, step in enumerate(todo, 1):
        console.out.print(f"  {number}. {step}", markup=False)
    raise typer.Exit(1)


def _stdin() -> str | None:
    return None if sys.stdin.isatty() else sys.stdin.read()


@pipeline_app.command("setup")
def setup_command(stack: PipelineStack, repo: Repo = None) -> None:
    """Create the stack's GitHub environments and set their secrets from this machine.

    With gh: the environments <stack> and <stack>-read, and in them the backend URL and the
    passphrase of the stack's record, and (in <stack> only) KUBECONFIG_DATA, the pinned
    context's kubeconfig. Values go to gh on standard input; a passphrase that comes from your
    environment is read from standard input. Prints what is left to do by hand."""
    from mlops import pipelinesetup

    found = pipelinesetup.plan(stack, repo, _stdin)
    pipelinesetup.apply(found)
    console.out.print(f"left to do by hand (then: mlops pipeline check --repo {found.hub.repo}):")
    for number, step in enumerate(found.by_hand, 1):
        console.out.print(f"  {number}. {step}", markup=False)


@pipeline_app.command("stack")
def stack_command(
    stack: Annotated[str, typer.Argument(help="the stack: stacks/Pulumi.<stack>.yaml")],
    offline_fallback: Annotated[
        bool,
        typer.Option(
            help="when no configured backend holds the stack, a throwaway file backend with "
            "generated secrets (a preview without any cluster)"
        ),
    ] = False,
) -> None:
    """A pipeline job's step: select the stack's backend.

    The one PULUMI_BACKEND_URL (or PULUMI_ACCESS_TOKEN) gives, which must hold the stack, its
    secrets committed. Prints backend=<url> (and for a throwaway backend passphrase=<its
    passphrase>, masked in the job's log) for $GITHUB_OUTPUT."""
    from mlops import pipelinejob

    selected = pipelinejob.select(stack, offline_fallback)
    sys.stdout.write("".join(line + "\n" for line in selected.lines()))


@pipeline_app.command("kubeconfig")
def kubeconfig_command() -> None:
    """A pipeline job's step: write its cluster credentials.

    $KUBECONFIG_DATA (YAML, or base64 of it) goes to a private file under $RUNNER_TEMP, and
    KUBECONFIG points at it in $GITHUB_ENV. Without KUBECONFIG_DATA it writes nothing."""
    from mlops import pipelinejob

    pipelinejob.write_kubeconfig()
