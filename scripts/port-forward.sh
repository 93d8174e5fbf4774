#!/usr/bin/env bash
# Reaches a stack's UIs and APIs from this machine: MLflow, the Flyte console and API, Grafana
# and Prometheus (those of its enabled components), each on localhost at its own port, with
# where its login is.
#
#   ./scripts/port-forward.sh <stack>           run the port-forwards until Ctrl-C
#   ./scripts/port-forward.sh <stack> --print   print the kubectl commands and logins only
#
# Uses the current kube context (or $KUBE_CONTEXT). Prometheus has no login of its own: keep it
# behind a port-forward, or expose it only through an authenticating ingress (docs/operations.md).
# Flyte's API takes a client-credentials login (client mlops-ci), its console the stack's
# identity provider (flyte.auth.oidc).
set -euo pipefail
cd "$(dirname "$0")/.."

stack="${1:?usage: ./scripts/port-forward.sh <stack> [--print]}"
mode="${2:-run}"
[ -x .venv/bin/python ] || ./scripts/setup.sh
services="$(.venv/bin/python -m mlops.access --stack "$stack")"
context=()
[ -z "${KUBE_CONTEXT:-}" ] || context=(--context "$KUBE_CONTEXT")

describe() {
    local name namespace service port login address what user secret key
    while read -r name namespace service port login address what; do
        printf '  %-14s %-23s %s\n' "$name" "$address" "$what"
        if [ "$login" = none ]; then
            printf '  %-14s no login of its own\n' ""
        else
            user="${login%%:*}"
            secret="${login#*:}"
            key="${secret#*/}"
            secret="${secret%%/*}"
            printf '  %-14s login %s, password: kubectl -n %s get secret %s -o jsonpath={.data.%s} | base64 -d\n' \
                "" "$user" "$namespace" "$secret" "$key"
        fi
    done <<<"$services"
}

if [ "$mode" = --print ]; then
    while read -r _ namespace service port _; do
        echo "kubectl ${context[*]}${context[*]:+ }-n $namespace port-forward svc/$service $port:$port"
    done <<<"$services"
    describe
    exit 0
fi
[ "$mode" = run ] || { echo "usage: ./scripts/port-forward.sh <stack> [--print]" >&2; exit 2; }
command -v kubectl >/dev/null 2>&1 || { echo "error: kubectl is not on PATH" >&2; exit 1; }

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
while read -r _ namespace service port _; do
    kubectl "${context[@]}" -n "$namespace" port-forward "svc/$service" "$port:$port" >/dev/null &
    pids+=($!)
done <<<"$services"
echo "port-forwards of stack $stack (Ctrl-C stops them):"
describe
wait -n "${pids[@]}" || true
echo "a port-forward stopped (the service or the cluster went away?); stopping the others" >&2
