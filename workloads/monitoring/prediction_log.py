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

Logging never blocks or fails a prediction. `PredictionLogger.log_request` only queues the
request as it is (the records are built by the writer, off the request path); a request that
would take the queue past `queue_rows` rows is dropped. A background thread writes a batch when
`batch_rows` rows are queued or `flush_seconds` after the first arrived. A write that fails
drops its batch. Memory stays bounded by the queue plus one batch; every dropped row is
counted in `prediction_log_dropped_records_total` by reason.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import uuid
from collections import deque
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

    def write(self, model_name: str, frame: pd.DataFrame) -> str:
        frame = frame.assign(**{TIMESTAMP: pd.to_datetime(frame[TIMESTAMP], utc=True)})
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


@dataclass(frozen=True)
class ScoredRequest:
    """One scored request, queued as it is: its records are built off the request path."""

    request_id: str
    model_name: str
    model_version: str
    timestamp: datetime
    requests: Sequence[Mapping[str, Any]]
    inputs: pd.DataFrame
    predictions: Sequence[float]

    @property
    def rows(self) -> int:
        return len(self.requests)

    def frame(self) -> pd.DataFrame:
        """One row per instance: request id, time, model, version, the request's fields, the
        model's inputs and the fraud probability."""
        n = self.rows
        head = pd.DataFrame(
            {
                REQUEST_ID: [self.request_id] * n,
                TIMESTAMP: [self.timestamp] * n,
                MODEL_NAME: [self.model_name] * n,
                MODEL_VERSION: [self.model_version] * n,
                **{key: [r[key] for r in self.requests] for key in self.requests[0]},
            }
        )
        tail = pd.DataFrame({PREDICTION: [float(p) for p in self.predictions]})
        return pd.concat([head, self.inputs.reset_index(drop=True), tail], axis=1)


@dataclass(frozen=True)
class Records:
    """Records already built, one dict each."""

    records: Sequence[Mapping[str, Any]]

    @property
    def rows(self) -> int:
        return len(self.records)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.records))


Chunk = ScoredRequest | Records


class PredictionLogger:
    """A queue bounded in rows in front of a sink, drained by one background thread."""

    def __init__(self, model_name: str, settings: LogSettings, sink: Any = None) -> None:
        self.model_name = model_name
        self.settings = settings
        self.sink = sink if sink is not None else S3Sink(LogLocation.parse(settings.uri))
        self._chunks: deque[Chunk] = deque()
        self._queued = 0  # rows in _chunks
        self._pending = 0  # rows queued or being written
        self._stop = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log_request(
        self,
        request_id: str,
        model_version: Any,
        requests: Sequence[Mapping[str, Any]],
        inputs: pd.DataFrame,
        predictions: Sequence[float],
    ) -> None:
        """Queues a scored request's records; never blocks, never raises."""
        if not requests or not (len(requests) == len(inputs) == len(predictions)):
            RECORDS_DROPPED.labels(self.model_name, RECORD_ERROR).inc(len(predictions))
            log.warning(
                "prediction log: %d instances, %d input rows and %d predictions: not logged",
                len(requests),
                len(inputs),
                len(predictions),
            )
            return
        version = "" if model_version is None else str(model_version)
        self._put(
            ScoredRequest(
                request_id,
                self.model_name,
                version,
                datetime.now(UTC),
                requests,
                inputs,
                predictions,
            )
        )

    def log(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Queues records already built; never blocks, never raises."""
        if records:
            self._put(Records(records))

    def _put(self, chunk: Chunk) -> None:
        with self._changed:
            if self._queued + chunk.rows > self.settings.queue_rows:
                RECORDS_DROPPED.labels(self.model_name, QUEUE_FULL).inc(chunk.rows)
                return
            self._chunks.append(chunk)
            self._queued += chunk.rows
            self._pending += chunk.rows
            self._changed.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Waits until every queued record is written or dropped; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Writes what is queued, then stops the thread."""
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        self._thread.join(timeout)

    def _batch(self) -> list[Chunk]:
        """The next batch: chunks of at least batch_rows rows, or those queued flush_seconds
        after the first arrived (all of them when stopping); empty only when stopping."""
        with self._changed:
            while not self._chunks and not self._stop:
                self._changed.wait()
            deadline = time.monotonic() + self.settings.flush_seconds
            while self._queued < self.settings.batch_rows and not self._stop:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            batch: list[Chunk] = []
            rows = 0
            while self._chunks and rows < self.settings.batch_rows:
                chunk = self._chunks.popleft()
                batch.append(chunk)
                rows += chunk.rows
            self._queued -= rows
            return batch

    def _run(self) -> None:
        while True:
            batch = self._batch()
            if not batch:
                return
            self._write(batch)
            with self._changed:
                self._pending -= sum(chunk.rows for chunk in batch)
                self._changed.notify_all()

    def _write(self, batch: list[Chunk]) -> None:
        rows = sum(chunk.rows for chunk in batch)
        try:
            frame = pd.concat([chunk.frame() for chunk in batch], ignore_index=True)
        except Exception as error:
            RECORDS_DROPPED.labels(self.model_name, RECORD_ERROR).inc(rows)
            log.warning("prediction log: cannot build %d records: %s", rows, error)
            return
        start = time.perf_counter()
        status = "ok"
        try:
            self.sink.write(self.model_name, frame)
            RECORDS_WRITTEN.labels(self.model_name).inc(rows)
        except Exception as error:
            status = "error"
            RECORDS_DROPPED.labels(self.model_name, SINK_ERROR).inc(rows)
            log.warning("prediction log: dropped %d records: %s", rows, error)
        finally:
            WRITE_SECONDS.labels(self.model_name, status).observe(time.perf_counter() - start)


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
    return frame[in_window].sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
