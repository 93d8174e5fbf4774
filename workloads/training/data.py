"""The training frame: labelled transactions joined point in time with the model's features.

Labels come from the transactions table of the offline store the Feast config names (the
`fraud_transactions` table in Postgres on the platform, `data/transactions.parquet` locally).
Each transaction reads its features as of one second before it, so it never sees itself.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from workloads.model_inputs import FEATURE_SERVICE, FEATURES, LABEL, REQUEST_FIELDS

REPO = Path(__file__).resolve().parents[1] / "feature_repo"
TRANSACTIONS_TABLE = "fraud_transactions"
LOOKBACK = timedelta(seconds=1)


def feature_store() -> FeatureStore:
    """The store FEAST_FS_YAML_FILE_PATH names (the repo's own config without it), with the
    repo at FEAST_REPO_PATH (this one without it): a file registry and files are below it."""
    repo = Path(os.environ.get("FEAST_REPO_PATH", REPO))
    config = Path(os.environ.get("FEAST_FS_YAML_FILE_PATH", repo / "feature_store.yaml"))
    return FeatureStore(repo_path=str(repo), fs_yaml_file=config)


def transactions(store: FeatureStore, start: datetime, end: datetime) -> pd.DataFrame:
    """The labelled transactions with start <= event_timestamp < end, by transaction id."""
    offline = store.config.offline_store
    columns = ["transaction_id", *REQUEST_FIELDS, "event_timestamp", LABEL]
    if offline.type == "postgres":
        import psycopg

        with psycopg.connect(
            host=offline.host,
            port=offline.port,
            dbname=offline.database,
            user=offline.user,
            password=offline.password,
            sslmode=offline.sslmode or "prefer",
        ) as connection:
            cursor = connection.execute(
                f"SELECT {', '.join(columns)} FROM {TRANSACTIONS_TABLE} "
                "WHERE event_timestamp >= %s AND event_timestamp < %s ORDER BY transaction_id",
                (start, end),
            )
            frame = pd.DataFrame(cursor.fetchall(), columns=columns)
    else:
        path = Path(store.repo_path) / "data" / "transactions.parquet"
        frame = pd.read_parquet(path, columns=columns)
        times = frame["event_timestamp"]
        frame = frame[(times >= start) & (times < end)].sort_values("transaction_id")
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame.reset_index(drop=True).astype(
        {"transaction_id": "int64", "customer_id": "int64", "merchant_id": "int64"}
    )


def labelled_features(store: FeatureStore, start: datetime, end: datetime) -> pd.DataFrame:
    """Transaction id, label, amount and the model's features (still with their nulls), one
    row per transaction in the window, by transaction id."""
    events = transactions(store, start, end)
    if events.empty:
        raise ValueError(f"no transactions between {start.isoformat()} and {end.isoformat()}")
    entities = events.assign(event_timestamp=events["event_timestamp"] - LOOKBACK)
    joined = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service(FEATURE_SERVICE)
    ).to_df()
    joined = joined.sort_values("transaction_id").reset_index(drop=True)
    return joined[["transaction_id", LABEL, "amount", *FEATURES]]
