"""Seeded synthetic card transactions and the feature tables derived from them.

The events carry a learnable fraud label: fraudsters hit a card with a burst of large
purchases, mostly at a few risky merchants, so the 1 h counts, the amount relative to the
customer's usual spend and the merchant's activity all separate fraud from normal spend.
The same seed and sizes always give the same rows.

    python workloads/feature_repo/datagen/fraud_events.py --out workloads/feature_repo/data
    python workloads/feature_repo/datagen/fraud_events.py --postgres-url postgresql://...

Feature rows are written at every transaction of their entity and describe the windows
ending at that moment, inclusive: `txn_count_1h` at time t counts the entity's transactions
in (t - 1 h, t]. A training row for a transaction at t therefore reads features at t - 1 s,
so the transaction itself never leaks into its own features.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

# The data ends at a fixed instant so that the same seed always gives the same timestamps.
END = datetime(2026, 11, 1, tzinfo=UTC)
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
# Table names in the Postgres offline store, file names in the local one.
TABLES = {
    "transactions": "fraud_transactions",
    "customer_stats": "fraud_customer_stats",
    "merchant_stats": "fraud_merchant_stats",
}


@dataclass(frozen=True)
class Sizes:
    customers: int = 500
    merchants: int = 100
    days: int = 30


@dataclass(frozen=True)
class Dataset:
    transactions: pd.DataFrame
    customer_stats: pd.DataFrame
    merchant_stats: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "transactions": self.transactions,
            "customer_stats": self.customer_stats,
            "merchant_stats": self.merchant_stats,
        }


def transactions(seed: int = 7, sizes: Sizes = Sizes()) -> pd.DataFrame:
    """Card transactions over `sizes.days` days up to END, with an `is_fraud` label."""
    rng = np.random.default_rng(seed)
    span = sizes.days * 86_400
    customers = np.arange(1_000, 1_000 + sizes.customers)
    merchants = np.arange(5_000, 5_000 + sizes.merchants)
    risky = rng.choice(merchants, size=max(1, sizes.merchants // 20), replace=False)
    usual_spend = rng.lognormal(3.4, 0.5, size=sizes.customers)
    daily_rate = rng.gamma(2.0, 0.6, size=sizes.customers)

    rows: list[tuple[int, int, float, int, int]] = []
    for i, customer in enumerate(customers):
        n = rng.poisson(daily_rate[i] * sizes.days)
        offsets = rng.integers(0, span, size=n)
        shops = rng.choice(merchants, size=n)
        amounts = usual_spend[i] * rng.lognormal(0.0, 0.45, size=n)
        rows += [(customer, m, a, o, 0) for m, a, o in zip(shops, amounts, offsets, strict=True)]
        # About one card in twelve is hit by one or two bursts.
        if rng.random() < 1 / 12:
            for _ in range(rng.integers(1, 3)):
                start = rng.integers(0, span - 3_600)
                k = rng.integers(3, 7)
                burst_offsets = start + np.sort(rng.integers(0, 1_800, size=k))
                burst_shops = np.where(
                    rng.random(k) < 0.7, rng.choice(risky, size=k), rng.choice(merchants, size=k)
                )
                burst_amounts = usual_spend[i] * rng.uniform(3.0, 9.0, size=k)
                rows += [
                    (customer, m, a, o, 1)
                    for m, a, o in zip(burst_shops, burst_amounts, burst_offsets, strict=True)
                ]
    frame = pd.DataFrame(
        rows, columns=["customer_id", "merchant_id", "amount", "offset", "is_fraud"]
    )
    # One transaction per second at most, so every entity's feature rows have distinct times.
    frame = frame.sort_values(["offset", "customer_id", "merchant_id"], kind="stable")
    frame["offset"] = _strictly_increasing(frame["offset"].to_numpy())
    start = END - timedelta(seconds=int(frame["offset"].max()) + 1)
    frame["event_timestamp"] = pd.Timestamp(start) + pd.to_timedelta(frame["offset"], unit="s")
    frame["amount"] = frame["amount"].round(2)
    frame = frame.drop(columns="offset").reset_index(drop=True)
    frame.insert(0, "transaction_id", np.arange(1, len(frame) + 1, dtype=np.int64))
    return frame.astype(
        {"customer_id": "int64", "merchant_id": "int64", "is_fraud": "int64", "amount": "float64"}
    )


def _strictly_increasing(values: np.ndarray) -> np.ndarray:
    out = values.astype(np.int64).copy()
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + 1
    return out


def window_stats(events: pd.DataFrame, key: str, windows: Sequence[str]) -> pd.DataFrame:
    """For each event, its entity's count, sum and mean of amounts in each window ending at it."""
    ordered = events.sort_values([key, "event_timestamp"])[[key, "event_timestamp", "amount"]]
    out = ordered[[key, "event_timestamp"]].reset_index(drop=True)
    grouped = ordered.set_index("event_timestamp").groupby(key)["amount"]
    for name in windows:
        rolled = grouped.rolling(WINDOWS[name], closed="right")
        out[f"txn_count_{name}"] = rolled.count().to_numpy().astype("int64")
        out[f"amount_sum_{name}"] = rolled.sum().to_numpy().round(2)
    if "7d" in windows:
        out["amount_mean_7d"] = (out["amount_sum_7d"] / out["txn_count_7d"]).round(4)
    out["created"] = out["event_timestamp"]
    return out


def generate(seed: int = 7, sizes: Sizes = Sizes()) -> Dataset:
    events = transactions(seed, sizes)
    customer = window_stats(events, "customer_id", ("1h", "24h", "7d"))
    merchant = (
        window_stats(events, "merchant_id", ("24h", "7d"))
        .drop(columns=["amount_sum_24h", "amount_sum_7d"])
        .rename(columns=lambda c: f"merchant_{c}" if c.startswith(("txn_", "amount_")) else c)
    )
    return Dataset(events, customer, merchant)


def write_files(dataset: Dataset, out: Path) -> list[Path]:
    """The local offline store: one parquet file per table."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in dataset.tables().items():
        path = out / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        paths.append(path)
    return paths


def load_postgres(dataset: Dataset, url: str) -> None:
    """The platform offline store: replaces the tables in one transaction, with the indexes
    Feast's point-in-time joins and materialization scan by."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        for name, frame in dataset.tables().items():
            table = TABLES[name]
            frame.to_sql(table, connection, if_exists="replace", index=False, chunksize=5_000)
            key = "transaction_id" if name == "transactions" else frame.columns[0]
            connection.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {table}_key_time ON {table} ({key}, event_timestamp)"
            )
    engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--customers", type=int, default=Sizes.customers)
    parser.add_argument("--merchants", type=int, default=Sizes.merchants)
    parser.add_argument("--days", type=int, default=Sizes.days)
    parser.add_argument("--out", type=Path, help="write parquet files into this directory")
    parser.add_argument(
        "--postgres-url",
        help="load the tables into this database (SQLAlchemy URL, e.g. postgresql+psycopg://…)",
    )
    args = parser.parse_args(argv)
    if args.out is None and args.postgres_url is None:
        parser.error("give --out, --postgres-url or both")
    for name in ("customers", "merchants", "days"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    dataset = generate(args.seed, Sizes(args.customers, args.merchants, args.days))
    if args.out is not None:
        for path in write_files(dataset, args.out):
            print(f"wrote {path}")
    if args.postgres_url is not None:
        load_postgres(dataset, args.postgres_url)
        print(f"loaded {', '.join(TABLES.values())}")
    events = dataset.transactions
    print(f"{len(events)} transactions, {int(events['is_fraud'].sum())} fraudulent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
