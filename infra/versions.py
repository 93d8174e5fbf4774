"""Every image, chart and version pin of the platform, in one place.

Each pin names the upstream source it was checked against; bump a pin here and nowhere else.
"""

from __future__ import annotations

# Kubernetes minor versions the rendered objects are validated against (oldest, newest).
KUBERNETES_VERSIONS: tuple[str, ...] = ("1.33", "1.37")

# docker-library/postgres (Debian trixie variant, user postgres = 999): 18 keeps PGDATA under
# /var/lib/postgresql/18/docker, so the volume mounts at /var/lib/postgresql.
POSTGRES_IMAGE = "docker.io/library/postgres:18.6-trixie"
POSTGRES_UID = 999
# prometheus-community/postgres_exporter: :9187, DATA_SOURCE_URI/_USER/_PASS, no health path.
POSTGRES_EXPORTER_IMAGE = "quay.io/prometheuscommunity/postgres-exporter:v0.20.1"

# docker-library/redis (user redis = 999); its entrypoint loads the bundled Redis 8 modules.
REDIS_IMAGE = "docker.io/library/redis:8.10.2-trixie"
REDIS_UID = 999
# oliver006/redis_exporter: :9121, REDIS_ADDR/REDIS_PASSWORD, /health answers "ok".
REDIS_EXPORTER_IMAGE = "docker.io/oliver006/redis_exporter:v1.91.1"

# seaweedfs/seaweedfs: one `weed server` with the S3 gateway; user seaweed = 1000 since 4.00.
SEAWEEDFS_IMAGE = "docker.io/chrislusf/seaweedfs:4.47"
SEAWEEDFS_UID = 1000

# mlflow/mlflow: only the -full image carries psycopg2 and boto3. Same version as the mlflow
# package in the workloads dependency group (pyproject.toml); a test keeps the two equal.
MLFLOW_VERSION = "3.17.2"
MLFLOW_IMAGE = f"ghcr.io/mlflow/mlflow:v{MLFLOW_VERSION}-full"
# The image sets no user; any non-root UID can run the server with a writable /tmp.
MLFLOW_UID = 1000

# flyteorg/flyte: flyte-binary v1.16.x (Flyte 1; the chart repository's newest flyte-binary is
# Flyte 2, a different system). Clients use flytekit 1.16 (pyproject.toml, workloads group).
# GHCR names, not cr.flyte.org: that host redirects to GHCR, and some mirrors fail on it.
FLYTE_VERSION = "1.16.8"
FLYTE_IMAGE = f"ghcr.io/flyteorg/flyte-binary-release:v{FLYTE_VERSION}"
FLYTE_COPILOT_IMAGE = f"ghcr.io/flyteorg/flytecopilot-release:v{FLYTE_VERSION}"
FLYTE_UID = 1001

# feast-dev/feast: the feature server image (sdk/python/feast/infra/feature_servers/multicloud:
# UBI 9 python-311, user 1001, `feast[minimal]` with the postgres and redis extras). Same
# version as the feast package in the workloads dependency group; a test keeps them equal.
FEAST_VERSION = "0.67.0"
FEAST_IMAGE = f"quay.io/feastdev/feature-server:{FEAST_VERSION}"
FEAST_UID = 1001

# This project's images, built from workloads/Dockerfile (its targets `workloads` and
# `serving`) by installing uv.lock's dependency groups; the release workflow
# (.github/workflows/release.yml) pushes and signs them, tagged with the project version
# (pyproject.toml), when the tag v<version> is pushed. `workloads` runs the feast Jobs, the
# Flyte tasks and the transformer; `serving` runs the predictor (MLServer's MLflow runtime).
PROJECT_VERSION = "0.1.0"
WORKLOADS_IMAGE = f"ghcr.io/mlops-platform/mlops-platform-workloads:{PROJECT_VERSION}"
SERVING_IMAGE = f"ghcr.io/mlops-platform/mlops-platform-serving:{PROJECT_VERSION}"
# docker-library/python: the base of both images, the interpreter the lock file targets.
PYTHON_IMAGE = "docker.io/library/python:3.11.14-slim-trixie"
# astral-sh/uv: the installer image the builds copy uv from, at the version pyproject.toml pins.
UV_IMAGE = "ghcr.io/astral-sh/uv:0.13.8"
WORKLOADS_UID = 1001

# kserve/kserve v0.20.0 (release PR kserve/kserve#5955): the kserve-crd, kserve-resources and
# kserve-runtime-configs charts from the OCI registry; the chart was `kserve` up to v0.16.
KSERVE_VERSION = "v0.20.0"
KSERVE_CHART_REPOSITORY = "oci://ghcr.io/kserve/charts"
# What the controller injects (kserve-resources' storage, agent and router images: the chart's
# tag defaults to its version). tools/kserve/go.mod builds this version's controller manager for
# the control-plane tier; a unit test keeps the two pins equal.
KSERVE_STORAGE_INITIALIZER_IMAGE = f"docker.io/kserve/storage-initializer:{KSERVE_VERSION}"
KSERVE_AGENT_IMAGE = f"docker.io/kserve/agent:{KSERVE_VERSION}"
KSERVE_ROUTER_IMAGE = f"docker.io/kserve/router:{KSERVE_VERSION}"
# kserve-resources' default kube-rbac-proxy (a full reference; the chart has no tag key for it).
KSERVE_RBAC_PROXY_IMAGE = "quay.io/brancz/kube-rbac-proxy:v0.18.0"
# kserve-runtime-configs' MLServer runtime (seldonio/mlserver, not versioned with KServe).
MLSERVER_IMAGE = "docker.io/seldonio/mlserver:1.5.0"

# cert-manager/cert-manager v1.21.2 (release issue cert-manager/cert-manager#9237): the chart from
# charts.jetstack.io; since v1.20 images are <imageRegistry>/<imageNamespace>/<name>.
CERT_MANAGER_VERSION = "v1.21.2"
CERT_MANAGER_CHART_REPOSITORY = "https://charts.jetstack.io"

# prometheus/prometheus 3.16.0 (Go module v0.316.0: VERSION and CHANGELOG.md "3.16.0 /
# 2026-11-04"); user nobody. scripts/prometheus.sh builds this version's server and promtool.
PROMETHEUS_VERSION = "3.16.0"
PROMETHEUS_IMAGE = f"quay.io/prometheus/prometheus:v{PROMETHEUS_VERSION}"
PROMETHEUS_UID = 65534

# grafana/grafana 13.2.0 (released 2026-08-18 per the upstream release threads); user 472.
GRAFANA_VERSION = "13.2.0"
GRAFANA_IMAGE = f"docker.io/grafana/grafana:{GRAFANA_VERSION}"
GRAFANA_UID = 472

# prometheus/alertmanager 0.35.0 (VERSION; Dockerfile: USER nobody, EXPOSE 9093, data under
# --storage.path). scripts/prometheus.sh builds this version's alertmanager and amtool
# (tools/alertmanager/go.mod).
ALERTMANAGER_VERSION = "0.35.0"
ALERTMANAGER_IMAGE = f"quay.io/prometheus/alertmanager:v{ALERTMANAGER_VERSION}"
ALERTMANAGER_UID = 65534

# prometheus/pushgateway 1.11.3 (VERSION; Dockerfile: USER 65534, EXPOSE 9091). The newest
# release the Go module proxy here serves (1.11.4 is not); scripts/prometheus.sh builds it
# (tools/pushgateway/go.mod).
PUSHGATEWAY_VERSION = "1.11.3"
PUSHGATEWAY_IMAGE = f"quay.io/prometheus/pushgateway:v{PUSHGATEWAY_VERSION}"
PUSHGATEWAY_UID = 65534
