#!/usr/bin/env bash
# The test command: builds the environment, starts local servers, runs lint, types and tests.
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh tests/unit -k postgres   # arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

./scripts/setup.sh
./scripts/services.sh start
eval "$(./scripts/services.sh env)"
# Tests that need a local server fail, rather than skip, when it is missing.
export MLOPS_REQUIRE_SERVICES=1

echo "[test] ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] mypy infra/" >&2
.venv/bin/mypy
echo "[test] pytest" >&2
.venv/bin/python -m pytest "$@"
echo "[test] passed in $(( $(date +%s) - started )) s" >&2
