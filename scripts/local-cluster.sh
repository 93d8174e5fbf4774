#!/usr/bin/env bash
# A local Kubernetes control plane on 127.0.0.1 for the control-plane rung of the verification
# ladder: kwokctl's binary runtime runs etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok from the binaries scripts/toolchain.sh builds. kwokctl is given every
# binary's path (--*-binary) and a config that lists kwok's stages, so it downloads nothing.
# No container ever runs: kwok plays the kubelet of one fake node (4 CPU, 8Gi, 110 pods), marks
# pods Running/Ready and Job pods Succeeded, and binds claims of the default StorageClass
# "kwok-volume" to fake volumes.
#
#   scripts/local-cluster.sh up      start it (a cluster that is already up is left as it is)
#   scripts/local-cluster.sh env     print exports: eval "$(scripts/local-cluster.sh env)"
#   scripts/local-cluster.sh status  show the processes, their listeners and the node
#   scripts/local-cluster.sh smoke   a Pod, a StatefulSet with a claim and a Job reach Ready /
#                                    Succeeded; then their namespace is deleted and finalized
#   scripts/local-cluster.sh down    stop everything and remove the state directory
#
# scripts/kserve-controller.sh adds the KServe controller to a cluster that is up.
#
# State (kwokctl's work directory: certificates, kubeconfig, pids, logs, etcd data) lives outside
# the repository in MLOPS_LOCAL_CLUSTER_DIR (default: local-cluster/ in mlops's state directory,
# ${MLOPS_STATE_DIR:-${XDG_STATE_HOME:-~/.local/state}/mlops-platform}). kwokctl picks free loopback
# ports; MLOPS_LOCAL_CLUSTER_API_PORT fixes the API port.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${MLOPS_LOCAL_CLUSTER_DIR:-${MLOPS_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/mlops-platform}/local-cluster}"
CLUSTER="mlops-local"
CLUSTER_DIR="$STATE_DIR/clusters/$CLUSTER"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig.yaml"
NODE_NAME="kwok-node-0"
# kwokctl's names for the processes it starts (its pid files: $CLUSTER_DIR/pids/NAME.pid).
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller)

eval "$("$SCRIPT_DIR/toolchain.sh" env)"
BIN="$MLOPS_TOOLCHAIN_DIR/bin"
KWOK_SHARE="$MLOPS_TOOLCHAIN_DIR/share/kwok"
export KWOK_WORKDIR="$STATE_DIR"

log() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }
kwokctl() { "$BIN/kwokctl" --name "$CLUSTER" "$@"; }

print_env() {
    echo "export KUBECONFIG=\"$KUBECONFIG_PATH\""
    "$SCRIPT_DIR/toolchain.sh" env
}

pid_of() { # the pid of a component kwokctl started and that still runs, else nothing
    local pid
    pid="$(cat "$CLUSTER_DIR/pids/$1.pid" 2>/dev/null)" || return 1
    [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
    echo "$pid"
}

api_ready() { kubectl get --raw /readyz >/dev/null 2>&1; }

# Every listening socket of the cluster's processes must be on loopback.
check_listeners() {
    local name pid addr bad=0
    for name in "${COMPONENTS[@]}"; do
        pid="$(pid_of "$name")" || continue
        for addr in $(ss -Hltnp 2>/dev/null | grep -F "pid=$pid," | awk '{print $4}'); do
            case "$addr" in
            127.* | "[::1]:"*) ;;
            *) log "$name listens on $addr, beyond loopback"; bad=1 ;;
            esac
        done
    done
    return "$bad"
}

# kwokctl's configuration: the binary runtime on loopback, and the stages kwok plays (the ones
# kwokctl uses by default, plus fake volume provisioning) in place of its defaults.
write_config() {
    {
        cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
EOF
        local f
        for f in "$KWOK_SHARE"/stages/*.yaml; do
            echo "---"
            cat "$f"
        done
    } >"$STATE_DIR/kwokctl.yaml"
}

node_manifest() {
    local arch
    case "$(uname -m)" in aarch64 | arm64) arch=arm64 ;; *) arch=amd64 ;; esac
    cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: $arch
    node-role.kubernetes.io/worker: ""
    type: kwok
status:
  allocatable: {cpu: "4", memory: 8Gi, pods: "110", ephemeral-storage: 100Gi}
  capacity: {cpu: "4", memory: 8Gi, pods: "110", ephemeral-storage: 100Gi}
  nodeInfo:
    architecture: $arch
    operatingSystem: linux
    kubeletVersion: fake
    kubeProxyVersion: fake
  phase: Running
EOF
}

# until TIMEOUT COMMAND...: retry COMMAND every half second for up to TIMEOUT seconds.
until_ok() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

cmd_up() {
    local name
    for name in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwokctl kubectl; do
        [[ -x "$BIN/$name" ]] || die "$BIN/$name is missing: run scripts/toolchain.sh first"
    done
    [[ -f "$KWOK_SHARE/storage-class.yaml" ]] || die "kwok stages missing: run scripts/toolchain.sh"
    command -v ss >/dev/null || die "ss is missing (Debian: apt-get install iproute2)"

    if [[ -f "$KUBECONFIG_PATH" ]]; then
        local all=1
        for name in "${COMPONENTS[@]}"; do pid_of "$name" >/dev/null || all=0; done
        if ((all)) && api_ready; then
            log "already up; kubeconfig: $KUBECONFIG_PATH"
            echo "$KUBECONFIG_PATH"
            return 0
        fi
        log "a previous cluster is partly down; restarting from scratch"
        cmd_down
    fi

    local started=$SECONDS
    mkdir -p "$STATE_DIR"
    chmod 700 "$STATE_DIR"
    trap 'log "up failed; the end of $STATE_DIR/kwokctl.log (component logs: $CLUSTER_DIR/logs):"
        tail -n 25 "$STATE_DIR/kwokctl.log" >&2; kwokctl delete cluster >/dev/null 2>&1' ERR
    write_config
    local port=()
    [[ -n "${MLOPS_LOCAL_CLUSTER_API_PORT:-}" ]] && port=(--kube-apiserver-port "$MLOPS_LOCAL_CLUSTER_API_PORT")
    # --kubeconfig "": kwokctl leaves ~/.kube/config alone; its own is $KUBECONFIG_PATH.
    "$BIN/kwokctl" --config "$STATE_DIR/kwokctl.yaml" --name "$CLUSTER" create cluster \
        --kubeconfig "" --wait 2m "${port[@]}" \
        --extra-args kube-apiserver=service-cluster-ip-range=10.96.0.0/16 \
        --extra-args kwok-controller=node-ip=127.0.0.1 \
        --extra-args kwok-controller=cidr=10.244.0.1/16 \
        --etcd-binary "$BIN/etcd" \
        --kube-apiserver-binary "$BIN/kube-apiserver" \
        --kube-controller-manager-binary "$BIN/kube-controller-manager" \
        --kube-scheduler-binary "$BIN/kube-scheduler" \
        --kwok-controller-binary "$BIN/kwok" >"$STATE_DIR/kwokctl.log" 2>&1

    node_manifest | kubectl apply -f - >/dev/null
    kubectl apply -f "$KWOK_SHARE/storage-class.yaml" >/dev/null
    until_ok 60 kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
    until_ok 60 kubectl get serviceaccount default -n default
    check_listeners
    trap - ERR
    log "up in $((SECONDS - started))s: $(kubectl config view -o jsonpath='{.clusters[0].cluster.server}'), node $NODE_NAME, state $STATE_DIR"
    log "use it: eval \"\$(scripts/local-cluster.sh env)\""
    echo "$KUBECONFIG_PATH"
}

cmd_status() {
    [[ -f "$KUBECONFIG_PATH" ]] || { log "not up (no cluster in $STATE_DIR)"; return 1; }
    local name pid
    for name in "${COMPONENTS[@]}"; do
        pid="$(pid_of "$name")" || { printf '%-24s not running\n' "$name"; continue; }
        printf '%-24s pid %-8s listens on %s\n' "$name" "$pid" \
            "$(ss -Hltnp 2>/dev/null | grep -F "pid=$pid," | awk '{print $4}' | sort -u | tr '\n' ' ')"
    done
    api_ready || { log "the API server is not ready"; return 1; }
    kubectl get nodes -o wide
}

cmd_down() {
    local name pid pids=() n
    # The KServe controller (scripts/kserve-controller.sh) keeps its state in ours.
    "$SCRIPT_DIR/kserve-controller.sh" down
    for name in "${COMPONENTS[@]}"; do pid="$(pid_of "$name")" && pids+=("$pid"); done
    if [[ -d "$CLUSTER_DIR" ]]; then
        kwokctl delete cluster >/dev/null 2>&1 || log "kwokctl could not delete the cluster; removing its state"
    fi
    # kwokctl kills the processes without waiting for them to go.
    for pid in "${pids[@]}"; do
        for ((n = 0; n < 100; n++)); do
            [[ -d "/proc/$pid" && "$(awk '/^State/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ]] || break
            sleep 0.1
        done
    done
    if [[ -d "$STATE_DIR" ]]; then
        rm -rf "$STATE_DIR"
        log "removed $STATE_DIR"
    fi
}

cmd_smoke() {
    api_ready || die "not up: run scripts/local-cluster.sh up"
    local ns="local-cluster-smoke"
    kubectl create namespace "$ns" >/dev/null
    kubectl apply -n "$ns" -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: smoke-pod}
spec:
  containers: [{name: app, image: registry.invalid/app:1, resources: {requests: {cpu: 100m, memory: 64Mi}}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: smoke-db}
spec:
  serviceName: smoke-db
  replicas: 1
  selector: {matchLabels: {app: smoke-db}}
  template:
    metadata: {labels: {app: smoke-db}}
    spec:
      containers:
      - name: db
        image: registry.invalid/db:1
        readinessProbe: {tcpSocket: {port: 5432}}
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: smoke-job}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: job, image: registry.invalid/job:1, command: ["true"]}]
EOF
    kubectl wait -n "$ns" --for=condition=Ready pod/smoke-pod --timeout=60s
    kubectl rollout status -n "$ns" statefulset/smoke-db --timeout=60s
    kubectl wait -n "$ns" --for=jsonpath='{.status.phase}'=Bound pvc/data-smoke-db-0 --timeout=60s
    kubectl wait -n "$ns" --for=condition=Complete job/smoke-job --timeout=60s
    kubectl get -n "$ns" pods,pvc,statefulsets,jobs -o wide
    kubectl delete namespace "$ns" --wait=true --timeout=90s
    log "smoke passed: pod Ready, statefulset rolled out with a bound claim, job Complete, namespace finalized"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
env) print_env ;;
status) cmd_status ;;
smoke) cmd_smoke ;;
*)
    echo "usage: $0 up|down|env|status|smoke" >&2
    exit 2
    ;;
esac
