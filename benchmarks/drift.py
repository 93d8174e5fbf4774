"""The drift check's time for a window of logged predictions (100,000 rows by default): read
from the object store, compared with Evidently, the HTML report written.

    .venv/bin/python benchmarks/drift.py [--rows 100000 --seed 7]

Needs the local S3 server (./scripts/services.sh). It builds seeded traffic from the reference
data (workloads.feature_repo.datagen: each transaction with its features), writes it to the
bucket `predictions-bench` as the transformer's logger does (batches of 1,000 rows, one
Parquet object each), and times the steps of workloads.monitoring.workflow.run_check that do
not talk to MLflow: reading the window, Evidently's DataDriftPreset against a 2,000-row
reference, and the HTML report. Twice: on traffic like the reference, and with amounts
tripled.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd

from benchmarks.inference import LOG_BUCKET, prediction_log_env
from benchmarks.inference_report import calibration
from workloads.feature_repo.datagen import fraud_events
from workloads.model_inputs import FEATURES, MONITORED
from workloads.monitoring import drift, log_store

BATCH_ROWS = 1_000
REFERENCE_ROWS = 2_000


def traffic(seed: int, rows: int) -> pd.DataFrame:
    """Seeded transactions with their features, `rows` of them (repeated as needed)."""
    days = max(30, rows // 1_000)
    dataset = fraud_events.generate(seed, fraud_events.Sizes(2_000, 200, days))
    keys = ["event_timestamp"]
    frame = dataset.transactions.merge(
        dataset.customer_stats, on=["customer_id", *keys], how="left"
    ).merge(dataset.merchant_stats, on=["merchant_id", *keys], how="left")
    for feature in FEATURES:
        if feature not in frame:
            frame[feature] = None
    repeats = -(-rows // len(frame))
    return pd.concat([frame] * repeats, ignore_index=True).head(rows)


def write(frame: pd.DataFrame, location: log_store.LogLocation, model: str) -> float:
    sink = log_store.S3Sink(location)
    now = datetime.now(UTC)
    records = frame[list(MONITORED)].assign(
        request_id=[uuid.uuid4().hex for _ in range(len(frame))],
        timestamp=now,
        model_name=model,
        model_version="1",
        fraud_probability=0.01,
    )
    started = time.perf_counter()
    for start in range(0, len(records), BATCH_ROWS):
        sink.write(model, records.iloc[start : start + BATCH_ROWS])
    return time.perf_counter() - started


def check(
    location: log_store.LogLocation, model: str, reference: pd.DataFrame
) -> tuple[dict[str, float], drift.DriftResult]:
    end = datetime.now(UTC) + timedelta(minutes=1)
    window = (end - timedelta(hours=1), end)
    times = {}
    started = time.perf_counter()
    logged = log_store.read_window(location, model, *window)
    times["read"] = time.perf_counter() - started
    started = time.perf_counter()
    result, snapshot = drift.check(
        logged,
        reference,
        model_name=model,
        model_version="1",
        window=window,
        threshold=0.5,
        min_rows=500,
    )
    times["evidently"] = time.perf_counter() - started
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        snapshot.save_html(str(Path(tmp) / "report.html"))
        times["html_mb"] = (Path(tmp) / "report.html").stat().st_size / 1e6
    times["html"] = time.perf_counter() - started
    times["total"] = times["read"] + times["evidently"] + times["html"]
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ.update(prediction_log_env())
    location = log_store.LogLocation(LOG_BUCKET, f"drift-bench-{uuid.uuid4().hex[:8]}")
    frame = traffic(args.seed, args.rows)
    reference = frame.sample(REFERENCE_ROWS, random_state=args.seed)
    started = time.perf_counter()
    import evidently  # noqa: F401

    imported = time.perf_counter() - started
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; calibration: sum(range(10**6)) takes "
        f"{calibration():.1f} ms (median of 20)"
    )
    print(f"evidently import: {imported:.1f} s (once per task)")
    print(
        "traffic        |   rows | write s | read s | evidently s | html s (MB) | check s | verdict"
    )
    for name, shift in (("like reference", 1.0), ("amounts x3", 3.0)):
        model = f"bench-{name.split()[0]}"
        shifted = frame.assign(amount=frame["amount"] * shift)
        written = write(shifted, location, model)
        times, result = check(location, model, reference)
        print(
            f"{name:14} | {result.rows:6d} | {written:7.1f} | {times['read']:6.1f} | "
            f"{times['evidently']:11.1f} | {times['html']:6.1f} ({times['html_mb']:.1f}) | "
            f"{times['total']:7.1f} | {result.summary()}"
        )


if __name__ == "__main__":
    main()
