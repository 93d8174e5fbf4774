#!/usr/bin/env bash
# A local Kubernetes control plane on 127.0.0.1 for the control-plane rung of the verification
# ladder: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, from the binaries
# that scripts/toolchain.sh builds. No container ever runs: kwok plays the kubelet of one fake node
# (4 CPU, 8Gi, 110 pods), marks pods Running/Ready and Job pods Succeeded, and binds claims of the
# default StorageClass "kwok-volume" to fake volumes.
#
#   scripts/local-cluster.sh up      start it (a cluster that is already up is left as it is)
#   scripts/local-cluster.sh env     print exports: eval "$(scripts/local-cluster.sh env)"
#   scripts/local-cluster.sh status  show the processes, their listeners and the node
#   scripts/local-cluster.sh smoke   a Pod, a StatefulSet with a claim and a Job reach Ready /
#                                    Succeeded; then their namespace is deleted and finalized
#   scripts/local-cluster.sh down    stop everything and remove the state directory
#
# State (certificates, kubeconfig, pids, logs, etcd data) lives outside the repository in
# MLOPS_LOCAL_CLUSTER_DIR (default ${XDG_STATE_HOME:-~/.local/state}/mlops-platform/local-cluster).
# Ports are free loopback ports picked at `up`; MLOPS_LOCAL_CLUSTER_API_PORT fixes the API port.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${MLOPS_LOCAL_CLUSTER_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/mlops-platform/local-cluster}"
KUBECONFIG_PATH="$STATE_DIR/kubeconfig"
NODE_NAME="kwok-node-0"
SERVICE_CIDR="10.96.0.0/16"
SERVICE_IP="10.96.0.1" # first address of SERVICE_CIDR: the kubernetes Service
POD_CIDR="10.244.0.1/16"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok) # start order

eval "$("$SCRIPT_DIR/toolchain.sh" env)"
BIN="$MLOPS_TOOLCHAIN_DIR/bin"
KWOK_SHARE="$MLOPS_TOOLCHAIN_DIR/share/kwok"

log() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

print_env() {
    echo "export KUBECONFIG=\"$KUBECONFIG_PATH\""
    "$SCRIPT_DIR/toolchain.sh" env
}

# ---- processes -----------------------------------------------------------------------------------
pid_of() { # the pid of a component we started and that still runs, else nothing
    local f="$STATE_DIR/pids/$1.pid" pid exe
    [[ -f "$f" ]] || return 1
    read -r pid exe <"$f"
    [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
    # Guard against pid reuse: the process must still run the binary we started.
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$exe" ]] || return 1
    echo "$pid"
}

start() { # start NAME ARGS...: run $BIN/NAME detached, logging to logs/NAME.log
    local name="$1"
    shift
    setsid "$BIN/$name" "$@" >"$STATE_DIR/logs/$name.log" 2>&1 </dev/null &
    local pid=$! exe n
    exe="$(readlink -f "$BIN/$name")"
    echo "$pid $exe" >"$STATE_DIR/pids/$name.pid"
    for ((n = 0; n < 50; n++)); do # until setsid has exec'd the binary
        [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$exe" || ! -d "/proc/$pid" ]] && break
        sleep 0.05
    done
    log "started $name (pid $pid)"
}

wait_until() { # wait_until NAME SECONDS COMMAND...: poll COMMAND while NAME runs
    local name="$1" deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ! pid_of "$name" >/dev/null; then
            log "$name exited; the end of $STATE_DIR/logs/$name.log:"
            tail -n 25 "$STATE_DIR/logs/$name.log" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "$name not ready after $2s; the end of $STATE_DIR/logs/$name.log:"
            tail -n 25 "$STATE_DIR/logs/$name.log" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

stop_all() {
    local i name pid n
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
        name="${COMPONENTS[$i]}"
        pid="$(pid_of "$name")" || continue
        kill -TERM "$pid" 2>/dev/null || true
        for ((n = 0; n < 100; n++)); do
            [[ -d "/proc/$pid" ]] || break
            sleep 0.1
        done
        if [[ -d "/proc/$pid" ]]; then
            log "$name (pid $pid) ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Every listening socket of our processes must be on loopback.
check_listeners() {
    local name pid bad=0 line
    for name in "${COMPONENTS[@]}"; do
        pid="$(pid_of "$name")" || continue
        while read -r line; do
            [[ -z "$line" ]] && continue
            local addr
            addr="$(awk '{print $4}' <<<"$line")"
            case "$addr" in
            127.* | "[::1]:"*) ;;
            *)
                log "$name listens on $addr, beyond loopback"
                bad=1
                ;;
            esac
        done < <(ss -Hltnp 2>/dev/null | grep -F "pid=$pid," || true)
    done
    return "$bad"
}

listeners() {
    local name pid
    for name in "${COMPONENTS[@]}"; do
        pid="$(pid_of "$name")" || { printf '%-24s not running\n' "$name"; continue; }
        printf '%-24s pid %-8s listens on %s\n' "$name" "$pid" \
            "$(ss -Hltnp 2>/dev/null | grep -F "pid=$pid," | awk '{print $4}' | sort -u | tr '\n' ' ')"
    done
}

# ---- certificates and kubeconfig -----------------------------------------------------------------
make_pki() {
    local pki="$STATE_DIR/pki"
    mkdir -p "$pki"
    (
        cd "$pki"
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
            -subj "/CN=mlops-local-ca" -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
        sign() { # sign NAME SUBJECT EXTENSIONS
            openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
            printf '%b' "$3" >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
                -days 365 -out "$1.crt" -extfile "$1.ext" 2>/dev/null
            rm -f "$1.csr" "$1.ext"
        }
        sign apiserver "/CN=kube-apiserver" \
            "subjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        # One client identity for the admin and every component: all local, all trusted.
        sign admin "/O=system:masters/CN=mlops-local-admin" \
            "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    )
}

write_kubeconfig() {
    local pki="$STATE_DIR/pki"
    (
        umask 077
        cat >"$KUBECONFIG_PATH" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: mlops-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: mlops-local-admin
  user:
    client-certificate-data: $(base64 -w0 "$pki/admin.crt")
    client-key-data: $(base64 -w0 "$pki/admin.key")
contexts:
- name: mlops-local
  context:
    cluster: mlops-local
    user: mlops-local-admin
current-context: mlops-local
EOF
    )
}

write_kwok_config() {
    {
        cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  # kwok applies no defaults to a config file's options: set what the node lease controller
  # and the stage players need (the values kwokctl uses).
  nodeLeaseDurationSeconds: 40
  nodeLeaseParallelism: 4
  nodePlayStageParallelism: 4
  podPlayStageParallelism: 4
  podsOnNodeSyncParallelism: 1
EOF
        local f
        for f in "$KWOK_SHARE"/stages/*.yaml; do
            echo "---"
            cat "$f"
        done
    } >"$STATE_DIR/kwok.yaml"
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

# ---- commands ------------------------------------------------------------------------------------
api_ready() {
    curl -sf --max-time 2 --cacert "$STATE_DIR/pki/ca.crt" --cert "$STATE_DIR/pki/admin.crt" \
        --key "$STATE_DIR/pki/admin.key" "https://127.0.0.1:$API_PORT/readyz" >/dev/null
}

cmd_up() {
    local name
    for name in "${COMPONENTS[@]}" kubectl; do
        [[ -x "$BIN/$name" ]] || die "$BIN/$name is missing: run scripts/toolchain.sh first"
    done
    [[ -f "$KWOK_SHARE/storage-class.yaml" ]] || die "kwok stages missing: run scripts/toolchain.sh"
    command -v openssl >/dev/null || die "openssl is missing (Debian: apt-get install openssl)"
    command -v ss >/dev/null || die "ss is missing (Debian: apt-get install iproute2)"

    if [[ -f "$STATE_DIR/ports.env" ]]; then
        # shellcheck disable=SC1091
        source "$STATE_DIR/ports.env"
        local all=1
        for name in "${COMPONENTS[@]}"; do pid_of "$name" >/dev/null || all=0; done
        if ((all)) && api_ready; then
            log "already up; kubeconfig: $KUBECONFIG_PATH"
            echo "$KUBECONFIG_PATH"
            return 0
        fi
        log "a previous cluster is partly down; restarting from scratch"
        stop_all
        rm -rf "$STATE_DIR"
    fi

    local started=$SECONDS
    mkdir -p "$STATE_DIR/pids" "$STATE_DIR/logs" "$STATE_DIR/etcd"
    chmod 700 "$STATE_DIR"
    trap 'log "up failed; stopping what started (logs kept in $STATE_DIR/logs)"; stop_all' ERR

    API_PORT="${MLOPS_LOCAL_CLUSTER_API_PORT:-$(free_port)}"
    ETCD_PORT="$(free_port)"
    ETCD_PEER_PORT="$(free_port)"
    KCM_PORT="$(free_port)"
    SCHEDULER_PORT="$(free_port)"
    KWOK_PORT="$(free_port)"
    declare -p API_PORT ETCD_PORT ETCD_PEER_PORT KCM_PORT SCHEDULER_PORT KWOK_PORT |
        sed 's/^declare -- //' >"$STATE_DIR/ports.env"

    make_pki
    write_kubeconfig
    write_kwok_config
    local pki="$STATE_DIR/pki" kc="$KUBECONFIG_PATH"

    start etcd --name local --data-dir "$STATE_DIR/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --log-level warn
    wait_until etcd 30 curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

    start kube-apiserver --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
        --secure-port "$API_PORT" --cert-dir "$pki/apiserver-generated" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" --endpoint-reconciler-type none \
        --allow-privileged=true --profiling=false
    wait_until kube-apiserver 90 api_ready

    start kube-controller-manager --kubeconfig "$kc" \
        --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
        --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$pki/kcm-generated" \
        --leader-elect=false --root-ca-file "$pki/ca.crt" \
        --service-account-private-key-file "$pki/sa.key" \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
    start kube-scheduler --kubeconfig "$kc" \
        --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
        --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --cert-dir "$pki/scheduler-generated" \
        --leader-elect=false --profiling=false
    start kwok --kubeconfig "$kc" --config "$STATE_DIR/kwok.yaml" \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --node-ip 127.0.0.1 --cidr "$POD_CIDR" --server-address "127.0.0.1:$KWOK_PORT"
    local k8s_health=(curl -skf --max-time 2)
    wait_until kube-controller-manager 60 "${k8s_health[@]}" "https://127.0.0.1:$KCM_PORT/healthz"
    wait_until kube-scheduler 60 "${k8s_health[@]}" "https://127.0.0.1:$SCHEDULER_PORT/healthz"
    wait_until kwok 60 curl -sf --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"

    node_manifest | kubectl apply -f - >/dev/null
    kubectl apply -f "$KWOK_SHARE/storage-class.yaml" >/dev/null
    wait_until kwok 60 kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
    wait_until kube-controller-manager 60 kubectl get serviceaccount default -n default
    check_listeners
    trap - ERR
    log "up in $((SECONDS - started))s: API https://127.0.0.1:$API_PORT, node $NODE_NAME, state $STATE_DIR"
    log "use it: eval \"\$(scripts/local-cluster.sh env)\""
    echo "$KUBECONFIG_PATH"
}

cmd_status() {
    [[ -f "$STATE_DIR/ports.env" ]] || { log "not up (no state in $STATE_DIR)"; return 1; }
    # shellcheck disable=SC1091
    source "$STATE_DIR/ports.env"
    listeners
    if api_ready; then
        kubectl get nodes -o wide
    else
        log "the API server at 127.0.0.1:$API_PORT is not ready"
        return 1
    fi
}

cmd_down() {
    stop_all
    if [[ -d "$STATE_DIR" ]]; then
        rm -rf "$STATE_DIR"
        log "removed $STATE_DIR"
    fi
}

cmd_smoke() {
    [[ -f "$STATE_DIR/ports.env" ]] || die "not up: run scripts/local-cluster.sh up"
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
