"""Card transaction fraud features: the reference feature repo's definitions.

Two entities (customer, merchant), two batch feature views of rolling-window statistics,
an on-demand feature computed from the request's amount, and the feature service the fraud
model reads. The batch sources follow the offline store of the active feature_store.yaml:
parquet files for `duckdb` (local), tables for `postgres` (the platform).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    Project,
    RequestSource,
    ValueType,
)
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

REPO = Path(__file__).resolve().parent
# Feature values older than this are missing rather than stale.
TTL = timedelta(days=7)


def _offline_store_type() -> str:
    """The offline store of the config Feast runs with (FEAST_FS_YAML_FILE_PATH selects one)."""
    path = Path(os.environ.get("FEAST_FS_YAML_FILE_PATH", REPO / "feature_store.yaml"))
    store = (yaml.safe_load(path.read_text()) or {}).get("offline_store", {})
    return str(store.get("type", "dask")) if isinstance(store, dict) else str(store)


def _source(name: str, table: str) -> DataSource:
    if _offline_store_type() == "postgres":
        return PostgreSQLSource(
            name=name,
            table=f"fraud_{table}",
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        )
    return FileSource(
        name=name,
        path=str(REPO / "data" / f"{table}.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )


project = Project(name="fraud", description="Card transaction fraud detection")

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A card holder",
)
merchant = Entity(
    name="merchant",
    join_keys=["merchant_id"],
    value_type=ValueType.INT64,
    description="A card acceptor",
)

customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    ttl=TTL,
    schema=[
        Field(name="txn_count_1h", dtype=Int64, description="Transactions in the last hour"),
        Field(name="txn_count_24h", dtype=Int64, description="Transactions in the last day"),
        Field(name="txn_count_7d", dtype=Int64, description="Transactions in the last week"),
        Field(name="amount_sum_1h", dtype=Float64, description="Spend in the last hour"),
        Field(name="amount_sum_24h", dtype=Float64, description="Spend in the last day"),
        Field(name="amount_sum_7d", dtype=Float64, description="Spend in the last week"),
        Field(name="amount_mean_7d", dtype=Float64, description="Mean amount over a week"),
    ],
    online=True,
    source=_source("customer_stats_source", "customer_stats"),
    tags={"team": "fraud"},
)

merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    ttl=TTL,
    schema=[
        Field(
            name="merchant_txn_count_24h", dtype=Int64, description="Transactions in the last day"
        ),
        Field(
            name="merchant_txn_count_7d", dtype=Int64, description="Transactions in the last week"
        ),
        Field(name="merchant_amount_mean_7d", dtype=Float64, description="Mean amount over a week"),
    ],
    online=True,
    source=_source("merchant_stats_source", "merchant_stats"),
    tags={"team": "fraud"},
)

transaction = RequestSource(
    name="transaction",
    schema=[Field(name="amount", dtype=Float64, description="The amount being authorised")],
)


@on_demand_feature_view(
    sources=[customer_stats, transaction],
    schema=[Field(name="amount_to_mean_7d", dtype=Float64)],
    mode="python",
)
def transaction_amount_ratio(inputs: dict[str, Any]) -> dict[str, Any]:
    """The amount relative to the customer's mean over a week; 1.0 without history."""
    return {
        "amount_to_mean_7d": [
            amount / mean if mean else 1.0
            for amount, mean in zip(inputs["amount"], inputs["amount_mean_7d"], strict=True)
        ]
    }


fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[customer_stats, merchant_stats, transaction_amount_ratio],
    description="Every feature the fraud model reads, batch and on demand",
)
