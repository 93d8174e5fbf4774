"""Retraining on drift: when a drift check calls drift, launch the training LaunchPlan, at
most one at a time and not again within a cool-down. The champion still moves only through
the training workflow's gates (workloads/training/registry.py).

The state lives on the registered model in MLflow, as tags: the last launch's execution id,
time and launcher, and its outcome once known (running, promoted, not_promoted, failed).

Launchers:
- `flyte` (in the cluster): FlyteRemote launches the training workflow's launch plan in the
  checking execution's own project and domain, with a name derived from the model and the
  check's time, so a check that runs twice launches once. Its outcome is read from the
  execution by the next check.
- `local` (a workstation, the tests): `pyflyte run` of the training workflow, to completion.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from workloads.training.registry import Gates

EXECUTION, LAUNCHED_AT, LAUNCHER, OUTCOME = (
    "retraining.execution",
    "retraining.launched_at",
    "retraining.launcher",
    "retraining.outcome",
)
RUNNING, PROMOTED, NOT_PROMOTED, FAILED = "running", "promoted", "not_promoted", "failed"
TRAINING_WORKFLOW = "workloads.training.workflow.training"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class State:
    """The last retraining of a model (all empty when there has been none)."""

    execution: str = ""
    launched_at: datetime | None = None
    launcher: str = ""
    outcome: str = ""

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> State:
        launched = tags.get(LAUNCHED_AT)
        return cls(
            tags.get(EXECUTION, ""),
            datetime.fromisoformat(launched) if launched else None,
            tags.get(LAUNCHER, ""),
            tags.get(OUTCOME, ""),
        )


@dataclass(frozen=True)
class Decision:
    launch: bool
    reason: str


def decide(drifted: bool, state: State, now: datetime, cooldown: timedelta) -> Decision:
    """Whether a check that found (or did not find) drift launches a retraining."""
    if not drifted:
        return Decision(False, "no drift")
    if state.outcome == RUNNING:
        return Decision(False, f"retraining {state.execution} is still running")
    if state.launched_at is not None and now < state.launched_at + cooldown:
        return Decision(
            False,
            f"cool-down: retraining {state.execution} was launched at "
            f"{state.launched_at.isoformat()}, the next may start at "
            f"{(state.launched_at + cooldown).isoformat()}",
        )
    return Decision(True, "drift, and no retraining running or cooling down")


class Launcher(Protocol):
    name: str

    def launch(self, model_name: str, run_at: datetime, gates: Gates, execution: str) -> str:
        """Starts the training workflow; the execution's id."""
        ...

    def outcome(self, execution: str) -> str:
        """running, promoted, not_promoted or failed."""
        ...


def _promoted(outcome: Any) -> str:
    return PROMOTED if outcome else NOT_PROMOTED


class FlyteLauncher:
    name = "flyte"

    def __init__(self) -> None:
        from flytekit.configuration import Config
        from flytekit.remote import FlyteRemote

        # Flyte sets these in every task pod: launch where the check runs.
        self.project = os.environ["FLYTE_INTERNAL_EXECUTION_PROJECT"]
        self.domain = os.environ["FLYTE_INTERNAL_EXECUTION_DOMAIN"]
        self.remote = FlyteRemote(
            Config.auto(), default_project=self.project, default_domain=self.domain
        )

    def launch(self, model_name: str, run_at: datetime, gates: Gates, execution: str) -> str:
        plan = self.remote.fetch_launch_plan(name=TRAINING_WORKFLOW)
        started = self.remote.execute(
            plan,
            inputs={"run_at": run_at, "gates": gates, "model_name": model_name},
            type_hints={"run_at": datetime, "gates": Gates, "model_name": str},
            execution_name=execution,
        )
        return str(started.id.name)

    def outcome(self, execution: str) -> str:
        from flytekit.models.core.execution import WorkflowExecutionPhase

        run = self.remote.sync_execution(self.remote.fetch_execution(name=execution))
        if not run.is_done:
            return RUNNING
        if run.error is not None or run.closure.phase != WorkflowExecutionPhase.SUCCEEDED:
            return FAILED
        outcome = run.outputs.get("o0", as_type=dict) if run.outputs else None
        return _promoted(outcome and outcome.get("promoted"))


class LocalLauncher:
    """Runs the training workflow to completion with `pyflyte run` (no Flyte cluster)."""

    name = "local"

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def launch(self, model_name: str, run_at: datetime, gates: Gates, execution: str) -> str:
        pyflyte = Path(sys.executable).parent / "pyflyte"
        done = subprocess.run(
            [
                str(pyflyte),
                "run",
                "workloads/training/workflow.py",
                "training",
                f"--run_at={run_at.replace(tzinfo=None).isoformat()}",
                f"--model_name={model_name}",
                f"--gates={json.dumps(asdict(gates))}",
                "--no-apply",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
            self.outcomes[execution] = FAILED
        else:
            outcome = printed_outputs(done.stdout).get("o0") or {}
            self.outcomes[execution] = _promoted(outcome.get("promoted"))
        return execution

    def outcome(self, execution: str) -> str:
        return self.outcomes.get(execution, FAILED)


def printed_outputs(stdout: str) -> dict[str, Any]:
    """The outputs `pyflyte run` prints last (`DefaultNamedTupleOutput(o0=Outcome(...),
    o1={...})`) by name, a dataclass as a dict of its fields; empty when none is printed."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("DefaultNamedTupleOutput("):
            call = ast.parse(line, mode="eval").body
            if isinstance(call, ast.Call):
                return {k.arg: _literal(k.value) for k in call.keywords if k.arg}
    return {}


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Call):
        return {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    return ast.literal_eval(node)


def launcher(name: str) -> Launcher:
    launchers: dict[str, type[Any]] = {"flyte": FlyteLauncher, "local": LocalLauncher}
    if name not in launchers:
        raise ValueError(
            f"MLOPS_RETRAINING_LAUNCHER is {name!r}: it must be one of {', '.join(launchers)}"
        )
    return launchers[name]()  # type: ignore[no-any-return]


def execution_name(model_name: str, run_at: datetime) -> str:
    """A Flyte execution name (letters, digits, dashes; at most 20 characters here) unique to
    the model and the check's hour, so a repeated check launches once."""
    key = f"{model_name}/{run_at.astimezone(UTC):%Y%m%d%H}".encode()
    return f"retrain-{hashlib.sha256(key).hexdigest()[:12]}"
