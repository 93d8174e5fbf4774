"""What the fraud model reads, shared by training and serving so the two cannot drift apart.

The model's inputs are the features of the feature service `fraud_model_v1`, in this order;
they are also the model signature's columns and the V2 input names the predictor receives.
A feature Feast cannot supply (an unknown customer or merchant, or history older than the
feature view's TTL) arrives as null, in training and online alike, and gets the same value in
both: no history means no transactions, no spend, and an amount as usual as it can be.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def model_frame(features: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
    """The model's input frame: the feature columns in order, as float64, nulls filled.

    Takes a frame or Feast's online response dict (feature name -> list of values).
    """
    frame = pd.DataFrame({name: features[name] for name in FEATURES})
    frame = frame.apply(pd.to_numeric, errors="coerce").astype("float64")
    # inf (a zero mean in a ratio) is as unusable as null.
    frame = frame.replace([np.inf, -np.inf], np.nan)
    return frame.fillna(FILL_VALUES)
