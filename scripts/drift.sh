#!/usr/bin/env bash
# Drift detection: compares a deployed stack's state with its cluster, changing neither
# (`pulumi refresh --preview-only`), and fails naming each resource that drifted.
#
#   scripts/drift.sh <stack>
#
# Needs the stack's backend and the cluster's credentials, as a deploy does (the scheduled
# drift job of .github/workflows/deploy.yml, or by hand). Exit status: 0 no drift, 1 drift (the
# resources are listed, and added to the job summary in GitHub Actions), 2 the check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

stack="${1:?usage: scripts/drift.sh <stack>}"
command -v pulumi >/dev/null 2>&1 || { echo "error: the pulumi CLI is not on PATH" >&2; exit 2; }
[ -x .venv/bin/python ] || ./scripts/setup.sh

report="$(mktemp)"
trap 'rm -f "$report"' EXIT
rc=0
pulumi refresh --preview-only --json --stack "$stack" --non-interactive >"$report" || rc=$?
.venv/bin/python -m mlops.drift "$stack" "$report" "$rc"
