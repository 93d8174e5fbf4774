"""The monitoring loop's logic without servers: the logger's bounds, the records, the drift
verdicts on seeded data, and when a retraining is launched."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.support.tools import require_module

require_module("evidently", "the workloads dependency group")
from workloads.model_inputs import FEATURES, MONITORED  # noqa: E402
from workloads.monitoring import drift, log_store, prediction_log, retraining  # noqa: E402
from workloads.monitoring.prediction_log import LogSettings, PredictionLogger  # noqa: E402

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
WINDOW = (NOW - timedelta(hours=1), NOW)


class BlockedSink:
    """A sink that holds every write until released: the writer thread is stuck."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.rows: list[dict[str, Any]] = []

    def write(self, model_name: str, frame: pd.DataFrame) -> str:
        self.release.wait(30)
        self.rows.extend(frame.to_dict("records"))
        return "written"


def _counter(counter: Any, *labels: str) -> float:
    return float(counter.labels(*labels)._value.get())


def test_a_stuck_sink_drops_beyond_the_queue_and_never_blocks_the_caller() -> None:
    sink = BlockedSink()
    settings = LogSettings("s3://b/p", batch_rows=10, flush_seconds=0.05, queue_rows=100)
    logger = PredictionLogger("bounded", settings, sink)
    dropped_before = _counter(prediction_log.RECORDS_DROPPED, "bounded", "queue_full")
    started = time.perf_counter()
    for i in range(1_000):
        logger.log([{"n": i}])
    elapsed = time.perf_counter() - started
    # The writer holds one batch; the queue holds 100; the rest are dropped and counted.
    dropped = _counter(prediction_log.RECORDS_DROPPED, "bounded", "queue_full") - dropped_before
    assert 1_000 - 100 - 10 <= dropped <= 1_000 - 100
    assert elapsed < 1.0, f"logging 1,000 records took {elapsed:.2f} s"
    sink.release.set()
    assert logger.flush(10)
    logger.close()
    assert len(sink.rows) == 1_000 - dropped


class FailingSink:
    def __init__(self) -> None:
        self.fail = True
        self.rows: list[dict[str, Any]] = []

    def write(self, model_name: str, frame: pd.DataFrame) -> str:
        if self.fail:
            raise ConnectionError("the store is down")
        self.rows.extend(frame.to_dict("records"))
        return "written"


def test_a_failed_write_drops_its_batch_and_the_next_one_is_written() -> None:
    sink = FailingSink()
    logger = PredictionLogger("flaky", LogSettings("s3://b/p", flush_seconds=0.05), sink)
    before = _counter(prediction_log.RECORDS_DROPPED, "flaky", "sink_error")
    logger.log([{"n": i} for i in range(5)])
    assert logger.flush(10)
    assert _counter(prediction_log.RECORDS_DROPPED, "flaky", "sink_error") - before == 5
    sink.fail = False
    logger.log([{"n": i} for i in range(3)])
    assert logger.flush(10)
    logger.close()
    assert sink.rows == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_settings_come_from_the_environment_and_bad_values_name_the_variable() -> None:
    assert LogSettings.from_env({}) is None
    settings = LogSettings.from_env(
        {"MLOPS_PREDICTION_LOG_URI": "s3://logs/p", "MLOPS_PREDICTION_LOG_FLUSH_SECONDS": "2.5"}
    )
    assert settings == LogSettings("s3://logs/p", flush_seconds=2.5)
    with pytest.raises(ValueError, match="MLOPS_PREDICTION_LOG_QUEUE_ROWS must be a positive int"):
        LogSettings.from_env(
            {"MLOPS_PREDICTION_LOG_URI": "s3://l", "MLOPS_PREDICTION_LOG_QUEUE_ROWS": "-1"}
        )
    with pytest.raises(ValueError, match=r"s3://bucket\[/prefix\] URI, got 'logs/p'"):
        LogSettings.from_env({"MLOPS_PREDICTION_LOG_URI": "logs/p"})


def test_partitions_cover_every_hour_of_a_window() -> None:
    location = log_store.LogLocation.parse("s3://logs/fraud")
    hours = list(location.hours("m", NOW - timedelta(minutes=90), NOW + timedelta(minutes=1)))
    assert hours == [
        "fraud/model=m/date=2026-11-30/hour=06/",
        "fraud/model=m/date=2026-11-30/hour=07/",
        "fraud/model=m/date=2026-11-30/hour=08/",
    ]


def test_records_carry_request_features_prediction_and_version() -> None:
    inputs = pd.DataFrame({f: [1.0, 2.0] for f in FEATURES}, index=[7, 9])
    requests = [
        {"customer_id": 1, "merchant_id": 5, "amount": 10.0},
        {"customer_id": 2, "merchant_id": 6, "amount": 20.0},
    ]
    scored = prediction_log.ScoredRequest("r1", "m", "3", NOW, requests, inputs, [0.1, 0.9])
    rows = scored.frame().to_dict("records")
    assert len(rows) == 2
    assert rows[1] == {
        "request_id": "r1",
        "timestamp": NOW,
        "model_name": "m",
        "model_version": "3",
        **requests[1],
        **dict.fromkeys(FEATURES, 2.0),
        "fraud_probability": 0.9,
    }


def test_a_request_whose_parts_disagree_is_counted_not_raised() -> None:
    sink = FailingSink()
    sink.fail = False
    logger = PredictionLogger("mismatch", LogSettings("s3://b/p", flush_seconds=0.05), sink)
    before = _counter(prediction_log.RECORDS_DROPPED, "mismatch", "error")
    inputs = pd.DataFrame({f: [1.0, 2.0] for f in FEATURES})
    logger.log_request("r", "3", [{"amount": 1.0}, {"amount": 2.0}], inputs, [0.1])
    logger.log_request("r", "3", [{"amount": 1.0}, {"amount": 2.0}], inputs, [0.1, 0.2])
    assert logger.flush(10)
    logger.close()
    assert _counter(prediction_log.RECORDS_DROPPED, "mismatch", "error") - before == 1
    assert [r["fraud_probability"] for r in sink.rows] == [0.1, 0.2]


def _traffic(seed: int, rows: int, amount_scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f: rng.gamma(2.0, 3.0, rows) for f in FEATURES})
    frame["amount"] = rng.gamma(2.0, 30.0, rows) * amount_scale
    frame["model_version"] = "3"
    frame["fraud_probability"] = rng.beta(1, 20, rows)
    return frame


def _check(logged: pd.DataFrame, min_rows: int = 500) -> drift.DriftResult:
    result, _ = drift.check(
        logged,
        _traffic(1, 2_000),
        model_name="m",
        model_version="3",
        window=WINDOW,
        threshold=0.3,
        min_rows=min_rows,
    )
    return result


def test_traffic_like_the_reference_is_no_drift() -> None:
    result = _check(_traffic(2, 3_000))
    assert result.verdict == drift.NO_DRIFT and result.drifted_share == 0
    assert [f.feature for f in result.features] == list(MONITORED)
    assert result.rows == 3_000
    assert 0 < result.prediction_quantiles[0.5] < result.prediction_quantiles[0.99] < 1


def test_shifted_columns_are_drift_and_named() -> None:
    shifted = _traffic(2, 3_000, amount_scale=3.0)
    for feature in FEATURES[:4]:
        shifted[feature] = shifted[feature] * 4
    result = _check(shifted)
    assert result.verdict == drift.DRIFT
    assert {f.feature for f in result.features if f.drifted} == {"amount", *FEATURES[:4]}
    assert result.drifted_share == pytest.approx(5 / len(MONITORED))


def test_too_few_rows_of_the_version_is_not_enough_data() -> None:
    logged = _traffic(2, 3_000)
    logged.loc[100:, "model_version"] = "2"
    result = _check(logged)
    assert (result.verdict, result.rows, result.features) == (drift.NOT_ENOUGH_DATA, 100, ())
    assert "not enough data" in result.summary()


def test_a_reference_without_the_amount_compares_the_features() -> None:
    result, _ = drift.check(
        _traffic(2, 600),
        _traffic(1, 2_000).drop(columns=["amount"]),
        model_name="m",
        model_version="3",
        window=WINDOW,
        threshold=0.3,
        min_rows=500,
    )
    assert [f.feature for f in result.features] == list(FEATURES)


STATE = retraining.State("retrain-1", NOW - timedelta(hours=2), "flyte", retraining.PROMOTED)


@pytest.mark.parametrize(
    ("drifted", "state", "launch", "reason"),
    [
        (False, retraining.State(), False, "no drift"),
        (True, retraining.State(), True, "drift, and no retraining running or cooling down"),
        (
            True,
            retraining.State("retrain-1", NOW - timedelta(days=3), "flyte", retraining.RUNNING),
            False,
            "retraining retrain-1 is still running",
        ),
        (True, STATE, False, "cool-down: retraining retrain-1 was launched at"),
        (True, retraining.State("r", NOW - timedelta(hours=25), "flyte", "failed"), True, "drift"),
    ],
)
def test_retraining_launches_on_drift_once_at_a_time_after_the_cool_down(
    drifted: bool, state: retraining.State, launch: bool, reason: str
) -> None:
    decision = retraining.decide(drifted, state, NOW, timedelta(hours=24))
    assert decision.launch is launch and decision.reason.startswith(reason), decision


def test_a_check_repeated_in_the_same_hour_launches_the_same_execution() -> None:
    name = retraining.execution_name("fraud-detector", NOW)
    assert name == retraining.execution_name("fraud-detector", NOW + timedelta(minutes=59))
    assert name != retraining.execution_name("fraud-detector", NOW + timedelta(hours=1))
    assert name != retraining.execution_name("churn", NOW)
    assert len(name) <= 20 and name.replace("-", "").isalnum()


def test_an_unknown_launcher_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="MLOPS_RETRAINING_LAUNCHER is 'cron': it must be one of"):
        retraining.launcher("cron")


def test_the_outputs_pyflyte_prints_are_read_by_name() -> None:
    stdout = (
        "Running Execution on local.\n"
        "DefaultNamedTupleOutput(o0=Outcome(version='2', promoted=False, reason='r'), "
        "o1={'kind': 'InferenceService'})\n"
    )
    assert retraining.printed_outputs(stdout) == {
        "o0": {"version": "2", "promoted": False, "reason": "r"},
        "o1": {"kind": "InferenceService"},
    }
    assert retraining.printed_outputs("a failed run prints no outputs\n") == {}
