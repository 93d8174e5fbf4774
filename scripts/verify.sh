#!/usr/bin/env bash
# Checks a deployed stack from outside and inside its pods: the integration tier's platform
# checks in live mode, against the current kube context. Run it after any `pulumi up`; the
# deploy pipeline runs it to gate promotion, the kind job after deploying the kind stack.
#
#   ./scripts/verify.sh <stack>          # e.g. dev, staging, prod, kind
#
# KUBECONFIG and MLOPS_KUBE_CONTEXT choose another cluster than the current context. Every
# check must run: a skipped one fails (MLOPS_REQUIRE_CONTAINERS=1); set
# MLOPS_REQUIRE_CONTAINERS=0 for a stack that turns a component off or a cluster that runs no
# container. Lifecycle tests (deploy, change, destroy) and the golden path (it trains and serves
# a model: scripts/kind-test.sh runs it on the kind stack) are not selected. Exit code: pytest's.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[verify] %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

stack="${1:-}"
known="$(find stacks -maxdepth 1 -name 'Pulumi.*.yaml' | sed 's|^stacks/Pulumi\.||; s|\.yaml$||' | sort | paste -sd ' ')"
[[ -n "$stack" ]] || die "usage: scripts/verify.sh <stack> [pytest arguments]; known stacks: $known"
[[ -f "stacks/Pulumi.$stack.yaml" ]] || die "no stack file stacks/Pulumi.$stack.yaml; known stacks: $known"
shift

if ! command -v kubectl >/dev/null 2>&1; then
    # The toolchain's kubectl, when scripts/toolchain.sh has built it; its env builds nothing.
    if toolchain="$(./scripts/toolchain.sh env 2>/dev/null)"; then
        eval "$toolchain"
    fi
    command -v kubectl >/dev/null 2>&1 ||
        die "kubectl is not on PATH (install it, or build the toolchain: scripts/toolchain.sh)"
fi
context=()
[[ -z "${MLOPS_KUBE_CONTEXT:-}" ]] || context=(--context "$MLOPS_KUBE_CONTEXT")
if ! reached="$(kubectl "${context[@]}" get --raw /readyz 2>&1)"; then
    die "no reachable cluster in kube context '$(kubectl "${context[@]}" config current-context 2>/dev/null || echo none)': ${reached//$'\n'/ } (set KUBECONFIG or MLOPS_KUBE_CONTEXT)"
fi

# The workloads group: the checks import the platform's clients (and the golden path drives them).
./scripts/setup.sh --group workloads
export MLOPS_VERIFY_STACK="$stack"
export MLOPS_REQUIRE_CONTAINERS="${MLOPS_REQUIRE_CONTAINERS:-1}"
log "stack $stack, context $(kubectl "${context[@]}" config current-context), MLOPS_REQUIRE_CONTAINERS=$MLOPS_REQUIRE_CONTAINERS"
rc=0
.venv/bin/python -m pytest tests/integration -m "not lifecycle and not golden_path" "$@" || rc=$?
exit "$rc"
