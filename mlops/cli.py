"""The `mlops` command. Each subcommand is a user's job on one stack; `mlops <command> --help`
says what it does and what it needs. Problems the user can fix end in one message and exit
status 2, before anything is changed where they can be known in advance; a step that ran and
failed ends in one message and exit status 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops import console
from mlops.arguments import Stack, Yes
from mlops.demo.commands import demo_app
from mlops.errors import StepFailed, UserError
from mlops.paths import ROOT
from mlops.pipeline import pipeline_app
from mlops.secretcommands import secrets_app

app = typer.Typer(
    name="mlops",
    help="Stand up, check, use and tear down the MLOps platform, one stack per environment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
images_app = typer.Typer(
    help="The project's images, for clusters that cannot pull them.", no_args_is_help=True
)
app.add_typer(secrets_app, name="secrets")
app.add_typer(images_app, name="images")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(demo_app, name="demo")


def default_stack() -> str:
    """The laptop stack: kind where Docker answers, else the local control plane's."""
    from mlops import tools

    return "kind" if tools.docker_ready() else "ci"


@app.command()
def up(
    stack: Annotated[
        str | None,
        typer.Argument(
            help="the stack; default: kind with Docker, else ci (the local control plane)"
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            help="the kube context to pin a new stack to (a pinned stack refuses another)"
        ),
    ] = None,
    yes: Yes = False,
    build_images: Annotated[
        bool, typer.Option(help="on kind, build the project's images and load them")
    ] = True,
) -> None:
    """Stand the platform up (or update it): the cluster, backend, secrets and images it needs,
    then `pulumi up`."""
    from mlops import cluster, deploy

    if stack is None:
        stack = default_stack()
        console.say(
            f"no stack given: {stack} ({cluster.OWN_CLUSTER[stack]} cluster on this machine)"
        )
    deployed = deploy.up(stack, context=context, yes=yes, build_images=build_images)
    console.say(f"stack {stack} is up on {deployed.record.context}; next: mlops status {stack}")


@app.command()
def preview(
    stack: Stack,
    policy_pack: Annotated[
        bool, typer.Option(help="hold the plan to the policy pack (policy/, .venv-policy)")
    ] = False,
    expect_no_changes: Annotated[bool, typer.Option(help="fail if anything would change")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print every step as JSON")] = False,
) -> None:
    """What `mlops up` would change, without changing it."""
    from mlops import deploy

    found = deploy.preview(
        stack,
        policy_pack=str(ROOT / "policy") if policy_pack else None,
        expect_no_changes=expect_no_changes,
    )
    if json_out:
        console.out.print_json(json.dumps({"changeSummary": found.changes, "steps": found.steps}))


@app.command()
def down(
    stack: Stack,
    yes: Yes = False,
    delete_cluster: Annotated[
        bool, typer.Option(help="also delete the kind cluster / stop the local control plane")
    ] = False,
) -> None:
    """Destroy the stack, then check that nothing labelled as the platform's is left."""
    from mlops import deploy

    deploy.down(stack, yes=yes, delete_cluster=delete_cluster)


@app.command("status")
def status_command(stack: Stack) -> None:
    """Every component's readiness, and where each UI is."""
    from rich.table import Table

    from mlops import connect, status

    found = status.status(stack)
    table = Table(title=f"stack {stack} on {found.context}")
    for column in ("component", "kind", "name", "ready", ""):
        table.add_column(column)
    for w in found.workloads:
        table.add_row(w.component, w.kind, w.name, "yes" if w.ready else "[red]no[/]", w.detail)
    console.out.print(table)
    for line in connect.describe(stack):
        console.out.print(f"  {line}")
    console.out.print(f"reach them with: mlops connect {stack}")
    if not found.ready:
        raise typer.Exit(1)


@app.command()
def env(stack: Stack) -> None:
    """Print the exports for plain pulumi, kubectl, pyflyte and MLflow:
    eval "$(mlops env <stack>)"."""
    from mlops import connect

    for line in connect.exports(stack):
        console.out.print(line, markup=False)


@app.command("connect")
def connect_command(
    stack: Stack,
    print_only: Annotated[bool, typer.Option("--print", help="print the addresses only")] = False,
) -> None:
    """Forward every UI and API to localhost and write the client settings for them."""
    from mlops import connect

    if print_only:
        connect.write_clients(stack)
        for line in connect.describe(stack):
            console.out.print(line, markup=False)
        return
    connect.connect(stack)


@app.command("verify", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def verify_command(ctx: typer.Context, stack: Stack) -> None:
    """Check a deployed stack from outside and inside its pods (extra arguments go to pytest)."""
    from mlops import verify

    raise typer.Exit(verify.verify(stack, list(ctx.args)))


@app.command("drift")
def drift_command(stack: Stack) -> None:
    """Compare the stack's state with its cluster, changing neither; exit 1 on drift, 2 when the
    comparison failed."""
    from mlops import drift

    raise typer.Exit(drift.check(stack))


@app.command("restore")
def restore_command(
    stack: Stack,
    backup: Annotated[
        str, typer.Argument(help="latest, or a UTC timestamp such as 20261130T020000Z")
    ],
) -> None:
    """Restore the stack's Postgres databases and Redis from a backup."""
    from mlops import restore

    restore.restore(stack, backup)


@app.command("render")
def render_command(
    stack: Stack,
    out: Annotated[Path, typer.Option(help="directory to write the YAML into")],
) -> None:
    """Every object of the stack as YAML, secrets redacted, without a cluster or the Pulumi CLI."""
    import time

    from mlops import render

    started = time.perf_counter()
    files = render.write(render.render_stack(stack), out)
    elapsed = time.perf_counter() - started
    console.say(f"rendered stack {stack}: {len(files)} files in {out} ({elapsed:.2f} s)")


@app.command("docs")
def docs_command(
    check: Annotated[bool, typer.Option(help="fail if docs/configuration.md is stale")] = False,
) -> None:
    """Write docs/configuration.md from the config models."""
    from mlops import configdoc

    target = ROOT / "docs" / "configuration.md"
    document = configdoc.document()
    if check:
        if target.read_text() != document:
            raise UserError(f"{target} is stale: run mlops docs")
        return
    target.write_text(document)
    console.say(f"wrote {target}")


@images_app.command("list")
def images_list(stack: Stack) -> None:
    """The project images the stack runs: one `<Dockerfile target> <reference>` per line."""
    from mlops import images

    for image in images.of_stack(stack):
        console.out.print(f"{image.target} {image.reference}", markup=False)


@images_app.command("build")
def images_build(stack: Stack) -> None:
    """Build the stack's project images with Docker."""
    from mlops import images

    images.build(images.of_stack(stack))


@images_app.command("load")
def images_load(
    stack: Stack, cluster_name: Annotated[str, typer.Argument(help="the kind cluster")]
) -> None:
    """Build the stack's project images and load them into a kind cluster."""
    from mlops import images

    images.load(images.of_stack(stack), cluster_name)


def main(argv: list[str] | None = None) -> Any:
    try:
        return app(args=argv, prog_name="mlops")
    except UserError as error:
        console.err.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
        sys.exit(2)
    except StepFailed as error:
        console.err.print(f"[bold red]failed:[/] {error}", markup=True, highlight=False)
        sys.exit(1)
    except Exception as error:
        from infra.configtypes import ConfigError

        if not isinstance(error, ConfigError):
            raise
        console.err.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
        sys.exit(2)
