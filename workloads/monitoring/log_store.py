"""Where the prediction log lives and how it is written and read: Parquet objects in the
object store, partitioned by model, date and hour.

    s3://<bucket>/<prefix>/model=<name>/date=2026-11-30/hour=07/<epoch ms>-<id>.parquet

Hive-style partitions: a drift window reads only its hours, and the bucket's lifecycle rules
can expire whole days.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

# Each record's time: which hour's partition it lands in, and what a window selects on.
TIMESTAMP = "timestamp"


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
