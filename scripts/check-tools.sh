#!/usr/bin/env bash
# Checks the Go code under tools/: gofmt on every file, then go vet and go test in each tool
# module that has Go sources of its own (the ones that only pin an upstream module have none).
set -euo pipefail
# shellcheck source=lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"
cd "$REPO_ROOT"

go_tools_env "$CACHE_ROOT/go/build"
unformatted="$(gofmt -l tools)"
if [[ -n "$unformatted" ]]; then
    echo "not gofmt-formatted (run gofmt -w on them):" >&2
    echo "$unformatted" >&2
    exit 1
fi
for module in tools/*/go.mod; do
    dir="$(dirname "$module")"
    compgen -G "$dir/*.go" >/dev/null || continue
    go -C "$dir" vet ./...
    go -C "$dir" test ./...
done
