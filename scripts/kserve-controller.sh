#!/usr/bin/env bash
# The KServe controller manager of the pinned release (scripts/toolchain.sh builds it) reconciling
# on the local control plane (scripts/local-cluster.sh), as a local process: KServe's CRDs, its
# `inferenceservice-config` for Standard mode (scripts/lib/kserve_objects.py) and its defaulting,
# validating and pod-mutating webhooks, which the API server calls on 127.0.0.1 with a serving
# certificate generated here, so admission runs for real.
#
#   scripts/kserve-controller.sh up      install and start it (one already running is left as it is)
#   scripts/kserve-controller.sh status  the process, its readiness and the webhooks
#   scripts/kserve-controller.sh down    stop it (its objects go with the cluster)
#
# State (certificates, pid, log) lives in the local cluster's state directory, under kserve/;
# the log is kserve/controller.log. MLOPS_KSERVE_WEBHOOK_PORT (default 9443) and
# MLOPS_KSERVE_PROBE_PORT (default 9440) choose its ports.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_ROOT="${MLOPS_LOCAL_CLUSTER_DIR:-${MLOPS_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/mlops-platform}/local-cluster}"
STATE_DIR="$STATE_ROOT/kserve"
# The controller reads its config from this namespace (POD_NAMESPACE), as in the chart.
NAMESPACE="kserve"
WEBHOOK_PORT="${MLOPS_KSERVE_WEBHOOK_PORT:-9443}"
PROBE_PORT="${MLOPS_KSERVE_PROBE_PORT:-9440}"
# controller-runtime reads its serving certificate from $TMPDIR/k8s-webhook-server/serving-certs.
CERT_DIR="$STATE_DIR/tmp/k8s-webhook-server/serving-certs"
PID_FILE="$STATE_DIR/controller.pid"
LOG_FILE="$STATE_DIR/controller.log"

log() { printf 'kserve-controller: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

running_pid() {
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null)" || return 1
    [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
    [[ "$(awk '/^State/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ]] || return 1
    echo "$pid"
}

ready() { curl -fsS "http://127.0.0.1:$PROBE_PORT/readyz" >/dev/null 2>&1; }

cluster_env() {
    eval "$("$SCRIPT_DIR/local-cluster.sh" env)"
    BIN="$MLOPS_TOOLCHAIN_DIR/bin"
    SHARE="$MLOPS_TOOLCHAIN_DIR/share/kserve"
    [[ -x "$BIN/kserve-controller" && -d "$SHARE/crd" ]] ||
        die "the KServe controller is not built: run scripts/toolchain.sh"
    kubectl() { "$BIN/kubectl" "$@"; }
    kubectl get --raw /readyz >/dev/null 2>&1 || die "the local cluster is not up: scripts/local-cluster.sh up"
}

# A CA and a serving certificate for 127.0.0.1, valid for a day: the API server trusts the CA
# through the webhooks' caBundle. The keys never leave the state directory (mode 700).
make_certificates() {
    local dir="$STATE_DIR/pki"
    mkdir -p "$dir" "$CERT_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj "/CN=mlops-local kserve webhook CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$CERT_DIR/tls.key" -out "$dir/tls.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 1 -extfile "$dir/ext.cnf" -out "$CERT_DIR/tls.crt" 2>/dev/null
}

install_objects() {
    local upstream="$STATE_DIR/upstream"
    mkdir -p "$upstream"
    # The release's CRDs are large: server-side apply keeps them out of an annotation.
    kubectl apply --server-side --force-conflicts -f "$SHARE/crd" >/dev/null
    local deadline=$((SECONDS + 60))
    # A CRD has no conditions at all for a moment after it is created: wait would fail on that.
    until kubectl wait --for=condition=Established --timeout=10s -f "$SHARE/crd" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "KServe's CRDs are not Established after 60s"
        sleep 1
    done
    kubectl create namespace "$NAMESPACE" --dry-run=client -o json | kubectl apply -f - >/dev/null
    kubectl create --dry-run=client --validate=false -o json -f "$SHARE/inferenceservice-config.yaml" >"$upstream/config.json"
    kubectl create --dry-run=client --validate=false -o json -f "$SHARE/webhooks.yaml" >"$upstream/webhooks.json"
    python3 "$SCRIPT_DIR/lib/kserve_objects.py" config "$upstream/config.json" "$NAMESPACE" |
        kubectl apply -f - >/dev/null
    python3 "$SCRIPT_DIR/lib/kserve_objects.py" webhooks "$upstream/webhooks.json" \
        "https://127.0.0.1:$WEBHOOK_PORT" "$STATE_DIR/pki/ca.crt" | kubectl apply -f - >/dev/null
}

cmd_up() {
    command -v openssl >/dev/null || die "openssl is missing (Debian: apt-get install openssl)"
    command -v curl >/dev/null || die "curl is missing (Debian: apt-get install curl)"
    cluster_env
    if running_pid >/dev/null && ready; then
        log "already running (pid $(running_pid)); log: $LOG_FILE"
        return 0
    fi
    cmd_down 2>/dev/null
    local started=$SECONDS pid
    mkdir -p "$STATE_DIR"
    chmod 700 "$STATE_DIR"
    make_certificates
    install_objects
    # -metrics-addr 0: no metrics server. The webhook server binds every interface (the
    # manager has no flag for its host); the API server calls it on 127.0.0.1.
    TMPDIR="$STATE_DIR/tmp" POD_NAMESPACE="$NAMESPACE" \
        "$BIN/kserve-controller" -kubeconfig "$KUBECONFIG" -metrics-addr 0 \
        -health-probe-addr "127.0.0.1:$PROBE_PORT" -webhook-port "$WEBHOOK_PORT" \
        >"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"
    local deadline=$((SECONDS + 60))
    until ready; do
        if [[ ! -d "/proc/$pid" ]] || ((SECONDS >= deadline)); then
            log "the controller did not become ready; the end of $LOG_FILE:"
            tail -n 25 "$LOG_FILE" >&2
            cmd_down
            exit 1
        fi
        sleep 0.5
    done
    log "up in $((SECONDS - started))s: pid $pid, webhooks on https://127.0.0.1:$WEBHOOK_PORT, log $LOG_FILE"
}

cmd_status() {
    local pid
    pid="$(running_pid)" || { log "not running"; return 1; }
    ready || { log "pid $pid is not ready (log: $LOG_FILE)"; return 1; }
    log "pid $pid ready; log: $LOG_FILE"
    cluster_env
    kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations -o name | grep kserve
}

cmd_down() {
    local pid n
    if pid="$(running_pid)"; then
        kill "$pid"
        for ((n = 0; n < 100; n++)); do
            running_pid >/dev/null || break
            sleep 0.1
        done
        running_pid >/dev/null && kill -9 "$pid"
        log "stopped pid $pid"
    fi
    rm -f "$PID_FILE"
}

case "${1:-}" in
up) cmd_up ;;
status) cmd_status ;;
down) cmd_down ;;
*)
    echo "usage: $0 up|status|down" >&2
    exit 2
    ;;
esac
