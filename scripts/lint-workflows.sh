#!/usr/bin/env bash
# Lints the GitHub Actions workflows with actionlint, the version pinned in
# tools/actionlint/go.mod (a Go `tool`): Go builds it from the module proxy the first time and
# keeps the binary in its build cache under the toolchain cache.
set -euo pipefail
# shellcheck source=lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"
cd "$REPO_ROOT"

go_tools_env "$CACHE_ROOT/go/build"
# `go tool -n` builds the tool if need be and prints the cached binary's path.
actionlint="$(go -C "$TOOLS_DIR/actionlint" tool -n actionlint)"
"$actionlint" .github/workflows/*.yml
