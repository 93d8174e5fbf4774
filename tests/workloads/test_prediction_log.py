"""The prediction log as the transformer runs it: the queue and counters in the serving
process, the records, Parquet and uploads in a writer process of their own
(workloads/monitoring/log_writer.py), against the local S3 server."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.servers import LocalS3, local_s3
from tests.support.tools import require_module

boto3 = require_module("boto3", "the workloads dependency group")
from workloads.model_inputs import FEATURES  # noqa: E402
from workloads.monitoring import log_store, prediction_log  # noqa: E402
from workloads.monitoring.log_writer import WriterProcess  # noqa: E402
from workloads.monitoring.prediction_log import LogSettings, PredictionLogger  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "predictions"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> LocalS3:
    """The local S3 server in the standard AWS variables, which the writer inherits."""
    server = local_s3()
    for name, value in {
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT),
    }.items():
        monkeypatch.setenv(name, value)
    client = log_store.s3_client()
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    return server


def _log(logger: PredictionLogger, request_id: str, rows: int) -> None:
    requests = [{"customer_id": i, "merchant_id": 7, "amount": 1.5 * i} for i in range(rows)]
    inputs = np.arange(rows * len(FEATURES), dtype=np.float64).reshape(rows, len(FEATURES))
    logger.log_request(request_id, "3", requests, inputs, [0.25] * rows)


def _counted(counter: Any, *labels: str) -> float:
    return float(counter.labels(*labels)._value.get())


def test_a_dead_writer_loses_only_its_batch_and_another_writes_the_next(s3: LocalS3) -> None:
    uri = f"s3://{BUCKET}/writer-{uuid.uuid4().hex[:8]}"
    name = f"writer-{uuid.uuid4().hex[:6]}"
    writer = WriterProcess(uri)
    logger = PredictionLogger(name, LogSettings(uri, flush_seconds=0.1), writer=writer)
    started = datetime.now(UTC)
    _log(logger, "first", 3)
    assert logger.flush(60)
    first_pid = writer.pid
    assert first_pid is not None and first_pid != os.getpid()

    os.kill(first_pid, 9)
    _log(logger, "lost", 2)
    assert logger.flush(60)
    _log(logger, "second", 4)
    assert logger.flush(60)
    assert writer.pid not in (None, first_pid)
    logger.close()

    assert _counted(prediction_log.RECORDS_WRITTEN, name) == 7
    assert _counted(prediction_log.RECORDS_DROPPED, name, prediction_log.SINK_ERROR) == 2
    logged = log_store.read_window(
        log_store.LogLocation.parse(uri),
        name,
        started - timedelta(seconds=1),
        datetime.now(UTC) + timedelta(seconds=1),
    )
    assert logged["request_id"].value_counts().to_dict() == {"second": 4, "first": 3}
    second = logged[logged["request_id"] == "second"].reset_index(drop=True)
    assert second.loc[3, "amount"] == 4.5
    assert second.loc[3, list(FEATURES)].tolist() == [float(v) for v in range(33, 44)]
    assert set(logged["model_version"]) == {"3"}
