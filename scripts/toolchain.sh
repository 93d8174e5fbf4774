#!/usr/bin/env bash
# Builds the toolchain of the control-plane tier from source, through the Go module proxy only:
# the Pulumi CLI, our Python language host, the kubernetes provider, etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok, kwokctl and the KServe controller manager.
# About 40 minutes on 2 cores the first time; after that a run only checks that everything is there.
#
#   scripts/toolchain.sh [build]   build what is missing; print per-build wall times and a summary
#   scripts/toolchain.sh env       print shell exports: eval "$(scripts/toolchain.sh env)"
#                                  (exit status 1, exports still printed, if not built yet)
#   scripts/toolchain.sh dir       print the toolchain directory
#   scripts/toolchain.sh trim      empty this script's Go build cache (several GB; the binaries and
#                                  the module cache stay); MLOPS_TOOLCHAIN_TRIM=1 does it after
#                                  every build that built something
#   scripts/toolchain.sh clean     remove every built tool and the build caches (the module cache,
#                                  go/mod, stays: the other scripts share it)
#
# Versions: each tool's go.mod under tools/ pins it (tools/pulumi, pulumi-language-python,
# pulumi-resource-kubernetes, etcd, kubernetes, kwok, kserve). Each tool is built into its own directory
# keyed by a hash of its go.mod, go.sum and sources, so a pin change rebuilds that tool only; the
# toolchain directory links them and holds the PULUMI_HOME with the provider plugin.
# The Python SDKs in uv.lock must agree: the language host's sdk/v3 is the pulumi SDK's version,
# the CLI is not older, and the provider is stamped with the pulumi-kubernetes SDK's version (the
# engine loads the plugin version the SDK asks for).
#
# MLOPS_TOOLCHAIN_CACHE overrides the cache root (default ~/.cache/mlops-platform/toolchain).
# Exit status is non-zero only when something the integration tier needs is missing afterwards:
# the Pulumi CLI, the language host, the kubernetes plugin, kube-apiserver, etcd or the KServe
# controller.
# shellcheck disable=SC2317 # the build functions run through `step`, which shellcheck cannot see
set -euo pipefail
# shellcheck source=lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"

# The version of a Python package in uv.lock.
locked_version() {
    python3 -c 'import sys, tomllib
with open(sys.argv[1], "rb") as f:
    versions = {p["name"]: p.get("version") for p in tomllib.load(f)["package"]}
print(versions.get(sys.argv[2]) or sys.exit(f"toolchain: uv.lock locks no {sys.argv[2]}"))' \
        "$REPO_ROOT/uv.lock" "$1"
}
PULUMI_SDK_VERSION="$(locked_version pulumi)"
PULUMI_KUBERNETES_VERSION="$(locked_version pulumi-kubernetes)"

TOOLS=(pulumi pulumi-language-python pulumi-resource-kubernetes etcd kubernetes kwok kserve)
TOOLCHAIN_DIR="$CACHE_ROOT/toolchain-$(tool_key "${TOOLS[@]}" -- "$PULUMI_KUBERNETES_VERSION")"
BIN_DIR="$TOOLCHAIN_DIR/bin"
PULUMI_HOME_DIR="$TOOLCHAIN_DIR/pulumi-home"
LOG_DIR="$TOOLCHAIN_DIR/logs"
BUILD_CACHE="$CACHE_ROOT/go/toolchain-build" # this script's own: `trim` empties it
# What `pulumi up` needs (and the kubernetes plugin in PULUMI_HOME), and the KServe controller
# the integration tier reconciles with.
ESSENTIAL=(pulumi pulumi-language-python pulumi-language-python-exec kube-apiserver etcd kserve-controller)
PLUGIN="$PULUMI_HOME_DIR/plugins/resource-kubernetes-v$PULUMI_KUBERNETES_VERSION/pulumi-resource-kubernetes"

print_env() {
    cat <<EOF
export MLOPS_TOOLCHAIN_DIR="$TOOLCHAIN_DIR"
export PATH="$BIN_DIR:\${PATH}"
export PULUMI_HOME="$PULUMI_HOME_DIR"
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_SKIP_UPDATE_CHECK=true
EOF
}

# ---- Pins that must agree with uv.lock ------------------------------------------------------------
check_pins() {
    local host cli
    host="$(tool_version pulumi-language-python github.com/pulumi/pulumi/sdk/v3)"
    cli="$(tool_version pulumi github.com/pulumi/pulumi/pkg/v3)"
    if [[ "$host" != "v$PULUMI_SDK_VERSION" ]]; then
        echo "toolchain: tools/pulumi-language-python/go.mod pins sdk/v3 $host, uv.lock pulumi $PULUMI_SDK_VERSION;" >&2
        echo "  in tools/pulumi-language-python: go get github.com/pulumi/pulumi/sdk/v3@v$PULUMI_SDK_VERSION && go mod tidy -e" >&2
        return 1
    fi
    if [[ "$(printf '%s\n' "$cli" "v$PULUMI_SDK_VERSION" | sort -V | head -n1)" != "v$PULUMI_SDK_VERSION" ]]; then
        echo "toolchain: the Pulumi CLI in tools/pulumi/go.mod ($cli) is older than uv.lock's pulumi $PULUMI_SDK_VERSION" >&2
        return 1
    fi
    echo "pins: pulumi CLI $cli, language host sdk/v3 $host, kubernetes provider" \
        "$(tool_version pulumi-resource-kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4)" \
        "stamped $PULUMI_KUBERNETES_VERSION,"
    echo "      etcd $(tool_version etcd go.etcd.io/etcd/server/v3), kubernetes" \
        "$(tool_version kubernetes k8s.io/kubernetes), kwok $(tool_version kwok sigs.k8s.io/kwok)," \
        "kserve $(tool_version kserve github.com/kserve/kserve); $(go env GOVERSION)"
}

# ---- Builds: each writes its binaries into the directory $1 -------------------------------------
build_pulumi() {
    local version
    version="$(tool_version pulumi github.com/pulumi/pulumi/pkg/v3)"
    go -C "$TOOLS_DIR/pulumi" build -trimpath -o "$1/" \
        -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" tool
    "$1/pulumi" version
}

build_language_host() {
    local version sdk
    version="$(tool_version pulumi-language-python github.com/pulumi/pulumi/sdk/v3)"
    go -C "$TOOLS_DIR/pulumi-language-python" build -trimpath -o "$1/pulumi-language-python" \
        -ldflags "-s -w -X main.Version=${version#v}" .
    # The SDK release's shim that runs a Python program for the host (it finds it beside itself).
    sdk="$(tool_source pulumi-language-python github.com/pulumi/pulumi/sdk/v3)"
    install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$1/"
}

build_kubernetes_provider() {
    local src copy flags
    src="$(tool_source pulumi-resource-kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4)"
    copy="$STEP_TMP/provider"
    # `go generate` writes the schema files that main.go embeds, so the build runs in a writable
    # copy of the module, as its own main module: it gets the tool's replace directives and
    # go.sum, so the versions and checksums are still the ones tools/ commits.
    cp -R "$src" "$copy"
    chmod -R u+w "$copy"
    mapfile -t flags < <(go -C "$TOOLS_DIR/pulumi-resource-kubernetes" mod edit -json | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    print("-replace=" + old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
          + "=" + new["Path"] + "@" + new["Version"])')
    go -C "$copy" mod edit "${flags[@]}"
    cp "$TOOLS_DIR/pulumi-resource-kubernetes/go.sum" "$copy/go.sum"
    (cd "$copy/cmd/pulumi-resource-kubernetes" && VERSION="$PULUMI_KUBERNETES_VERSION" go generate .)
    go -C "$copy" build -trimpath -o "$1/pulumi-resource-kubernetes" -ldflags \
        "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" \
        ./cmd/pulumi-resource-kubernetes
}

build_etcd() {
    # go.etcd.io/etcd/server/v3 is itself the etcd main package (its main.go calls etcdmain.Main).
    go -C "$TOOLS_DIR/etcd" build -trimpath -o "$1/etcd" -ldflags "-s -w" go.etcd.io/etcd/server/v3
    "$1/etcd" --version
}

build_kubernetes() {
    local version minor ldflags pkg
    version="$(tool_version kubernetes k8s.io/kubernetes)"
    minor="${version#v1.}"
    minor="${minor%%.*}"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    # kube-apiserver, kube-controller-manager, kube-scheduler and kubectl: the module's tools.
    go -C "$TOOLS_DIR/kubernetes" build -trimpath -o "$1/" -ldflags "$ldflags" tool
    "$1/kube-apiserver" --version
    "$1/kubectl" version --client
}

build_kwok() {
    local stages
    go -C "$TOOLS_DIR/kwok" build -trimpath -o "$1/" -ldflags "-s -w" tool # kwok and kwokctl
    "$1/kwokctl" --version
    # The stages that make kwok act like a kubelet (the ones kwokctl uses by default, plus fake
    # volume provisioning) and kwok's StorageClass, for scripts/local-cluster.sh.
    stages="$(tool_source kwok sigs.k8s.io/kwok)/kustomize/stage"
    mkdir -p "$1/share/kwok/stages"
    install -m 0644 "$stages"/node/fast/node-initialize.yaml \
        "$stages"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
        "$stages"/pod/fast/pod-ready.yaml "$stages"/pod/fast/pod-complete.yaml \
        "$stages"/pod/fast/pod-delete.yaml "$stages"/volume/fast/pvc-provision.yaml \
        "$stages"/volume/fast/pv-bind.yaml "$stages"/volume/fast/pv-delete.yaml \
        "$stages"/volume/fast/pvc-delete.yaml "$1/share/kwok/stages/"
    install -m 0644 "$stages"/volume/fast/storage-class.yaml "$1/share/kwok/"
}

build_kserve() {
    local src
    # The release's manager is named "manager"; kserve-controller says what it is on PATH.
    go -C "$TOOLS_DIR/kserve" build -trimpath -o "$1/kserve-controller" -ldflags "-s -w" \
        github.com/kserve/kserve/cmd/manager
    "$1/kserve-controller" --help 2>&1 | grep -q -- -webhook-port
    # The release's own generated CRDs (controller-gen output, trimmed by its Makefile to what an
    # apiserver accepts) and default config, as the module proxy serves them.
    src="$(tool_source kserve github.com/kserve/kserve)"
    mkdir -p "$1/share/kserve/crd"
    install -m 0644 "$src"/config/crd/full/serving.kserve.io_*.yaml "$1/share/kserve/crd/"
    install -m 0644 "$src"/config/crd/full/clusterstoragecontainer/serving.kserve.io_*.yaml "$1/share/kserve/crd/"
    install -m 0644 "$src"/config/webhook/manifests.yaml "$1/share/kserve/webhooks.yaml"
    install -m 0644 "$src"/config/configmap/inferenceservice.yaml "$1/share/kserve/inferenceservice-config.yaml"
}

# The provider goes into PULUMI_HOME only: a pulumi-resource-kubernetes on PATH would take
# precedence over the installed plugin (with a warning on every run).
install_provider_plugin() {
    local provider="$1/pulumi-resource-kubernetes"
    [[ -x "$PLUGIN" ]] && return 0
    [[ -x "$BIN_DIR/pulumi" && -x "$provider" ]] || return 0 # a build failed: reported already
    echo "==> installing the kubernetes plugin $PULUMI_KUBERNETES_VERSION into $PULUMI_HOME_DIR"
    if ! "$BIN_DIR/pulumi" plugin install resource kubernetes "$PULUMI_KUBERNETES_VERSION" \
        --file "$provider" --non-interactive >"$LOG_DIR/kubernetes-plugin.log" 2>&1; then
        tail -n 15 "$LOG_DIR/kubernetes-plugin.log" | sed 's/^/      | /'
        FAILED+=(kubernetes-plugin)
    fi
}

# ---- Steps: timings, logs, failures -----------------------------------------------------------
declare -a SUMMARY=() FAILED=()
BUILT_SOMETHING=0
STEP_TMP="" # the running step's scratch directory

now_ms() { echo $(($(date +%s%N) / 1000000)); }
fmt_secs() { printf '%d.%ds' $(($1 / 1000)) $((($1 % 1000) / 100)); }

# step NAME DIR COMMAND...: unless DIR exists, run COMMAND SCRATCH with errexit, logging to
# logs/NAME.log, and rename SCRATCH to DIR when it succeeds (an interrupted build leaves nothing).
step() {
    local name="$1" dir="$2"
    shift 2
    if [[ -d "$dir" ]]; then
        printf '==> %-28s cached\n' "$name"
        SUMMARY+=("$(printf '%-28s %10s' "$name" cached)")
        return 0
    fi
    printf '==> %-28s building (log: %s)\n' "$name" "$LOG_DIR/$name.log"
    BUILT_SOMETHING=1
    local start elapsed rc=0
    start=$(now_ms)
    # In the background so that errexit holds inside (it is ignored in a `|| rc=$?` context).
    (
        set -euo pipefail
        STEP_TMP="$(mktemp -d "$CACHE_ROOT/tmp/$name.XXXXXX")"
        trap 'chmod -R u+w "$STEP_TMP" 2>/dev/null; rm -rf "$STEP_TMP"' EXIT
        mkdir "$STEP_TMP/out"
        "$@" "$STEP_TMP/out"
        mkdir -p "$(dirname "$dir")"
        mv -T "$STEP_TMP/out" "$dir"
    ) >"$LOG_DIR/$name.log" 2>&1 &
    wait $! || rc=$?
    elapsed=$(fmt_secs $(($(now_ms) - start)))
    if [[ $rc -eq 0 ]]; then
        printf '    %-28s built in %s\n' "$name" "$elapsed"
        SUMMARY+=("$(printf '%-28s %10s' "$name" "$elapsed")")
    else
        printf '    %-28s FAILED after %s (exit %s); the end of its log:\n' "$name" "$elapsed" "$rc"
        tail -n 15 "$LOG_DIR/$name.log" | sed 's/^/      | /'
        SUMMARY+=("$(printf '%-28s %10s FAILED' "$name" "$elapsed")")
        FAILED+=("$name")
    fi
}

# Link every built binary into bin/ (and kwok's stages into share/): PATH needs one directory.
link_toolchain() {
    local tool dir file
    mkdir -p "$BIN_DIR" "$TOOLCHAIN_DIR/share"
    for tool in pulumi pulumi-language-python etcd kubernetes kwok kserve; do
        dir="$(tool_dir "$tool")"
        [[ -d "$dir" ]] || continue
        for file in "$dir"/*; do
            [[ -f "$file" && -x "$file" ]] && ln -sfn "$file" "$BIN_DIR/"
        done
    done
    dir="$(tool_dir kwok)/share/kwok"
    [[ -d "$dir" ]] && ln -sfn "$dir" "$TOOLCHAIN_DIR/share/kwok"
    dir="$(tool_dir kserve)/share/kserve"
    [[ -d "$dir" ]] && ln -sfn "$dir" "$TOOLCHAIN_DIR/share/kserve"
    return 0
}

missing_essentials() {
    local b
    for b in "${ESSENTIAL[@]}"; do [[ -x "$BIN_DIR/$b" ]] || echo "$b"; done
    [[ -x "$PLUGIN" ]] || echo "the kubernetes plugin in PULUMI_HOME"
}

build_all() {
    go_tools_env "$BUILD_CACHE"
    export PULUMI_HOME="$PULUMI_HOME_DIR" PULUMI_SKIP_UPDATE_CHECK=true
    mkdir -p "$LOG_DIR" "$PULUMI_HOME_DIR" "$CACHE_ROOT/tmp"
    echo "toolchain: $TOOLCHAIN_DIR"
    check_pins || exit 2
    local start provider
    start=$(now_ms)
    # The provider binary carries the pulumi-kubernetes version: it is part of the key.
    provider="$(tool_dir pulumi-resource-kubernetes -- "$PULUMI_KUBERNETES_VERSION")"

    step pulumi "$(tool_dir pulumi)" build_pulumi
    step pulumi-language-python "$(tool_dir pulumi-language-python)" build_language_host
    step pulumi-resource-kubernetes "$provider" build_kubernetes_provider
    step etcd "$(tool_dir etcd)" build_etcd
    step kubernetes "$(tool_dir kubernetes)" build_kubernetes
    step kwok "$(tool_dir kwok)" build_kwok
    step kserve "$(tool_dir kserve)" build_kserve
    link_toolchain
    install_provider_plugin "$provider"

    {
        echo
        echo "---- toolchain summary ($(basename "$TOOLCHAIN_DIR")) ----"
        printf '%s\n' "${SUMMARY[@]}"
        printf '%-28s %10s\n' total "$(fmt_secs $(($(now_ms) - start)))"
        if ((BUILT_SOMETHING)); then
            echo "disk: toolchain $(du -shL "$BIN_DIR" | cut -f1), module cache $(du -sh "$GOMODCACHE" | cut -f1)," \
                "build cache $(du -sh "$BUILD_CACHE" 2>/dev/null | cut -f1) (scripts/toolchain.sh trim empties it)"
        fi
    } | tee -a "$TOOLCHAIN_DIR/timings.log"
    if ((BUILT_SOMETHING)) && [[ "${MLOPS_TOOLCHAIN_TRIM:-0}" == 1 && ${#FAILED[@]} -eq 0 ]]; then
        trim_build_cache
    fi
    echo
    echo "# use it in this shell:  eval \"\$($0 env)\""
    print_env

    ((${#FAILED[@]} == 0)) || echo "failed builds: ${FAILED[*]} (logs in $LOG_DIR)" >&2
    local missing
    missing="$(missing_essentials | paste -sd, -)"
    if [[ -n "$missing" ]]; then
        echo "missing for the integration tier: $missing" >&2
        exit 1
    fi
}

trim_build_cache() {
    [[ -d "$BUILD_CACHE" ]] || return 0
    echo "trimming the Go build cache $BUILD_CACHE ($(du -sh "$BUILD_CACHE" | cut -f1))"
    chmod -R u+w "$BUILD_CACHE" 2>/dev/null || true
    rm -rf "$BUILD_CACHE"
}

main() {
    case "${1:-build}" in
    build) build_all ;;
    env)
        print_env
        local missing
        missing="$(missing_essentials | paste -sd, -)"
        if [[ -n "$missing" ]]; then
            echo "toolchain: not built yet ($missing): run scripts/toolchain.sh" >&2
            exit 1
        fi
        ;;
    dir) echo "$TOOLCHAIN_DIR" ;;
    trim) trim_build_cache ;;
    clean)
        local d
        for d in "$CACHE_ROOT"/*/ "$CACHE_ROOT"/go/*/; do
            d="${d%/}"
            [[ -d "$d" && "$d" != "$CACHE_ROOT/go" && "$d" != "$CACHE_ROOT/go/mod" ]] || continue
            chmod -R u+w "$d" 2>/dev/null || true
            rm -rf "$d"
            echo "removed $d"
        done
        echo "(module cache kept: $CACHE_ROOT/go/mod; remove it with: GOMODCACHE=$CACHE_ROOT/go/mod go clean -modcache)"
        ;;
    *)
        echo "usage: $0 [build|env|dir|trim|clean]" >&2
        exit 2
        ;;
    esac
}

# Everything above only defines (and reads pins), so the whole file is read before anything is
# built (editing the file while it runs is then harmless).
main "$@"; exit $?
