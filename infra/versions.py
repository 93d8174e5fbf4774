"""Every image, chart and version pin of the platform, in one place.

Each pin names the upstream source it was checked against; bump a pin here and nowhere else.
"""

from __future__ import annotations

# Kubernetes minor versions the rendered objects are validated against (oldest, newest).
KUBERNETES_VERSIONS: tuple[str, ...] = ("1.33", "1.37")

# docker-library/postgres: 18 keeps PGDATA under /var/lib/postgresql/18/docker.
POSTGRES_IMAGE = "docker.io/library/postgres:18.1-bookworm"
POSTGRES_UID = 999
# prometheus-community/postgres_exporter, listening on :9187.
POSTGRES_EXPORTER_IMAGE = "quay.io/prometheuscommunity/postgres-exporter:v0.18.1"

# docker-library/redis.
REDIS_IMAGE = "docker.io/library/redis:8.2.3-bookworm"
REDIS_UID = 999
# oliver006/redis_exporter, listening on :9121.
REDIS_EXPORTER_IMAGE = "docker.io/oliver006/redis_exporter:v1.80.0"

# seaweedfs/seaweedfs: one `weed server` process with the S3 gateway enabled.
SEAWEEDFS_IMAGE = "docker.io/chrislusf/seaweedfs:4.01"
SEAWEEDFS_UID = 1000
