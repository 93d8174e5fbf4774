"""Prediction logging: every scored transaction, with the features it was scored on, written
to the object store as Parquet for the drift check to read.

    s3://<bucket>/<prefix>/model=<name>/date=2026-11-30/hour=07/<epoch ms>-<id>.parquet

One row per scored instance: the request id, the time, the model's name and version, the
request's fields, the model's inputs (after filling, as the predictor saw them) and the fraud
probability. Hive-style partitions by model, date and hour: a drift window reads only its
hours, and the bucket's lifecycle rules can expire whole days.

Why the object store and not Postgres: the log is append-only and read in bulk, a column at a
time, which is what Parquet is for; and the serving path then never writes to the database
that MLflow, Flyte and the Feast registry depend on.

Logging never blocks or fails a prediction. `PredictionLogger.log` only puts rows on a bounded
queue (a full queue drops them); a background thread writes a batch when it holds
`batch_rows` rows or `flush_seconds` have passed. A write that fails drops its batch. Memory
stays bounded by the queue plus one batch; every dropped row is counted in
`prediction_log_dropped_records_total` by reason.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

RECORDS_WRITTEN = Counter(
    "prediction_log_records_total",
    "Scored instances written to the prediction log",
    ["model_name"],
)
RECORDS_DROPPED = Counter(
    "prediction_log_dropped_records_total",
    "Scored instances not logged: the queue was full (queue_full), the write failed "
    "(sink_error) or the record could not be built (error)",
    ["model_name", "reason"],
)
WRITE_SECONDS = Histogram(
    "prediction_log_write_duration_seconds",
    "Time to write one batch of the prediction log",
    ["model_name", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUEUE_FULL, SINK_ERROR, RECORD_ERROR = "queue_full", "sink_error", "error"

# The columns every record has besides the request fields, the features and the prediction.
REQUEST_ID, TIMESTAMP, MODEL_NAME, MODEL_VERSION, PREDICTION = (
    "request_id",
    "timestamp",
    "model_name",
    "model_version",
    "fraud_probability",
)


@dataclass(frozen=True)
class LogLocation:
    """Where a model's log lives: `s3://bucket/prefix`."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> LogLocation:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(
                f"the prediction log location must be an s3://bucket[/prefix] URI, got {uri!r}"
            )
        return cls(parts.netloc, parts.path.strip("/"))

    def hour_prefix(self, model_name: str, hour: datetime) -> str:
        path = f"model={model_name}/date={hour:%Y-%m-%d}/hour={hour:%H}/"
        return f"{self.prefix}/{path}" if self.prefix else path

    def hours(self, model_name: str, start: datetime, end: datetime) -> Iterator[str]:
        """The partition prefix of every hour that overlaps [start, end)."""
        hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        while hour < end:
            yield self.hour_prefix(model_name, hour)
            hour += timedelta(hours=1)


def s3_client() -> Any:
    """An S3 client from the standard AWS variables (AWS_ENDPOINT_URL for a non-AWS store),
    with path-style addressing, which every S3-compatible server accepts."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


class S3Sink:
    """Writes a batch as one Parquet object in its model's hour partition."""

    def __init__(self, location: LogLocation, client: Any = None) -> None:
        self.location = location
        self.client = client if client is not None else s3_client()

    def write(self, model_name: str, rows: Sequence[Mapping[str, Any]]) -> str:
        frame = pd.DataFrame(list(rows))
        frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
        first = frame[TIMESTAMP].min().to_pydatetime()
        key = (
            f"{self.location.hour_prefix(model_name, first)}"
            f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}.parquet"
        )
        body = io.BytesIO()
        frame.to_parquet(body, index=False)
        self.client.put_object(Bucket=self.location.bucket, Key=key, Body=body.getvalue())
        return key


@dataclass(frozen=True)
class LogSettings:
    """The logger's settings; from the environment with `from_env`."""

    uri: str
    # A batch is written when it holds this many rows, or this long after its first row.
    batch_rows: int = 1_000
    flush_seconds: float = 30.0
    # The bound on rows waiting to be written; more are dropped.
    queue_rows: int = 20_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LogSettings | None:
        """MLOPS_PREDICTION_LOG_URI (unset: no logging), and optionally
        MLOPS_PREDICTION_LOG_BATCH_ROWS, _FLUSH_SECONDS and _QUEUE_ROWS."""
        env = os.environ if environ is None else environ
        uri = env.get("MLOPS_PREDICTION_LOG_URI", "")
        if not uri:
            return None
        LogLocation.parse(uri)
        default = cls(uri)
        values: dict[str, Any] = {}
        for name, kind in (("batch_rows", int), ("flush_seconds", float), ("queue_rows", int)):
            variable = f"MLOPS_PREDICTION_LOG_{name.upper()}"
            text = env.get(variable)
            if text is None:
                values[name] = getattr(default, name)
                continue
            try:
                values[name] = kind(text)
            except ValueError:
                values[name] = None
            if values[name] is None or values[name] <= 0:
                raise ValueError(f"{variable} must be a positive {kind.__name__}, got {text!r}")
        return cls(uri, **values)


class PredictionLogger:
    """A bounded queue in front of a sink, drained by one background thread."""

    def __init__(self, model_name: str, settings: LogSettings, sink: Any = None) -> None:
        self.model_name = model_name
        self.settings = settings
        self.sink = sink if sink is not None else S3Sink(LogLocation.parse(settings.uri))
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=settings.queue_rows)
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(self, records: Sequence[dict[str, Any]]) -> None:
        """Queues the records; never blocks, never raises."""
        dropped = 0
        with self._idle:
            for record in records:
                try:
                    self._queue.put_nowait(record)
                    self._pending += 1
                except queue.Full:
                    dropped += 1
        if dropped:
            RECORDS_DROPPED.labels(self.model_name, QUEUE_FULL).inc(dropped)

    def flush(self, timeout: float = 30.0) -> bool:
        """Waits until every queued record is written or dropped; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Writes what is queued, then stops the thread."""
        self._stop.set()
        self._thread.join(timeout)

    def _batch(self) -> list[dict[str, Any]]:
        """The next batch: up to batch_rows rows, collected for at most flush_seconds after
        the first; empty when stopping with nothing queued."""
        batch: list[dict[str, Any]] = []
        deadline = None
        while len(batch) < self.settings.batch_rows:
            if deadline is None:
                wait = 0.2
            else:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
            try:
                batch.append(self._queue.get(timeout=min(wait, 0.2)))
            except queue.Empty:
                if self._stop.is_set() and (batch or self._queue.empty()):
                    break
                continue
            if deadline is None:
                deadline = time.monotonic() + self.settings.flush_seconds
        return batch

    def _run(self) -> None:
        while True:
            batch = self._batch()
            if not batch:
                if self._stop.is_set():
                    return
                continue
            self._write(batch)
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        start = time.perf_counter()
        status = "ok"
        try:
            self.sink.write(self.model_name, batch)
            RECORDS_WRITTEN.labels(self.model_name).inc(len(batch))
        except Exception as error:
            status = "error"
            RECORDS_DROPPED.labels(self.model_name, SINK_ERROR).inc(len(batch))
            log.warning("prediction log: dropped %d records: %s", len(batch), error)
        finally:
            WRITE_SECONDS.labels(self.model_name, status).observe(time.perf_counter() - start)


def records(
    *,
    request_id: str,
    model_name: str,
    model_version: str,
    requests: Sequence[Mapping[str, Any]],
    inputs: pd.DataFrame,
    predictions: Sequence[float],
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The log records of one scored request: one per instance."""
    if not (len(requests) == len(inputs) == len(predictions)):
        raise ValueError(
            f"{len(requests)} instances, {len(inputs)} input rows and {len(predictions)} "
            "predictions: they must be as many"
        )
    timestamp = now or datetime.now(UTC)
    features = inputs.to_dict(orient="records")
    return [
        {
            REQUEST_ID: request_id,
            TIMESTAMP: timestamp,
            MODEL_NAME: model_name,
            MODEL_VERSION: "" if model_version is None else str(model_version),
            **request,
            **row,
            PREDICTION: float(prediction),
        }
        for request, row, prediction in zip(requests, features, predictions, strict=True)
    ]


def read_window(
    location: LogLocation,
    model_name: str,
    start: datetime,
    end: datetime,
    client: Any = None,
) -> pd.DataFrame:
    """Every record of `model_name` logged in [start, end), oldest first (empty when none)."""
    client = client if client is not None else s3_client()
    frames = []
    paginator = client.get_paginator("list_objects_v2")
    for prefix in location.hours(model_name, start, end):
        for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=location.bucket, Key=item["Key"])["Body"].read()
                frames.append(pd.read_parquet(io.BytesIO(body)))
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    in_window = (frame[TIMESTAMP] >= start) & (frame[TIMESTAMP] < end)
    return frame[in_window].sort_values(TIMESTAMP).reset_index(drop=True)
