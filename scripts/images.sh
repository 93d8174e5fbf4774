#!/usr/bin/env bash
# The project's images (workloads/Dockerfile) under the references a stack names
# (`images.workloads`, `images.serving`), for clusters that cannot pull them from a registry.
#
#   scripts/images.sh build <stack>           docker build each target, tagged with its reference
#   scripts/images.sh load <stack> <cluster>  build, then `kind load` them into that kind cluster
#
# Pods pull these references with imagePullPolicy IfNotPresent, so a loaded image is used as is.
# A stack that names images a registry serves (public, or private with `images.pullSecret`)
# needs neither.
set -euo pipefail
# shellcheck source=lib/kind.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kind.sh"
cd "$REPO_ROOT"
log() { printf '[images] %s\n' "$*" >&2; }

usage() {
    echo "usage: scripts/images.sh build <stack> | load <stack> <kind cluster>" >&2
    exit 2
}

# The `<target> <reference>` lines of the stack's images (validates its config on the way).
references() {
    [ -x .venv/bin/python ] || ./scripts/setup.sh
    .venv/bin/python -m mlops.stackfile images --stack "$1"
}

# build LINES: builds each `<target> <reference>` line.
build() {
    local target reference
    if ! docker_ready; then
        log "no Docker engine answers (docker info): the images cannot be built here"
        exit 1
    fi
    while read -r target reference; do
        log "building $target as $reference"
        docker build --file workloads/Dockerfile --target "$target" \
            --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
            --tag "$reference" .
    done <<<"$1"
}

# load LINES CLUSTER: builds them, then loads each into the kind cluster.
load() {
    local kind target reference
    build "$1"
    kind="$(kind_cli)"
    while read -r target reference; do
        log "loading $reference into kind cluster $2"
        "$kind" load docker-image "$reference" --name "$2"
    done <<<"$1"
}

case "${1:-}" in
build)
    [ $# -eq 2 ] || usage
    lines="$(references "$2")"
    build "$lines"
    ;;
load)
    [ $# -eq 3 ] || usage
    lines="$(references "$2")"
    load "$lines" "$3"
    ;;
*) usage ;;
esac
