"""The arguments and options several commands share, so each reads the same in every --help."""

from __future__ import annotations

from typing import Annotated

import typer

Stack = Annotated[str, typer.Argument(help="the stack: stacks/Pulumi.<stack>.yaml")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="apply without asking")]
