"""The drift check's arithmetic: a window of logged traffic against the champion's training
reference, with Evidently's `DataDriftPreset`, and what the check reports.

Every monitored column (workloads.model_inputs.MONITORED) is compared with Evidently's default
test for its sizes (Wasserstein distance for large numeric samples, Kolmogorov-Smirnov for
small ones). A window with fewer than `min_rows` rows of the champion's version gets the
verdict "not enough data": no drift verdict, nothing launched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from workloads.model_inputs import FEATURES, MONITORED, model_frame
from workloads.monitoring.prediction_log import MODEL_VERSION, PREDICTION

NOT_ENOUGH_DATA, DRIFT, NO_DRIFT = "not enough data", "drift", "no drift"
QUANTILES = (0.5, 0.9, 0.99)
# A prediction at or above this is a fraud verdict, for the positive share.
POSITIVE = 0.5


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    score: float
    method: str
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    model_name: str
    model_version: str
    window_start: datetime
    window_end: datetime
    rows: int
    verdict: str
    # Empty, and the share 0, when there is not enough data.
    features: tuple[FeatureDrift, ...]
    drifted_share: float
    prediction_quantiles: dict[float, float]
    positive_share: float

    @property
    def drifted(self) -> bool:
        return self.verdict == DRIFT

    def summary(self) -> str:
        if self.verdict == NOT_ENOUGH_DATA:
            return f"{self.rows} rows of version {self.model_version}: not enough data"
        names = ", ".join(f.feature for f in self.features if f.drifted) or "none"
        return (
            f"{self.verdict}: {self.drifted_share:.0%} of {len(self.features)} columns drifted "
            f"({names}) over {self.rows} rows of version {self.model_version}"
        )


def comparable(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The columns as the model sees them (features filled as in training)."""
    out = model_frame(frame)
    for column in columns:
        if column not in FEATURES:
            out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return out[columns].reset_index(drop=True)


def monitored(reference: pd.DataFrame) -> list[str]:
    """The monitored columns the reference has (a model trained before the request's amount
    was monitored has only the features); every feature must be there."""
    missing = [c for c in FEATURES if c not in reference.columns]
    if missing:
        raise ValueError(f"the reference sample lacks the model's features {missing}")
    return [c for c in MONITORED if c in reference.columns]


def check(
    logged: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    model_name: str,
    model_version: str,
    window: tuple[datetime, datetime],
    threshold: float,
    min_rows: int,
) -> tuple[DriftResult, Any]:
    """The verdict on the window's rows of `model_version`, and Evidently's snapshot (None
    when there is not enough data)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"the drift threshold is a share of columns in (0, 1], got {threshold}")
    mine = logged[logged[MODEL_VERSION] == model_version] if len(logged) else logged
    predictions = (
        mine[PREDICTION].to_numpy(dtype="float64") if len(mine) else np.array([], dtype="float64")
    )
    quantiles = (
        {q: float(np.quantile(predictions, q)) for q in QUANTILES} if len(predictions) else {}
    )
    positive = float((predictions >= POSITIVE).mean()) if len(predictions) else 0.0
    if len(mine) < min_rows:
        result = DriftResult(
            model_name,
            model_version,
            *window,
            len(mine),
            NOT_ENOUGH_DATA,
            (),
            0.0,
            quantiles,
            positive,
        )
        return result, None

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = monitored(reference)
    definition = DataDefinition(numerical_columns=columns)
    current = Dataset.from_pandas(comparable(mine, columns), data_definition=definition)
    baseline = Dataset.from_pandas(comparable(reference, columns), data_definition=definition)
    snapshot = Report([DataDriftPreset(drift_share=threshold)], include_tests=True).run(
        current, baseline
    )
    features, share = _read(snapshot.dict())
    verdict = DRIFT if share >= threshold else NO_DRIFT
    result = DriftResult(
        model_name,
        model_version,
        *window,
        len(mine),
        verdict,
        features,
        share,
        quantiles,
        positive,
    )
    return result, snapshot


def _read(report: dict[str, Any]) -> tuple[tuple[FeatureDrift, ...], float]:
    """Each column's score, method and threshold (ValueDrift) and whether its test failed,
    and the drifted share (DriftedColumnsCount), from a snapshot's dict."""
    drifted = {
        t["metric_config"]["params"]["column"]
        for t in report["tests"]
        if t["metric_config"]["params"].get("type", "").endswith(":ValueDrift")
        and t["status"] == "FAIL"
    }
    features, share = [], None
    for metric in report["metrics"]:
        config = metric["config"]
        kind = config.get("type", "")
        if kind.endswith(":ValueDrift"):
            column = config["column"]
            features.append(
                FeatureDrift(
                    column,
                    float(metric["value"]),
                    str(config["method"]),
                    float(config["threshold"]),
                    column in drifted,
                )
            )
        elif kind.endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    if share is None or not features:
        raise ValueError("the Evidently report has no DriftedColumnsCount or ValueDrift metrics")
    order = {c: i for i, c in enumerate(MONITORED)}
    return tuple(sorted(features, key=lambda f: order.get(f.feature, len(order)))), share
