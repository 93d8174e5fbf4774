#!/usr/bin/env bash
# Builds the Prometheus server and promtool pinned in tools/prometheus/go.mod, from the Go module
# proxy, into a cache outside the repository: promtool checks the rendered config and unit-tests
# the alert rules, the server runs the rendered config in the contract tests. About 5 minutes
# once; after that a run only checks that the binaries are there.
#
#   scripts/prometheus.sh [build]            build what is missing (progress goes to stderr)
#   scripts/prometheus.sh path promtool      print a binary's path (or `path prometheus`);
#                                            exit status 1 if it is not built yet
#
# infra/versions.py PROMETHEUS_VERSION (the image tag) is the same release. MLOPS_TOOLCHAIN_CACHE
# overrides the cache root (default ~/.cache/mlops-platform/toolchain, shared with toolchain.sh).
set -euo pipefail
# shellcheck source=lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"

log() { printf '[prometheus] %s\n' "$*" >&2; }

DIR="$(tool_dir prometheus)"
BINARIES=(prometheus promtool)

SCRATCH="" # the build's scratch directory, removed on exit
cleanup() {
    [[ -n "$SCRATCH" ]] || return 0
    chmod -R u+w "$SCRATCH" 2>/dev/null || true
    rm -rf "$SCRATCH"
}

build() {
    mkdir -p "$CACHE_ROOT/tmp"
    SCRATCH="$(mktemp -d "$CACHE_ROOT/tmp/prometheus.XXXXXX")"
    trap cleanup EXIT
    # The build cache of this build is large and never reused: it goes with SCRATCH.
    go_tools_env "$SCRATCH/build"
    local module_version version start
    module_version="$(tool_version prometheus github.com/prometheus/prometheus)"
    # Prometheus 3 publishes its Go module as v0.<major*100+minor>.<patch> (3.16.0 -> v0.316.0).
    if [[ ! "$module_version" =~ ^v0\.([0-9]+)([0-9]{2})\.([0-9]+)$ ]]; then
        log "tools/prometheus/go.mod: $module_version is not a Prometheus 3 module version"
        exit 2
    fi
    version="${BASH_REMATCH[1]}.$((10#${BASH_REMATCH[2]})).${BASH_REMATCH[3]}"
    log "building prometheus and promtool $version (github.com/prometheus/prometheus $module_version, $(go env GOVERSION)); about 5 minutes"
    start=$(date +%s)
    go -C "$TOOLS_DIR/prometheus" build -trimpath -o "$SCRATCH/bin/" \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$version" tool >&2
    local binary
    for binary in "${BINARIES[@]}"; do
        "$SCRATCH/bin/$binary" --version 2>&1 | head -n 1 >&2
    done
    mkdir -p "$(dirname "$DIR")"
    mv -T "$SCRATCH/bin" "$DIR" # a rename: an interrupted build leaves nothing
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
