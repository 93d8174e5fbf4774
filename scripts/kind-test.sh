#!/usr/bin/env bash
# The kind job: the platform with real containers, from an empty kind cluster to nothing left,
# through the same `mlops` commands a user runs. .github/workflows/integration.yml runs only this,
# so a machine with Docker runs the same.
#
#   ./scripts/kind-test.sh
#
# 1. removes a kind cluster named mlops-kind left by an earlier run;
# 2. `mlops up kind --yes`: the kind cluster, the workload images built and `kind load`ed, the
#    Pulumi CLI (the released one of the pinned version), secrets, and `pulumi up` of the kind
#    stack with KServe and cert-manager from their chart repositories; its state in a throwaway
#    state directory;
# 3. `mlops verify kind`: tests/integration against the live cluster, a skipped check failing;
# 4. the golden path (tests/integration/test_golden_path_live.py, which runs `mlops demo run
#    kind`): seeded features, training through Flyte, the InferenceService, a scored transaction;
# 5. on failure, saves logs, events and `kubectl describe` output in $MLOPS_KIND_ARTIFACTS
#    (default ./kind-artifacts);
# 6. `mlops down kind --yes --delete-cluster`: destroy, the check that nothing of ours remains,
#    the cluster deleted.
#
# MLOPS_KIND_KEEP=1 keeps the cluster and the stack afterwards. Needs Docker, kubectl, and Go
# (it builds the kind of tools/kind/go.mod) or kind; without a Docker engine it stops before it
# creates anything.
set -Eeuo pipefail
# shellcheck source=lib/kind.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kind.sh"
cd "$REPO_ROOT"

STACK=kind
CLUSTER="mlops-$STACK"
CONTEXT="kind-$CLUSTER"
ARTIFACTS="${MLOPS_KIND_ARTIFACTS:-$REPO_ROOT/kind-artifacts}"
started=$(date +%s)
log() { printf '[kind-test] %s (%d s)\n' "$*" "$(($(date +%s) - started))" >&2; }

if ! docker_ready; then
    cat >&2 <<EOF
[kind-test] no Docker engine answers (docker info): kind runs its nodes as Docker containers,
so the kind job cannot run on this machine. Nothing was created.
  - With Docker (and Go or kind), run ./scripts/kind-test.sh again; on GitHub the integration
    workflow (.github/workflows/integration.yml) runs it.
  - The checks that need no running container run against a local control plane:
    ./scripts/test.sh -m integration
EOF
    exit 2
fi
if ! command -v kubectl >/dev/null 2>&1; then
    echo "[kind-test] kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/)" >&2
    exit 2
fi
kind="$(kind_cli)"
kubectl() { command kubectl --context "$CONTEXT" "$@"; }
./scripts/setup.sh
mlops() { .venv/bin/mlops "$@"; }

# The deploy writes the kube context pin and the encrypted secrets into the stack file; the file
# in the repository is put back afterwards.
stack_file="stacks/Pulumi.$STACK.yaml"
saved_stack_file="$(mktemp)"
cp "$stack_file" "$saved_stack_file"
state="$(mktemp -d)"
export MLOPS_STATE_DIR="$state"
unset PULUMI_BACKEND_URL PULUMI_ACCESS_TOKEN PULUMI_CONFIG_PASSPHRASE PULUMI_CONFIG_PASSPHRASE_FILE

collect() {
    log "saving logs, events and descriptions in $ARTIFACTS"
    mkdir -p "$ARTIFACTS"
    kubectl get all,events,pvc,inferenceservices,jobs,networkpolicies -A -o wide >"$ARTIFACTS/objects.txt" 2>&1 || true
    kubectl get events -A --sort-by=.lastTimestamp >"$ARTIFACTS/events.txt" 2>&1 || true
    kubectl describe pods -A >"$ARTIFACTS/pods-described.txt" 2>&1 || true
    kubectl describe inferenceservices,deployments,statefulsets,jobs -A >"$ARTIFACTS/described.txt" 2>&1 || true
    local namespace pod
    while read -r namespace pod; do
        kubectl logs -n "$namespace" "$pod" --all-containers --prefix --timestamps \
            >"$ARTIFACTS/logs-$namespace-$pod.txt" 2>&1 || true
        kubectl logs -n "$namespace" "$pod" --all-containers --prefix --previous \
            >"$ARTIFACTS/logs-$namespace-$pod-previous.txt" 2>/dev/null || true
    done < <(kubectl get pods -A --no-headers -o custom-columns=NS:.metadata.namespace,NAME:.metadata.name 2>/dev/null)
    "$kind" export logs "$ARTIFACTS/kind" --name "$CLUSTER" >/dev/null 2>&1 || true
}

# What the node's pods request against what it has (the runner's size).
footprint() {
    log "node requests $1:"
    kubectl describe nodes | awk '/^Allocatable:/,/^System Info:/; /^Allocated resources:/,/^Events:/' >&2 || true
}

finish() {
    local rc=$?
    trap - EXIT
    if ((rc != 0)); then
        collect
    fi
    if [ "${MLOPS_KIND_KEEP:-0}" = 1 ]; then
        log "kept: cluster $CLUSTER, stack state in $state (MLOPS_KIND_KEEP=1)"
    else
        "$kind" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
        rm -rf "$state"
    fi
    cp "$saved_stack_file" "$stack_file"
    rm -f "$saved_stack_file"
    log "finished with exit status $rc"
    exit "$rc"
}
trap finish EXIT

if "$kind" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "removing the kind cluster $CLUSTER of an earlier run"
    "$kind" delete cluster --name "$CLUSTER"
fi

log "mlops up $STACK"
mlops up "$STACK" --yes
log "deployed"
footprint "after mlops up"

log "mlops verify $STACK"
mlops verify "$STACK"

log "golden path in the cluster (mlops demo run $STACK)"
MLOPS_VERIFY_STACK="$STACK" MLOPS_KUBE_CONTEXT="$CONTEXT" MLOPS_REQUIRE_CONTAINERS=1 \
    .venv/bin/python -m pytest tests/integration/test_golden_path_live.py -v -p no:cacheprovider
footprint "with the model served"

if [ "${MLOPS_KIND_KEEP:-0}" != 1 ]; then
    log "mlops down $STACK"
    mlops down "$STACK" --yes --delete-cluster
fi
log "passed"
