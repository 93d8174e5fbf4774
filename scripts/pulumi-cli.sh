#!/usr/bin/env bash
# The released Pulumi CLI at the version tools/pulumi/go.mod pins (the one scripts/toolchain.sh
# builds from source), for the jobs that deploy to a real cluster: scripts/kind-test.sh, and
# scripts/up.sh when no pulumi is on PATH. The deploy workflow installs the same version with
# pulumi/actions. Neither command needs Go: the pin is read from go.mod's text.
#
#   scripts/pulumi-cli.sh version   print the pinned version, such as 3.274.1
#   scripts/pulumi-cli.sh env       print exports that put that CLI first on PATH, downloading
#                                   it once (get.pulumi.com, over HTTPS) into
#                                   ~/.cache/mlops-platform/pulumi/<version> when the pulumi on
#                                   PATH is another version
set -euo pipefail
# shellcheck source=lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"

version() {
    local pinned
    pinned="$(pinned_version pulumi github.com/pulumi/pulumi/pkg/v3)"
    echo "${pinned#v}"
}

print_env() {
    local want have dir os arch
    want="$(version)"
    have="$(pulumi version 2>/dev/null || true)"
    if [[ "${have#v}" == "$want" ]]; then
        echo "export PULUMI_SKIP_UPDATE_CHECK=true"
        return
    fi
    dir="${MLOPS_PULUMI_CACHE:-$HOME/.cache/mlops-platform/pulumi}/$want"
    if [[ ! -x "$dir/pulumi" ]]; then
        case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) os="$(uname -s)" ;; esac
        case "$(uname -m)" in x86_64 | amd64) arch=x64 ;; aarch64 | arm64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
        echo "pulumi-cli: downloading the Pulumi CLI $want ($os-$arch)" >&2
        mkdir -p "$dir.partial"
        if ! curl -fsSL --retry 3 "https://get.pulumi.com/releases/sdk/pulumi-v$want-$os-$arch.tar.gz" |
            tar -xz -C "$dir.partial" --strip-components=1; then
            rm -rf "$dir.partial"
            echo "pulumi-cli: could not download the Pulumi CLI $want from get.pulumi.com;" \
                "install it (https://www.pulumi.com/docs/install/) or build it: ./scripts/toolchain.sh" >&2
            return 1
        fi
        rm -rf "$dir"
        mv "$dir.partial" "$dir"
    fi
    echo "export PATH=\"$dir:\${PATH}\""
    echo "export PULUMI_SKIP_UPDATE_CHECK=true"
}

case "${1:-}" in
version) version ;;
env) print_env ;;
*)
    echo "usage: scripts/pulumi-cli.sh version|env" >&2
    exit 2
    ;;
esac
