"""What the fraud model reads, shared by training and serving so the two cannot drift apart.

The model's inputs are the features of the feature service `fraud_model_v1`, in this order;
they are also the model signature's columns and the V2 input names the predictor receives.
A feature Feast cannot supply (an unknown customer or merchant, or history older than the
feature view's TTL) arrives as null, in training and online alike, and gets the same value in
both: no history means no transactions, no spend, and an amount as usual as it can be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

FEATURE_SERVICE = "fraud_model_v1"
# The registered model's name in MLflow, and the InferenceService's.
MODEL_NAME = "fraud-detector"
LABEL = "is_fraud"
# The entity keys and the request value a caller sends for one transaction.
REQUEST_FIELDS: dict[str, type] = {"customer_id": int, "merchant_id": int, "amount": float}

# Feature name -> the value a missing one takes.
FILL_VALUES: dict[str, float] = {
    "txn_count_1h": 0.0,
    "txn_count_24h": 0.0,
    "txn_count_7d": 0.0,
    "amount_sum_1h": 0.0,
    "amount_sum_24h": 0.0,
    "amount_sum_7d": 0.0,
    "amount_mean_7d": 0.0,
    "merchant_txn_count_24h": 0.0,
    "merchant_txn_count_7d": 0.0,
    "merchant_amount_mean_7d": 0.0,
    "amount_to_mean_7d": 1.0,
}
FEATURES: tuple[str, ...] = tuple(FILL_VALUES)
# What the drift check compares between served traffic and training: the request's amount,
# which no feature carries online, and the model's inputs. Training logs a sample of these
# columns with each model as its reference.
MONITORED: tuple[str, ...] = ("amount", *FEATURES)


# Per column, in FEATURES order: what a missing value becomes.
_FILL = np.array([FILL_VALUES[name] for name in FEATURES], dtype=np.float64)


def fill_missing(inputs: np.ndarray) -> np.ndarray:
    """Fills, in place, what a feature store cannot supply: nulls (NaN) and inf (a zero mean in
    a ratio) take the column's FILL_VALUES value. `inputs` is float64 with the FEATURES
    columns in order."""
    missing = ~np.isfinite(inputs)
    if missing.any():
        inputs[missing] = np.broadcast_to(_FILL, inputs.shape)[missing]
    return inputs


def model_inputs(features: Mapping[str, Sequence[Any]]) -> np.ndarray:
    """The model's inputs as a float64 array, one row per entity and the FEATURES columns in
    order, nulls filled: from Feast's online response dict (feature name -> list of values)."""
    columns = [
        np.array([np.nan if v is None else v for v in features[name]], dtype=np.float64)
        for name in FEATURES
    ]
    return fill_missing(np.column_stack(columns))


def model_frame(features: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
    """The model's input frame: the feature columns in order, as float64, nulls filled.

    Takes a frame or Feast's online response dict (feature name -> list of values); what is
    not a number counts as missing.
    """
    frame = pd.DataFrame({name: features[name] for name in FEATURES})
    frame = frame.apply(pd.to_numeric, errors="coerce").astype("float64")
    return pd.DataFrame(
        fill_missing(frame.to_numpy(copy=True)), columns=list(FEATURES), index=frame.index
    )
