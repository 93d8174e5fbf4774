#!/usr/bin/env bash
# The kind job: the platform with real containers, from an empty kind cluster to nothing left.
# .github/workflows/integration.yml runs only this, so a machine with Docker runs the same.
#
#   ./scripts/kind-test.sh
#
# 1. creates the kind cluster $MLOPS_KIND_CLUSTER (default mlops-kind; one of that name is
#    replaced) from scripts/kind-cluster.yaml;
# 2. ./scripts/up.sh kind: builds the workload images and `kind load`s them, the released
#    Pulumi CLI of the pinned version (scripts/pulumi-cli.sh), and `pulumi up` of the kind stack
#    with KServe and cert-manager from their chart repositories, its state in a throwaway file
#    backend;
# 3. mlops verify kind: tests/integration against the live cluster, where a skipped check
#    fails the run;
# 4. the golden path in the cluster (tests/integration/test_golden_path_live.py): seeded
#    features, the training workflow registered and launched through Flyte, the
#    InferenceService Ready, a transaction scored through it;
# 5. on failure, saves logs, events and `kubectl describe` output in $MLOPS_KIND_ARTIFACTS
#    (default ./kind-artifacts);
# 6. `pulumi destroy`, a check that nothing of ours remains, and the cluster deleted.
#
# MLOPS_KIND_KEEP=1 keeps the cluster and the stack afterwards. Needs Docker, kubectl, and Go
# (it builds the kind of tools/kind/go.mod) or kind; without a Docker engine it stops before it
# creates anything.
set -Eeuo pipefail
# shellcheck source=lib/kind.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kind.sh"
cd "$REPO_ROOT"

STACK=kind
CLUSTER="${MLOPS_KIND_CLUSTER:-mlops-kind}"
CONTEXT="kind-$CLUSTER"
ARTIFACTS="${MLOPS_KIND_ARTIFACTS:-$REPO_ROOT/kind-artifacts}"
SELECTOR="app.kubernetes.io/part-of=mlops-platform"
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

# The deploy writes the kube context and the encrypted secrets into the stack file; the file in
# the repository is put back afterwards.
stack_file="stacks/Pulumi.$STACK.yaml"
saved_stack_file="$(mktemp)"
cp "$stack_file" "$saved_stack_file"
state="$(mktemp -d)"
export MLOPS_STATE_DIR="$state" PULUMI_BACKEND_URL="file://$state/pulumi"
export PULUMI_CONFIG_PASSPHRASE_FILE="$state/passphrase"
mkdir -p "$state/pulumi"
(umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$PULUMI_CONFIG_PASSPHRASE_FILE")
pulumi_env="$(./scripts/pulumi-cli.sh env)"
eval "$pulumi_env"

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

# Everything labelled as ours, in the kinds a deploy creates; empty once destroyed.
leftovers() {
    local kind
    for kind in namespaces clusterroles clusterrolebindings persistentvolumeclaims persistentvolumes \
        pods secrets configmaps services serviceaccounts networkpolicies; do
        kubectl get "$kind" -A -l "$SELECTOR" --no-headers -o name 2>/dev/null || true
    done
}

destroy() {
    log "pulumi destroy"
    pulumi destroy --stack "$STACK" --yes --skip-preview --non-interactive
    local deadline=$(($(date +%s) + 300)) left
    while left="$(leftovers)" && [ -n "$left" ]; do
        if (($(date +%s) > deadline)); then
            echo "[kind-test] left after destroy:" >&2
            echo "$left" >&2
            return 1
        fi
        sleep 5
    done
    log "nothing labelled $SELECTOR remains"
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

log "kind cluster $CLUSTER"
if "$kind" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    "$kind" delete cluster --name "$CLUSTER"
fi
"$kind" create cluster --name "$CLUSTER" --config "$KIND_CONFIG" --wait 300s

log "pulumi up of the $STACK stack (scripts/up.sh)"
KUBE_CONTEXT="$CONTEXT" ./scripts/up.sh "$STACK" --yes --skip-preview --non-interactive
log "deployed"
footprint "after pulumi up"

log "checks against the live cluster (mlops verify, on the context the stack is pinned to)"
# The workloads group: the checks and the golden path drive the platform's clients.
./scripts/setup.sh --group workloads
.venv/bin/mlops verify "$STACK"

log "golden path in the cluster"
MLOPS_VERIFY_STACK="$STACK" MLOPS_KUBE_CONTEXT="$CONTEXT" MLOPS_REQUIRE_CONTAINERS=1 \
    .venv/bin/python -m pytest tests/integration/test_golden_path_live.py -v -p no:cacheprovider
footprint "with the model served"

if [ "${MLOPS_KIND_KEEP:-0}" != 1 ]; then
    destroy
fi
log "passed"
