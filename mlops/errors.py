"""The one kind of failure `mlops` reports without a traceback: something the user can fix."""

from __future__ import annotations


class UserError(Exception):
    """What is wrong and what to do about it, printed as one message; the command exits 2.
    Raised before anything is changed wherever the problem can be known in advance."""
