"""What a backup run tells Prometheus, through the Pushgateway (MLOPS_PUSHGATEWAY_URL).

One group per database under job `mlops_backup`, keyed by `store` and `database`, updated
with POST so a failed run keeps the last success's time.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import pushadd_to_gateway

JOB = "mlops_backup"
TIMEOUT = 10.0
# Every series this module pushes: the platform declares them (infra/components/backup.py).
SERIES = frozenset(
    {
        "mlops_backup_last_success_timestamp_seconds",
        "mlops_backup_last_run_timestamp_seconds",
        "mlops_backup_failed",
        "mlops_backup_interval_seconds",
        "mlops_backup_size_bytes",
        "mlops_backup_duration_seconds",
    }
)


def push_run(
    url: str,
    store: str,
    database: str,
    *,
    at: float,
    size: int | None,
    duration: float,
    interval_seconds: float,
) -> None:
    """One database's run: `size` is None when it failed."""
    registry = CollectorRegistry()

    def gauge(name: str, help_text: str, value: float) -> None:
        Gauge(name, help_text, registry=registry).set(value)

    gauge("mlops_backup_last_run_timestamp_seconds", "When the backup last ran", at)
    gauge("mlops_backup_failed", "1 if the last backup failed", int(size is None))
    gauge(
        "mlops_backup_interval_seconds", "The backup schedule's longest interval", interval_seconds
    )
    if size is not None:
        gauge("mlops_backup_last_success_timestamp_seconds", "When the backup last succeeded", at)
        gauge("mlops_backup_size_bytes", "Size of the last uploaded backup", size)
        gauge("mlops_backup_duration_seconds", "Upload time of the last backup", duration)
    pushadd_to_gateway(
        url, JOB, registry, grouping_key={"store": store, "database": database}, timeout=TIMEOUT
    )
