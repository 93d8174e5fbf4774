# shellcheck shell=bash
# Sourced, not run: what the scripts that build or check the Go tools under tools/ share
# (toolchain.sh, prometheus.sh, lint-workflows.sh, test.sh), and pulumi-cli.sh, which only reads a
# pin (pinned_version, no Go needed).
#
# Every tool version lives in one place: tools/<tool>/go.mod names the upstream module and its
# version, tools/<tool>/go.sum its checksums. Scripts ask Go for them (tool_version, tool_source)
# and key what they build by a hash of those files (tool_dir), so a pin change rebuilds.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_DIR="$REPO_ROOT/tools"
CACHE_ROOT="${MLOPS_TOOLCHAIN_CACHE:-$HOME/.cache/mlops-platform/toolchain}"

# go_tools_env GOCACHE: the Go environment of every tool build and check. The module cache
# (go/mod under CACHE_ROOT) is shared; the build cache is the caller's. GOPROXY and GOSUMDB keep
# Go's defaults: sum.golang.org itself does not resolve on some networks (this machine's), but
# Go then asks the proxy for the checksum database (proxy.golang.org/sumdb/sum.golang.org/...),
# so downloads are still checked against it as well as against the committed go.sum files.
go_tools_env() {
    if ! command -v go >/dev/null; then
        echo "go is not on PATH: install Go 1.26 or newer (https://go.dev/dl/)" >&2
        return 1
    fi
    export GOPATH="$CACHE_ROOT/go"
    export GOMODCACHE="$CACHE_ROOT/go/mod"
    export GOCACHE="$1"
    # -mod=readonly: a go.mod or go.sum that does not cover the build is an error, never an edit.
    export GOFLAGS="-mod=readonly -modcacherw -buildvcs=false"
    export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
}

# tool_version TOOL MODULE: the version of MODULE that tools/TOOL/go.mod selects.
tool_version() {
    go -C "$TOOLS_DIR/$1" list -m -f '{{.Version}}' "$2"
}

# tool_source TOOL MODULE: the source directory of that version, downloaded if need be.
tool_source() {
    go -C "$TOOLS_DIR/$1" mod download -json "$2" | python3 -c '
import json, sys
info = json.load(sys.stdin)
if info.get("Error") or not info.get("Dir"):
    sys.exit(info.get("Error") or "no source directory")
print(info["Dir"])'
}

# tool_key TOOL... [-- EXTRA...]: a short hash of the tools' go.mod, go.sum and Go sources (and
# of any EXTRA strings, such as a version stamped into a binary), the OS and the architecture.
tool_key() {
    local tools=() extra=()
    while (($#)) && [[ "$1" != -- ]]; do tools+=("$1"); shift; done
    (($#)) && shift && extra=("$@")
    {
        (cd "$TOOLS_DIR" && find "${tools[@]}" -type f \
            \( -name go.mod -o -name go.sum -o -name '*.go' \) ! -name '*_test.go' | sort |
            xargs sha256sum)
        printf '%s\n' "${extra[@]}" "$(uname -sm)"
    } | sha256sum | cut -c1-12
}

# tool_dir TOOL [-- EXTRA...]: where the binaries built from tools/TOOL at these pins live.
tool_dir() {
    echo "$CACHE_ROOT/tools/$1/$(tool_key "$@")"
}

# pinned_version TOOL MODULE: the version tools/TOOL/go.mod requires of MODULE, read from the file
# alone, without Go: a machine without Go can still learn which released binary to fetch.
pinned_version() {
    local go_mod="$TOOLS_DIR/$1/go.mod" found
    found="$(awk -v module="$2" '
        { sub(/\/\/.*/, "") }
        /^require[ \t]*\([ \t]*$/ { block = 1; next }
        block && /^\)/ { block = 0; next }
        block && $1 == module { print $2; exit }
        !block && $1 == "require" && $2 == module { print $3; exit }
    ' "$go_mod")" || return 1
    if [[ -z "$found" ]]; then
        echo "tools/$1/go.mod requires no $2" >&2
        return 1
    fi
    echo "$found"
}
