#!/usr/bin/env bash
# Selects the backend of a stack for a pipeline job (.github/workflows/deploy.yml) and prints
# `backend=<url>` (and, for a throwaway backend, `passphrase=<its generated passphrase>`,
# masked in the job's log): lines for $GITHUB_OUTPUT.
#
#   scripts/pipeline-stack.sh <stack>               the configured backend, which must hold the
#                                                   stack (deploys, drift checks)
#   scripts/pipeline-stack.sh <stack> --offline-fallback
#       the configured backend when it holds the stack; otherwise a throwaway file backend with
#       the stack created and its secrets generated, so that a preview validates the config and
#       shows the whole plan without any cluster (pull requests from forks, the ci and kind
#       stacks, environments not set up yet)
#
# The configured backend is PULUMI_BACKEND_URL (s3://, gs://, azblob://, file://), or Pulumi
# Cloud when only PULUMI_ACCESS_TOKEN is set (docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."

stack="${1:?usage: scripts/pipeline-stack.sh <stack> [--offline-fallback]}"
fallback="${2:-}"
[ -f "stacks/Pulumi.$stack.yaml" ] || { echo "error: no stack file stacks/Pulumi.$stack.yaml" >&2; exit 2; }
command -v pulumi >/dev/null 2>&1 || { echo "error: the pulumi CLI is not on PATH" >&2; exit 1; }
export PULUMI_SKIP_UPDATE_CHECK=true

configured=""
if [ -n "${PULUMI_BACKEND_URL:-}" ]; then
    configured="$PULUMI_BACKEND_URL"
elif [ -n "${PULUMI_ACCESS_TOKEN:-}" ]; then
    configured="https://api.pulumi.com"
fi

if [ -n "$configured" ] && pulumi login "$configured" --non-interactive >&2 &&
    pulumi stack select "$stack" --non-interactive >&2; then
    echo "[pipeline] stack $stack in its backend" >&2
    echo "backend=$configured"
    exit 0
fi
if [ "$fallback" != --offline-fallback ]; then
    echo "error: stack $stack is not in a configured backend: set PULUMI_BACKEND_URL (or" \
        "PULUMI_ACCESS_TOKEN) and the secrets provider's credentials in the environment, and" \
        "create the stack with ./scripts/up.sh $stack (docs/deploy.md)" >&2
    exit 1
fi

state="$(mktemp -d)"
passphrase="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
[ -z "${GITHUB_ACTIONS:-}" ] || echo "::add-mask::$passphrase"
export PULUMI_CONFIG_PASSPHRASE="$passphrase"
unset PULUMI_CONFIG_PASSPHRASE_FILE
# No `pulumi login`: the later steps get the backend from this script's output.
export PULUMI_BACKEND_URL="file://$state"
./scripts/bootstrap-secrets.sh "$stack" >&2
echo "[pipeline] stack $stack in a throwaway backend, with generated secrets: nothing is deployed" >&2
echo "backend=file://$state"
echo "passphrase=$passphrase"
