"""Prediction logging: every scored transaction, with the features it was scored on, written
to the object store as Parquet for the drift check to read (workloads.monitoring.log_store).

One row per scored instance: the request id, the time, the model's name and version, the
request's fields, the model's inputs (after filling, as the predictor saw them) and the fraud
probability.

Why the object store and not Postgres: the log is append-only and read in bulk, a column at a
time, which is what Parquet is for; and the serving path then never writes to the database
that MLflow, Flyte and the Feast registry depend on.

Logging never blocks or fails a prediction. `PredictionLogger.log_request` only queues the
request as it is (the records are built by the writer, off the request path); a request that
would take the queue past `queue_rows` rows is dropped. A background thread hands a batch to
the writer when `batch_rows` rows are queued or `flush_seconds` after the first arrived: in
the transformer a process of its own (workloads.monitoring.log_writer), so that building the
records, Parquet and the S3 upload never hold the serving process's GIL. A write that fails
drops its batch. Memory stays bounded by the queue plus one batch; every dropped row is
counted in `prediction_log_dropped_records_total` by reason.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
from prometheus_client import Counter, Histogram

from workloads.model_inputs import FEATURES
from workloads.monitoring.log_store import TIMESTAMP, LogLocation, S3Sink

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
WRITTEN, QUEUE_FULL, SINK_ERROR, RECORD_ERROR = "ok", "queue_full", "sink_error", "error"

# The columns every record has besides the request fields, the features and the prediction
# (and TIMESTAMP, the partitions' key).
REQUEST_ID, MODEL_NAME, MODEL_VERSION, PREDICTION = (
    "request_id",
    "model_name",
    "model_version",
    "fraud_probability",
)


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
    # The model's inputs as the predictor saw them: one row per request, FEATURES columns.
    inputs: np.ndarray | pd.DataFrame
    predictions: Sequence[float]

    @property
    def rows(self) -> int:
        return len(self.requests)

    def frame(self) -> pd.DataFrame:
        """One row per instance: request id, time, model, version, the request's fields, the
        model's inputs and the fraud probability."""
        return scored_frame([self])


def scored_frame(scored: Sequence[ScoredRequest]) -> pd.DataFrame:
    """The records of many scored requests as one frame, built column by column: a frame per
    request costs a millisecond, as much as a prediction."""
    fields = list(scored[0].requests[0])
    columns: dict[str, list[Any]] = {
        name: [] for name in (REQUEST_ID, TIMESTAMP, MODEL_NAME, MODEL_VERSION, *fields)
    }
    for chunk in scored:
        n = chunk.rows
        columns[REQUEST_ID] += [chunk.request_id] * n
        columns[TIMESTAMP] += [chunk.timestamp] * n
        columns[MODEL_NAME] += [chunk.model_name] * n
        columns[MODEL_VERSION] += [chunk.model_version] * n
        for field in fields:
            columns[field] += [request[field] for request in chunk.requests]
    inputs = np.vstack([np.asarray(c.inputs, dtype=np.float64) for c in scored])
    predictions = np.concatenate([np.asarray(c.predictions, dtype=np.float64) for c in scored])
    return pd.DataFrame(
        {
            **columns,
            **{name: inputs[:, i] for i, name in enumerate(FEATURES)},
            PREDICTION: predictions,
        }
    )


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


class Writer(Protocol):
    def write(self, model_name: str, batch: list[Chunk]) -> str:
        """Writes a batch; returns WRITTEN, or the reason its rows were dropped."""
        ...

    def close(self) -> None: ...


def write_batch(sink: Any, model_name: str, batch: list[Chunk]) -> str:
    """Builds a batch's records and writes them with `sink`; WRITTEN or why they were not."""
    rows = sum(chunk.rows for chunk in batch)
    try:
        scored = [chunk for chunk in batch if isinstance(chunk, ScoredRequest)]
        frames = [scored_frame(scored)] if scored else []
        frames += [chunk.frame() for chunk in batch if isinstance(chunk, Records)]
        frame = pd.concat(frames, ignore_index=True)
    except Exception as error:
        log.warning("prediction log: cannot build %d records: %s", rows, error)
        return RECORD_ERROR
    try:
        sink.write(model_name, frame)
    except Exception as error:
        log.warning("prediction log: dropped %d records: %s", rows, error)
        return SINK_ERROR
    return WRITTEN


@dataclass(frozen=True)
class SinkWriter:
    """Writes in this process, on the logger's thread."""

    sink: Any

    def write(self, model_name: str, batch: list[Chunk]) -> str:
        return write_batch(self.sink, model_name, batch)

    def close(self) -> None:
        pass


class PredictionLogger:
    """A queue bounded in rows in front of a writer, drained by one background thread."""

    def __init__(
        self,
        model_name: str,
        settings: LogSettings,
        sink: Any = None,
        writer: Writer | None = None,
    ) -> None:
        self.model_name = model_name
        self.settings = settings
        if writer is None:
            sink = sink if sink is not None else S3Sink(LogLocation.parse(settings.uri))
            writer = SinkWriter(sink)
        self.writer = writer
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
            # The writer wakes for a first chunk (its flush deadline starts) and for a full
            # batch, not for every request.
            wake = not self._chunks or self._queued + chunk.rows >= self.settings.batch_rows
            self._chunks.append(chunk)
            self._queued += chunk.rows
            self._pending += chunk.rows
            if wake:
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
        """Writes what is queued, then stops the thread and the writer."""
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        self._thread.join(timeout)
        self.writer.close()

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
        start = time.perf_counter()
        try:
            outcome = self.writer.write(self.model_name, batch)
        except Exception as error:
            log.warning("prediction log: dropped %d records: %s", rows, error)
            outcome = SINK_ERROR
        if outcome == WRITTEN:
            RECORDS_WRITTEN.labels(self.model_name).inc(rows)
        else:
            RECORDS_DROPPED.labels(self.model_name, outcome).inc(rows)
        status = "ok" if outcome == WRITTEN else "error"
        WRITE_SECONDS.labels(self.model_name, status).observe(time.perf_counter() - start)
