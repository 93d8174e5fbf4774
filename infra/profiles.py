"""The sizing profiles: `small` (dev, ci), `standard` (staging) and `ha` (prod).

Each profile is a partial stack config, written in the stack file's own keys: what a stack gets
for the keys it does not set (`infra/config.py` lays it under the stack's config).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from infra.sizes import Resources

ProfileName = Literal["small", "standard", "ha"]
PROFILES: tuple[ProfileName, ...] = ("small", "standard", "ha")


def _profiles() -> dict[ProfileName, dict[str, Any]]:
    def size(storage: str, *resources: str) -> dict[str, Any]:
        return {"storageSize": storage, "resources": sized(*resources)}

    def sized(*resources: str) -> dict[str, Any]:
        return Resources.of(*resources).model_dump()

    # Redis's maxmemory is about 60% of its memory limit: the rest holds the copy-on-write pages
    # of the fork that rewrites the append-only file, and the client buffers.
    return {
        "small": {
            "replicas": 1,
            "dataProtection": False,
            "backups": {"retentionDays": 7},
            "postgres": size("5Gi", "100m", "256Mi", "1", "1Gi"),
            "redis": {**size("1Gi", "50m", "64Mi", "500m", "256Mi"), "maxMemory": "160Mi"},
            "objectStore": size("10Gi", "100m", "256Mi", "1", "1Gi"),
            "mlflow": {"resources": sized("100m", "512Mi", "1", "1Gi")},
            "flyte": {"resources": sized("100m", "512Mi", "1", "1Gi")},
            "feast": {"resources": sized("100m", "256Mi", "1", "1Gi")},
            "monitoring": {
                **size("5Gi", "100m", "256Mi", "1", "1Gi"),
                "retention": "3d",
                "grafana": {"resources": sized("50m", "128Mi", "500m", "512Mi")},
                "alertmanager": {"resources": sized("10m", "32Mi", "200m", "128Mi")},
                "pushgateway": {"resources": sized("10m", "32Mi", "200m", "128Mi")},
            },
        },
        "standard": {
            "replicas": 1,
            "dataProtection": True,
            "backups": {"retentionDays": 14},
            "postgres": size("20Gi", "250m", "512Mi", "2", "2Gi"),
            "redis": {**size("5Gi", "100m", "256Mi", "1", "1Gi"), "maxMemory": "640Mi"},
            "objectStore": size("50Gi", "250m", "512Mi", "2", "2Gi"),
            "mlflow": {"resources": sized("250m", "1Gi", "2", "2Gi")},
            "flyte": {"resources": sized("500m", "1Gi", "2", "2Gi")},
            "feast": {"resources": sized("250m", "512Mi", "2", "2Gi")},
            "monitoring": {
                **size("20Gi", "250m", "1Gi", "2", "4Gi"),
                "retention": "15d",
                "grafana": {"resources": sized("100m", "256Mi", "1", "1Gi")},
                "alertmanager": {"resources": sized("50m", "64Mi", "500m", "256Mi")},
                "pushgateway": {"resources": sized("20m", "64Mi", "500m", "256Mi")},
            },
        },
        "ha": {
            "replicas": 2,
            "dataProtection": True,
            "backups": {"retentionDays": 30},
            "postgres": size("100Gi", "1", "2Gi", "4", "8Gi"),
            "redis": {**size("20Gi", "250m", "1Gi", "2", "4Gi"), "maxMemory": "2560Mi"},
            "objectStore": size("500Gi", "500m", "2Gi", "4", "8Gi"),
            "mlflow": {"resources": sized("500m", "1Gi", "2", "4Gi")},
            "flyte": {"resources": sized("1", "2Gi", "4", "4Gi")},
            "feast": {"resources": sized("500m", "1Gi", "2", "2Gi")},
            "monitoring": {
                **size("100Gi", "500m", "2Gi", "4", "8Gi"),
                "retention": "30d",
                "grafana": {"resources": sized("100m", "256Mi", "1", "1Gi")},
                "alertmanager": {"resources": sized("100m", "128Mi", "1", "512Mi")},
                "pushgateway": {"resources": sized("50m", "64Mi", "500m", "256Mi")},
            },
        },
    }


PROFILE_DEFAULTS: Mapping[ProfileName, Mapping[str, Any]] = _profiles()
