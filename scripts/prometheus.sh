#!/usr/bin/env bash
# Builds Prometheus and promtool at the version pinned in infra/versions.py (PROMETHEUS_VERSION),
# from the Go module proxy, into a cache outside the repository: promtool checks the rendered
# config and unit-tests the alert rules, the server runs the rendered config in the contract
# tests. A second run only checks that the binaries are there.
#
#   scripts/prometheus.sh [build]            build what is missing (progress goes to stderr)
#   scripts/prometheus.sh path promtool      print a binary's path (or `path prometheus`);
#                                            exit status 1 if it is not built yet
#
# MLOPS_PROMETHEUS_VERSION overrides the pin; MLOPS_TOOLCHAIN_CACHE overrides the cache root
# (default ~/.cache/mlops-platform/toolchain, shared with scripts/toolchain.sh).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${MLOPS_TOOLCHAIN_CACHE:-$HOME/.cache/mlops-platform/toolchain}"

log() { printf '[prometheus] %s\n' "$*" >&2; }

VERSION="${MLOPS_PROMETHEUS_VERSION:-$(sed -n \
    's/^PROMETHEUS_VERSION[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$REPO_ROOT/infra/versions.py")}"
if [[ ! "$VERSION" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
    log "no Prometheus version X.Y.Z (PROMETHEUS_VERSION in infra/versions.py): got '${VERSION}'"
    exit 2
fi
# Prometheus 3 publishes its Go module as v0.<major*100+minor>.<patch> (3.16.0 -> v0.316.0).
if ((BASH_REMATCH[1] < 3)); then
    log "Prometheus $VERSION: only 3.x versions map onto Go module versions here"
    exit 2
fi
MODULE_VERSION="v0.$((BASH_REMATCH[1] * 100 + BASH_REMATCH[2])).${BASH_REMATCH[3]}"
DIR="$CACHE_ROOT/prometheus-v$VERSION"
BINARIES=(prometheus promtool)

SCRATCH="" # the build's scratch directory, removed on exit
cleanup() {
    [[ -n "$SCRATCH" ]] || return 0
    chmod -R u+w "$SCRATCH" 2>/dev/null || true
    rm -rf "$SCRATCH"
}

build() {
    command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
    local start
    mkdir -p "$CACHE_ROOT/tmp"
    SCRATCH="$(mktemp -d "$CACHE_ROOT/tmp/prometheus.XXXXXX")"
    # The Go build cache of this build is large and never reused: it goes with SCRATCH.
    trap cleanup EXIT
    log "building prometheus and promtool $VERSION (github.com/prometheus/prometheus $MODULE_VERSION, $(go version | cut -d' ' -f3)); about 5 minutes"
    start=$(date +%s)
    # go/mod is the module cache the other scripts building from the proxy share.
    GOPATH="$CACHE_ROOT/go" GOMODCACHE="$CACHE_ROOT/go/mod" GOCACHE="$SCRATCH/build" \
        GOBIN="$SCRATCH/bin" GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN=local \
        GOWORK=off CGO_ENABLED=0 \
        go install -trimpath \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$VERSION" \
        "github.com/prometheus/prometheus/cmd/prometheus@$MODULE_VERSION" \
        "github.com/prometheus/prometheus/cmd/promtool@$MODULE_VERSION" >&2
    mkdir -p "$DIR"
    for binary in "${BINARIES[@]}"; do
        "$SCRATCH/bin/$binary" --version 2>&1 | head -n 1 >&2
        mv "$SCRATCH/bin/$binary" "$DIR/$binary" # a rename: an interrupted build leaves nothing
    done
    log "built in $(($(date +%s) - start)) s: $DIR"
}

built() {
    local binary
    for binary in "${BINARIES[@]}"; do
        [[ -x "$DIR/$binary" ]] || return 1
    done
}

case "${1:-build}" in
build)
    built || build
    ;;
path)
    case "${2:-}" in
    prometheus | promtool) ;;
    *) echo "usage: $0 path prometheus|promtool" >&2; exit 2 ;;
    esac
    echo "$DIR/$2"
    [[ -x "$DIR/$2" ]] || { log "not built yet: run ./scripts/prometheus.sh"; exit 1; }
    ;;
*)
    echo "usage: $0 [build] | path prometheus|promtool" >&2
    exit 2
    ;;
esac
