"""A stack's Pulumi operations through the Automation API, with the stack's backend,
passphrase, CLI and kubeconfig, and progress on standard error."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mlops import console, state
from mlops.errors import UserError
from mlops.paths import ROOT
from mlops.tools import PulumiTools

# Resource operations that change something, as a person counts them: a replacement's own
# create-replacement and delete-replaced steps are part of its one "replace".
CHANGES = {"create", "update", "delete", "replace"}


def environment(record: state.StackRecord, tools: PulumiTools) -> dict[str, str]:
    """Every variable a Pulumi command of the stack runs with."""
    return {**tools.exports(), **state.pulumi_env(record)}


def open_stack(
    record: state.StackRecord, tools: PulumiTools, *, create: bool = False
) -> auto.Stack:
    """The stack in its backend (created there when `create`)."""
    if record.backend.startswith("file://"):
        Path(record.backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    workspace = auto.LocalWorkspace(
        work_dir=str(ROOT),
        pulumi_home=tools.home,
        env_vars=environment(record, tools),
        pulumi_command=auto.PulumiCommand(
            root=str(tools.root) if tools.root else None, skip_version_check=True
        ),
    )
    try:
        if create:
            return auto.Stack.create_or_select(record.stack, workspace)
        return auto.Stack.select(record.stack, workspace)
    except auto.StackNotFoundError as error:
        raise UserError(
            f"stack {record.stack} is not in its backend {record.backend}: run mlops up "
            f"{record.stack}"
        ) from error
    except auto.CommandError as error:
        raise UserError(f"stack {record.stack} in {record.backend}: {_reason(error)}") from error


def _reason(error: auto.CommandError) -> str:
    text = getattr(error, "stderr", "") or str(error)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[-3:]) if lines else str(error)


@dataclass
class Tally:
    """What an operation did, counted from the engine's events."""

    changed: dict[str, int]
    failed: list[str]
    diagnostics: list[str]

    def summary(self) -> str:
        parts = [f"{n} {op}" for op, n in sorted(self.changed.items())]
        return ", ".join(parts) if parts else "no changes"


@contextmanager
def progress(what: str) -> Iterator[tuple[Callable[[auto.EngineEvent], None], Tally]]:
    """An engine-event handler that shows resources as they finish, and the tally it keeps."""
    tally = Tally({}, [], [])
    bar = Progress(
        TextColumn("[bold cyan]mlops[/] " + what),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[current]}"),
        TimeElapsedColumn(),
        console=console.err,
        transient=True,
    )
    task = bar.add_task(what, total=0, current="")

    def on_event(event: auto.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            bar.update(task, total=(bar.tasks[0].total or 0) + 1, current=meta.urn.split("::")[-1])
        elif event.res_outputs_event is not None:
            meta = event.res_outputs_event.metadata
            op = meta.op.value if hasattr(meta.op, "value") else str(meta.op)
            if op in CHANGES:
                tally.changed[op] = tally.changed.get(op, 0) + 1
            bar.advance(task)
        elif event.res_op_failed_event is not None:
            tally.failed.append(event.res_op_failed_event.metadata.urn.split("::")[-1])
        elif event.diagnostic_event is not None:
            diagnostic = event.diagnostic_event
            if diagnostic.severity == "error":
                tally.diagnostics.append(diagnostic.message.strip())

    started = time.monotonic()
    with bar:
        yield on_event, tally
    console.say(f"{what}: {tally.summary()} in {time.monotonic() - started:.0f} s")


def failure(what: str, error: auto.CommandError, tally: Tally) -> UserError:
    """One message for a failed operation: the resources that failed and the engine's errors."""
    lines = [f"{what} failed"]
    if tally.failed:
        lines.append("resources that failed: " + ", ".join(tally.failed))
    lines += tally.diagnostics or [_reason(error)]
    return UserError("\n  ".join(lines))


def outputs(stack: auto.Stack) -> dict[str, Any]:
    """The stack outputs, secrets left as [secret]."""
    return {k: ("[secret]" if v.secret else v.value) for k, v in stack.outputs().items()}
