"""Where `mlops` writes: results to standard output, progress and messages to standard error."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    err.print(f"[bold cyan]mlops[/] {message}")


@contextmanager
def step(what: str) -> Iterator[None]:
    """A step that takes a while: a spinner while it runs, then how long it took."""
    started = time.monotonic()
    with err.status(what):
        yield
    say(f"{what}: done in {time.monotonic() - started:.0f} s")


@contextmanager
def waiting(what: str) -> Iterator[Callable[[str], None]]:
    """A wait: a spinner with how it stands and for how long, a line each time that changes
    (where standard error is no terminal the lines alone show it), then how long it took."""
    started = time.monotonic()
    last = ""
    with err.status(what) as status:

        def update(detail: str) -> None:
            nonlocal last
            elapsed = f"{time.monotonic() - started:.0f} s"
            status.update(f"{what}: {escape(detail)} ({elapsed})")
            if detail != last:
                say(f"{what}: {escape(detail)} ({elapsed})")
                last = detail

        yield update
    say(f"{what}: done in {time.monotonic() - started:.0f} s")
