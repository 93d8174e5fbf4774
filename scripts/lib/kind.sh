# shellcheck shell=bash
# Sourced, not run: the kind CLI of scripts/kind.sh (which mlops calls) and scripts/kind-test.sh.

# shellcheck source=go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-tools.sh"
# shellcheck disable=SC2034 # read by the scripts that source this file
KIND_CONFIG="$REPO_ROOT/scripts/kind-cluster.yaml"

# kind_cli: the path of the kind that tools/kind/go.mod pins (Go builds it once into its build
# cache); without Go, the kind on PATH.
kind_cli() {
    if command -v go >/dev/null 2>&1; then
        (go_tools_env "$CACHE_ROOT/go/build" && go -C "$TOOLS_DIR/kind" tool -n kind)
    elif command -v kind >/dev/null 2>&1; then
        command -v kind
    else
        echo "kind is not installed and Go is not on PATH to build it: install Go 1.26 or kind" >&2
        return 1
    fi
}

# docker_ready: whether a Docker engine answers.
docker_ready() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}
