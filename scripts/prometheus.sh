#!/usr/bin/env bash
# Builds the monitoring tools the tests run, from the Go module proxy, into a cache outside the
# repository: the Prometheus server and promtool (tools/prometheus), Alertmanager and amtool
# (tools/alertmanager) and the Pushgateway (tools/pushgateway). promtool checks the rendered
# config and unit-tests the alert rules, amtool checks the rendered Alertmanager config, and the
# servers run the rendered configs in the contract and workloads tiers. Each tool is keyed by
# its own pin, so a pin change rebuilds that tool only. About 9 minutes once (Prometheus 5,
# Alertmanager 3, Pushgateway 1 on 2 cores); after that a run only checks the binaries are there.
#
#   scripts/prometheus.sh [build]            build what is missing (progress goes to stderr)
#   scripts/prometheus.sh path promtool      print a binary's path (prometheus, promtool,
#                                            alertmanager, amtool, pushgateway); exit status 1
#                                            if it is not built yet
#
# infra/versions.py pins the images of the same releases (PROMETHEUS_VERSION,
# ALERTMANAGER_VERSION, PUSHGATEWAY_VERSION; a unit test keeps each equal to its go.mod).
# MLOPS_TOOLCHAIN_CACHE overrides the cache root (default ~/.cache/mlops-platform/toolchain,
# shared with toolchain.sh).
set -euo pipefail
# shellcheck source=lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"

log() { printf '[prometheus] %s\n' "$*" >&2; }

TOOLS=(prometheus alertmanager pushgateway)

# binaries TOOL: what tools/TOOL builds.
binaries() {
    case "$1" in
    prometheus) echo prometheus promtool ;;
    alertmanager) echo alertmanager amtool ;;
    pushgateway) echo pushgateway ;;
    esac
}

# tool_of BINARY: the tool that builds it; nothing for an unknown binary.
tool_of() {
    local tool binary
    for tool in "${TOOLS[@]}"; do
        for binary in $(binaries "$tool"); do
            [[ "$binary" == "$1" ]] && echo "$tool" && return 0
        done
    done
    return 1
}

# release TOOL: the upstream release the pin selects, stamped into the binaries' --version.
release() {
    local module_version
    case "$1" in
    prometheus)
        module_version="$(tool_version prometheus github.com/prometheus/prometheus)"
        # Prometheus 3 publishes its Go module as v0.<major*100+minor>.<patch> (3.16.0 -> v0.316.0).
        if [[ ! "$module_version" =~ ^v0\.([0-9]+)([0-9]{2})\.([0-9]+)$ ]]; then
            log "tools/prometheus/go.mod: $module_version is not a Prometheus 3 module version"
            exit 2
        fi
        echo "${BASH_REMATCH[1]}.$((10#${BASH_REMATCH[2]})).${BASH_REMATCH[3]}"
        ;;
    alertmanager) tool_version alertmanager github.com/prometheus/alertmanager | sed 's/^v//' ;;
    pushgateway) tool_version pushgateway github.com/prometheus/pushgateway | sed 's/^v//' ;;
    esac
}

SCRATCH="" # the current build's scratch directory, removed when it ends or on exit
cleanup() {
    [[ -n "$SCRATCH" ]] || return 0
    chmod -R u+w "$SCRATCH" 2>/dev/null || true
    rm -rf "$SCRATCH"
    SCRATCH=""
}
trap cleanup EXIT

# alertmanager_modfile: a copy of tools/alertmanager/go.mod that builds Alertmanager from a copy
# of its pinned source with a placeholder page where the web UI goes. The module does not carry
# the UI (upstream builds ui/app/dist with npm and Elm), and its ui package embeds that
# directory; the API is untouched.
alertmanager_modfile() {
    local source page
    source="$(tool_source alertmanager github.com/prometheus/alertmanager)"
    cp -R "$source" "$SCRATCH/src"
    chmod -R u+w "$SCRATCH/src"
    for page in elm mantine; do
        mkdir -p "$SCRATCH/src/ui/app/dist/$page"
        cp "$TOOLS_DIR/alertmanager/ui-placeholder.html" "$SCRATCH/src/ui/app/dist/$page/index.html"
    done
    mkdir -p "$SCRATCH/mod"
    cp "$TOOLS_DIR/alertmanager/go.mod" "$TOOLS_DIR/alertmanager/go.sum" "$SCRATCH/mod/"
    go mod edit -replace "github.com/prometheus/alertmanager=$SCRATCH/src" "$SCRATCH/mod/go.mod"
    echo "$SCRATCH/mod/go.mod"
}

build() {
    local tool="$1" dir version start binary
    dir="$(tool_dir "$tool")"
    mkdir -p "$CACHE_ROOT/tmp"
    SCRATCH="$(mktemp -d "$CACHE_ROOT/tmp/$tool.XXXXXX")"
    # The build cache of this build is large and never reused: it goes with SCRATCH.
    go_tools_env "$SCRATCH/build"
    version="$(release "$tool")"
    log "building $(binaries "$tool") $version ($(go env GOVERSION))"
    start=$(date +%s)
    local modfile=()
    [[ "$tool" != alertmanager ]] || modfile=("-modfile=$(alertmanager_modfile)")
    go -C "$TOOLS_DIR/$tool" build "${modfile[@]}" -trimpath -o "$SCRATCH/bin/" \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$version" tool >&2
    for binary in $(binaries "$tool"); do
        "$SCRATCH/bin/$binary" --version 2>&1 | head -n 1 >&2
    done
    mkdir -p "$(dirname "$dir")"
    mv -T "$SCRATCH/bin" "$dir" # a rename: an interrupted build leaves nothing
    log "$tool built in $(($(date +%s) - start)) s: $dir"
    cleanup
}

built() {
    local dir binary
    dir="$(tool_dir "$1")"
    for binary in $(binaries "$1"); do
        [[ -x "$dir/$binary" ]] || return 1
    done
}

usage="usage: $0 [build] | path prometheus|promtool|alertmanager|amtool|pushgateway"
case "${1:-build}" in
build)
    for tool in "${TOOLS[@]}"; do
        built "$tool" || build "$tool"
    done
    ;;
path)
    tool="$(tool_of "${2:-}")" || { echo "$usage" >&2; exit 2; }
    dir="$(tool_dir "$tool")"
    echo "$dir/$2"
    [[ -x "$dir/$2" ]] || { log "not built yet: run ./scripts/prometheus.sh"; exit 1; }
    ;;
*)
    echo "$usage" >&2
    exit 2
    ;;
esac
