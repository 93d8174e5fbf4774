#!/usr/bin/env bash
# The Pulumi CLI version tools/pulumi/go.mod pins (the one scripts/toolchain.sh builds from
# source): the deploy workflow installs that released version with pulumi/actions, and `mlops`
# downloads it where no other CLI is found (mlops/tools.py). Needs no Go: the pin is read from
# go.mod's text.
#
#   scripts/pulumi-cli.sh version   print the pinned version, such as 3.274.1
set -euo pipefail
# shellcheck source=lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"

version() {
    local pinned
    pinned="$(pinned_version pulumi github.com/pulumi/pulumi/pkg/v3)"
    echo "${pinned#v}"
}

case "${1:-}" in
version) version ;;
*)
    echo "usage: scripts/pulumi-cli.sh version" >&2
    exit 2
    ;;
esac
