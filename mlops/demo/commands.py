"""`mlops demo <step> <stack>`: the golden path on a deployed stack, a step at a time or all
at once (`run`). Results go to standard output, progress to standard error; every step first
checks the stack (mlops/demo/target.py), so bad input changes nothing."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer

from mlops import console
from mlops.demo.target import DemoTarget, target_of
from mlops.errors import UserError

demo_app = typer.Typer(
    help="The golden path on a deployed stack: seeded features, a model trained on Flyte and "
    "served by KServe, transactions scored. `run` does every step in order.",
    no_args_is_help=True,
)

Stack = Annotated[
    str, typer.Argument(help="a stack deployed from this machine (mlops up) on real nodes")
]
Json = Annotated[bool, typer.Option("--json", help="print the results as one JSON document")]
TrainingMinutes = Annotated[int, typer.Option(help="minutes to wait for the training run", min=1)]
ReadySeconds = Annotated[
    int, typer.Option(help="seconds to wait for the InferenceService to be Ready", min=1)
]


def _result(line: str, json_out: bool) -> None:
    """A step's result: on standard output, unless that holds the JSON document."""
    if json_out:
        console.say(line)
    else:
        console.out.print(line, markup=False)


def _seed(target: DemoTarget, json_out: bool = False) -> dict[str, Any]:
    from mlops.demo import data, jobs

    seeded = jobs.seed(target)
    sizes = data.SIZES
    _result(
        f"offline store seeded: {seeded.transactions} transactions ({seeded.fraudulent} "
        f"fraudulent) from seed {data.SEED}, {sizes.customers} customers, {sizes.merchants} "
        f"merchants, {sizes.days} days",
        json_out,
    )
    return asdict(seeded)


def _materialize(target: DemoTarget, json_out: bool = False) -> dict[str, Any]:
    from mlops.demo import jobs

    materialized = jobs.materialize(target)
    window = f"{materialized.start} to {materialized.end}"
    _result(f"online store: the seeded features from {window} materialized", json_out)
    return asdict(materialized)


def _train(target: DemoTarget, minutes: int, json_out: bool = False) -> dict[str, Any]:
    from mlops.demo import training

    trained = training.train(target, timeout=minutes * 60)
    execution = f"{trained.project}/{trained.domain}/{trained.execution}"
    _result(f"training execution {execution}: {trained.phase}", json_out)
    return asdict(trained)


def _serve(target: DemoTarget, seconds: int, json_out: bool = False) -> dict[str, Any]:
    from mlops.demo import serving

    served = serving.serve(target, timeout=seconds)
    where = f"{served.namespace}/{served.name}"
    _result(f"InferenceService {where}: Ready {served.url}".rstrip(), json_out)
    return asdict(served)


@demo_app.command("seed")
def seed_command(stack: Stack) -> None:
    """Load the seeded transactions and feature tables into the offline store.

    They replace the tables there. The Job is made from the stack's feast-apply Job."""
    _seed(target_of(stack))


@demo_app.command("materialize")
def materialize_command(stack: Stack) -> None:
    """Materialize the seeded features into the online store.

    Over the window the seeded data spans, in a Job made from the stack's feast-apply Job."""
    _materialize(target_of(stack))


@demo_app.command("train")
def train_command(stack: Stack, timeout: TrainingMinutes = 40) -> None:
    """Train the model on Flyte: print the execution and how it ended.

    Registers the training workflow with the stack's workload image and launches it as the
    client mlops-ci; its deploy task creates or updates the InferenceService."""
    _train(target_of(stack), timeout)


@demo_app.command("schedule")
def schedule_command(stack: Stack) -> None:
    """Put training and the drift check on their schedules.

    Registers the training workflow (launch plan training_weekly: every Monday) and the drift
    check (hourly; it retrains the model when its inputs drift) with their launch plans
    active."""
    from mlops.demo import training

    target = target_of(stack)
    version = training.schedule(target)
    console.say(f"stack {stack}: training and the drift check scheduled (version {version})")


@demo_app.command("serve")
def serve_command(stack: Stack, timeout: ReadySeconds = 900) -> None:
    """Wait for the model's InferenceService to be Ready.

    Fails at once when KServe says it cannot run, and with its conditions on timeout."""
    _serve(target_of(stack), timeout)


def _transactions(customer: int | None, merchant: int | None, amount: float | None) -> list[Any]:
    """The transaction given on the command line, or the default pair."""
    from mlops.demo import data

    given = {"--customer": customer, "--merchant": merchant, "--amount": amount}
    missing = [option for option, value in given.items() if value is None]
    if len(missing) == len(given):
        return data.default_transactions(data.seeded())
    if missing:
        raise UserError(
            f"a transaction needs --customer, --merchant and --amount: add {' and '.join(missing)}"
        )
    assert customer is not None and merchant is not None and amount is not None
    return [data.Transaction(customer, merchant, amount)]


def _print_scores(stack: str, scored: list[Any], json_out: bool, results: dict[str, Any]) -> None:
    from mlops.demo import serving

    if json_out:
        console.out.print_json(
            json.dumps({"stack": stack, **results, "scored": serving.as_json(scored)})
        )
    else:
        console.out.print(serving.table(scored))


@demo_app.command("score")
def score_command(
    stack: Stack,
    customer: Annotated[int | None, typer.Option(help="the customer's id")] = None,
    merchant: Annotated[int | None, typer.Option(help="the merchant's id")] = None,
    amount: Annotated[float | None, typer.Option(help="the amount")] = None,
    json_out: Json = False,
) -> None:
    """Score transactions through the model's transformer and print them.

    By default the seeded data's last transaction and one of an unknown customer; or the one
    given with --customer, --merchant and --amount."""
    from mlops.demo import serving

    transactions = _transactions(customer, merchant, amount)
    target = target_of(stack)
    _print_scores(stack, serving.score(target, transactions), json_out, {})


@demo_app.command("run")
def run_command(
    stack: Stack,
    json_out: Json = False,
    training_timeout: TrainingMinutes = 40,
    ready_timeout: ReadySeconds = 900,
) -> None:
    """Run every step in order: seed, materialize, train, serve, score."""
    from mlops.demo import data, serving

    target = target_of(stack)
    results = {
        "seeded": _seed(target, json_out),
        "materialized": _materialize(target, json_out),
        "training": _train(target, training_timeout, json_out),
        "inference_service": _serve(target, ready_timeout, json_out),
    }
    scored = serving.score(target, data.default_transactions(data.seeded()))
    _print_scores(stack, scored, json_out, results)
