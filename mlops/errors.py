"""The two kinds of failure `mlops` reports without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """What is wrong and what to do about it, printed as one message; the command exits 2.
    Raised before anything is changed wherever the problem can be known in advance."""


class StepFailed(Exception):
    """A step that started and did not succeed (a Job, a training run, a wait that ran out):
    what happened, in the words of the tool that said so, printed as one message; the command
    exits 1."""
