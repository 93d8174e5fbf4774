"""Where `mlops` writes: results to standard output, progress and messages to standard error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

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
