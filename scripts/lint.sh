#!/usr/bin/env bash
# The lints of the test command: shellcheck, actionlint on .github/workflows, gofmt / go vet /
# go test of tools/ (check-tools.sh), ruff and mypy. scripts/test.sh runs it first; the CI lint
# job runs it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[lint] %s\n' "$*" >&2; }

[ -x .venv/bin/ruff ] || ./scripts/setup.sh
log "shellcheck"
if ! command -v shellcheck >/dev/null 2>&1; then
    log "shellcheck is not installed: run ./scripts/install-prerequisites.sh (as root or with sudo)"
    exit 1
fi
shellcheck scripts/*.sh scripts/lib/*.sh .ci/run
log "actionlint"
./scripts/lint-workflows.sh
log "gofmt, go vet, go test: tools/"
./scripts/check-tools.sh
log "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
log "mypy infra/ policy/rules.py"
.venv/bin/mypy
