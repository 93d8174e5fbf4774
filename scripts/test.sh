#!/usr/bin/env bash
# The test command: builds the environment, starts local servers, runs lint, types and tests.
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh tests/unit -k postgres   # arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

# The workloads group brings the clients the contract tests drive (mlflow, ...).
./scripts/setup.sh --group workloads
./scripts/services.sh start
eval "$(./scripts/services.sh env)"
# Tests that need a local server fail, rather than skip, when it is missing.
export MLOPS_REQUIRE_SERVICES=1

echo "[test] shellcheck" >&2
if ! command -v shellcheck >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  "${apt_get[@]}" update -qq && DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq shellcheck >/dev/null
fi
shellcheck scripts/*.sh .ci/run
echo "[test] actionlint" >&2
./scripts/lint-workflows.sh
echo "[test] ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] mypy infra/" >&2
.venv/bin/mypy
# The control-plane tier: the Pulumi CLI, kubernetes provider, etcd, the Kubernetes control
# plane and kwok, built from the Go module proxy into a cache outside the repository (about
# 20 minutes the first time on 2 cores, instant after). Without it that tier is skipped.
echo "[test] toolchain" >&2
if MLOPS_TOOLCHAIN_TRIM=1 ./scripts/toolchain.sh >&2; then
  export MLOPS_REQUIRE_INTEGRATION=1
else
  echo "[test] the toolchain could not be built: the integration tier will be skipped" >&2
fi
# Prometheus and promtool of the pinned version, from the Go module proxy (about 5 minutes the
# first time): promtool checks the rendered config, the alert rules and their tests and the
# dashboards' queries; the server runs the rendered config in the contract tier.
echo "[test] prometheus" >&2
./scripts/prometheus.sh
MLOPS_PROMTOOL="$(./scripts/prometheus.sh path promtool)"
MLOPS_PROMETHEUS="$(./scripts/prometheus.sh path prometheus)"
export MLOPS_PROMTOOL MLOPS_PROMETHEUS
echo "[test] pytest" >&2
.venv/bin/python -m pytest "$@"
echo "[test] passed in $(( $(date +%s) - started )) s" >&2
