#!/usr/bin/env bash
# The kind CLI at the pin of tools/kind/go.mod (built with Go into the tools' cache), else the
# kind on PATH; `mlops up kind` and scripts/kind-test.sh create their clusters with it.
#
#   scripts/kind.sh path    print the path of the kind binary
set -euo pipefail
# shellcheck source=lib/kind.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kind.sh"

case "${1:-}" in
path) kind_cli ;;
*)
    echo "usage: scripts/kind.sh path" >&2
    exit 2
    ;;
esac
