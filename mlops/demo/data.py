"""The seeded data the golden path runs on, in one place: `mlops demo` seeds it into the
stack, and the workload tests seed the same into their loopback platform.

The generator (workloads/feature_repo/datagen/fraud_events.py) gives the same rows for the
same seed and sizes, so this machine knows what the seed Job wrote without reading it back:
the window to materialize and a transaction to score follow from the parameters.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import pandas as pd

from workloads.feature_repo.datagen import fraud_events

SEED = 7
SIZES = fraud_events.Sizes(customers=400, merchants=40, days=35)
# The training's `run_at`: the end of the data, so it evaluates on the data's last week.
RUN_AT = fraud_events.END.replace(tzinfo=None)
# No customer or merchant of the seeded data has it (theirs start at 1000 and 5000).
UNKNOWN_ID = 999_999
# The CLI's timestamps are whole seconds, read as UTC.
TIMESTAMP = "%Y-%m-%dT%H:%M:%S"


@functools.cache
def seeded() -> fraud_events.Dataset:
    return fraud_events.generate(SEED, SIZES)


def generator_arguments() -> list[str]:
    """The generator's command-line arguments for these parameters."""
    return [
        "--seed",
        str(SEED),
        "--customers",
        str(SIZES.customers),
        "--merchants",
        str(SIZES.merchants),
        "--days",
        str(SIZES.days),
    ]


def materialize_window(dataset: fraud_events.Dataset) -> tuple[str, str]:
    """`feast materialize` start and end (UTC) spanning every row of the dataset's tables:
    from the earliest second to one second past the latest."""
    times = pd.concat(
        [pd.to_datetime(t["event_timestamp"], utc=True) for t in dataset.tables().values()]
    )
    start = times.min().floor("s")
    end = times.max().floor("s") + timedelta(seconds=1)
    return start.strftime(TIMESTAMP), end.strftime(TIMESTAMP)


@dataclass(frozen=True)
class Transaction:
    """One transaction as the transformer takes it."""

    customer_id: int
    merchant_id: int
    amount: float

    def instance(self) -> dict[str, Any]:
        return asdict(self)


def transactions_of(frame: pd.DataFrame) -> list[Transaction]:
    """The rows of a transactions frame, in order."""
    return [
        Transaction(int(c), int(m), float(a))
        for c, m, a in zip(frame["customer_id"], frame["merchant_id"], frame["amount"], strict=True)
    ]


def default_transactions(dataset: fraud_events.Dataset) -> list[Transaction]:
    """The seeded data's last transaction, and one of a customer it never saw (no features
    online: the model gets the values training filled in for no history)."""
    [known] = transactions_of(dataset.transactions.tail(1))
    return [known, Transaction(UNKNOWN_ID, known.merchant_id, 12.5)]
