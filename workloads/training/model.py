"""The fraud model: a seeded gradient-boosted tree ensemble over the model inputs, its
metrics, and the fingerprint that says whether two trainings are the same."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from importlib.metadata import version

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from workloads.model_inputs import FEATURE_SERVICE, LABEL, model_frame

# What loading the model needs, pinned to the versions that trained it: the `ml` dependency
# group, which the serving image shares.
MODEL_LIBRARIES = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy", "cloudpickle")
# The types of a fitted HistGradientBoostingClassifier that skops does not trust by default.
TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


@dataclass(frozen=True)
class HyperParameters:
    learning_rate: float = 0.1
    max_iter: int = 150
    max_leaf_nodes: int = 15
    l2_regularization: float = 1.0
    seed: int = 7


@dataclass(frozen=True)
class Scores:
    roc_auc: float
    pr_auc: float


def requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in MODEL_LIBRARIES]


def train(frame: pd.DataFrame, hyper: HyperParameters) -> HistGradientBoostingClassifier:
    """Fits on every row: early stopping is off, so the same rows and seed give the same
    model."""
    model = HistGradientBoostingClassifier(
        learning_rate=hyper.learning_rate,
        max_iter=hyper.max_iter,
        max_leaf_nodes=hyper.max_leaf_nodes,
        l2_regularization=hyper.l2_regularization,
        early_stopping=False,
        random_state=hyper.seed,
    )
    return model.fit(model_frame(frame), frame[LABEL].to_numpy())


def fraud_probability(model: object, frame: pd.DataFrame) -> np.ndarray:
    """What the served model answers: the probability of the positive class."""
    return np.asarray(model.predict_proba(model_frame(frame)))[:, 1]  # type: ignore[attr-defined]


def scores(labels: np.ndarray, probabilities: np.ndarray) -> Scores:
    """ROC AUC, and PR AUC (average precision), the one that shows a rare class."""
    if len(np.unique(labels)) < 2:
        raise ValueError("the evaluation window needs both fraudulent and normal transactions")
    return Scores(
        roc_auc=round(float(roc_auc_score(labels, probabilities)), 6),
        pr_auc=round(float(average_precision_score(labels, probabilities)), 6),
    )


def fingerprint(frame: pd.DataFrame, hyper: HyperParameters, code_revision: str) -> str:
    """Same rows, hyper-parameters, feature service and code: the same model."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(
        json.dumps(
            {"hyper": asdict(hyper), "service": FEATURE_SERVICE, "code": code_revision},
            sort_keys=True,
        ).encode()
    )
    return digest.hexdigest()
