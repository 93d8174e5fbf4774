#!/usr/bin/env bash
# Lints the GitHub Actions workflows with actionlint, built once from the Go module proxy into
# a cache outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_VERSION=v1.7.12
cache="${MLOPS_TOOLCHAIN_CACHE:-$HOME/.cache/mlops-platform/toolchain}"
bin="$cache/actionlint-$ACTIONLINT_VERSION/actionlint"
if [ ! -x "$bin" ]; then
  echo "[lint] building actionlint $ACTIONLINT_VERSION" >&2
  GOBIN="$(dirname "$bin")" GOMODCACHE="$cache/go/mod" GOFLAGS=-mod=mod \
    go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi
"$bin" .github/workflows/*.yml
