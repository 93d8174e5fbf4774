#!/usr/bin/env bash
# Build the local toolchain for the control-plane rung of the verification ladder, from source,
# through the Go module proxy only: the Pulumi CLI, a Python language host, the Kubernetes
# provider, kube-apiserver / kube-controller-manager / kube-scheduler / kubectl, etcd, kwok and
# kwokctl. Everything lands in a cache outside the repository, in a directory keyed by the pins
# below, so a second run only checks that the binaries are there.
#
#   scripts/toolchain.sh [build]   build what is missing; print per-build wall times and a summary
#   scripts/toolchain.sh env       print shell exports: eval "$(scripts/toolchain.sh env)"
#                                  (exit status 1, exports still printed, if not built yet)
#   scripts/toolchain.sh dir       print the keyed toolchain directory
#   scripts/toolchain.sh trim      empty this script's Go build cache (several GB; binaries, the
#                                  module cache and the plugin stay); MLOPS_TOOLCHAIN_TRIM=1 does
#                                  it after every build that built something
#   scripts/toolchain.sh clean     remove the toolchain directories of every key and the build
#                                  cache; the module cache (go/mod) is shared with other scripts
#
# MLOPS_TOOLCHAIN_CACHE overrides the cache root (default ~/.cache/mlops-platform/toolchain).
# Exit status is non-zero only when something `pulumi up` needs is missing afterwards: the
# Pulumi CLI, the language host, the kubernetes provider, kube-apiserver or etcd.
# shellcheck disable=SC2317 # the build functions run through `step`, which shellcheck cannot see
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Version of an installed Python distribution in .venv, else its == pin in pyproject.toml.
python_dist_version() {
    local dist="$1" under="${1//-/_}" info
    for info in "$REPO_ROOT"/.venv/lib/python3*/site-packages/"$under"-[0-9]*.dist-info; do
        [[ -d "$info" ]] || continue
        info="${info##*/}"
        info="${info#"$under"-}"
        echo "${info%.dist-info}"
        return
    done
    sed -n "s/^[[:space:]]*\"$dist==\([^\";]*\)\".*/\1/p" "$REPO_ROOT/pyproject.toml" | head -n1
}

# ---- Pins: every version this script builds, in one place ---------------------------------------
# The Python SDKs decide the Pulumi versions, so the CLI, language host and provider always match.
PULUMI_SDK_VERSION="$(python_dist_version pulumi)"                       # e.g. 3.272.0
PULUMI_KUBERNETES_VERSION="$(python_dist_version pulumi-kubernetes)"     # e.g. 4.34.2
# Pulumi CLI (github.com/pulumi/pulumi/pkg/v3): built at the SDK's version when the module proxy
# serves it, else at this pin (a CLI newer than the SDK is supported; v3.272.0 answered 403
# "not available" from the proxy on 2026-11-27, v3.274.1 is served).
PULUMI_CLI_FALLBACK_VERSION="v3.274.1"
# Kubernetes provider (github.com/pulumi/pulumi-kubernetes/provider/v4). The repository tags
# releases as vX.Y.Z at its root, never provider/vX.Y.Z, so Go only knows pseudo-versions of this
# module, and the proxy serves exactly one: commit f47bc2d6f199 of 2026-01-15 03:34 UTC (v4.25.0
# reached PyPI on 2026-01-16, so this is about v4.25.0, not the SDK's version). It is built from
# that source and stamped with the Python SDK's version, so that the engine loads it for the SDK's
# requests; the summary says so (PROVIDER_SOURCE_NOTE).
PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION="v4.0.0-20260115033456-f47bc2d6f199"
# The provider's go.mod replaces its Go SDK with ../sdk (not in the module zip) and requires
# v4.24.0, which the proxy does not serve. v4.29.0 is served but requires pulumi sdk/v3 v3.226.0,
# which no longer compiles with the provider's pkg/v3 v3.215.0; v4.22.2 keeps sdk/v3 at v3.215.0.
PULUMI_KUBERNETES_GO_SDK_VERSION="v4.22.2"
# Kubernetes control plane and kubectl: the newest minor that tests/unit/test_schema.py validates
# against (infra/versions.py KUBERNETES_VERSIONS). Staging modules are pinned at v0.<minor>.<patch>.
KUBERNETES_VERSION="v1.37.2"
# etcd: the minor that Kubernetes 1.37 is built against (its go.mod requires etcd client v3.7.0).
ETCD_VERSION="v3.7.3"
KWOK_VERSION="v0.8.0"
# Bump when the build recipe below changes in a way that changes the binaries.
RECIPE_REVISION="1"
PROVIDER_SOURCE_NOTE="kubernetes provider: source ${PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION} (2026-01-15, ~v4.25.0) stamped ${PULUMI_KUBERNETES_VERSION}"

if [[ -z "$PULUMI_SDK_VERSION" || -z "$PULUMI_KUBERNETES_VERSION" ]]; then
    echo "toolchain: cannot find the pulumi / pulumi-kubernetes versions in .venv or pyproject.toml" >&2
    exit 2
fi

CACHE_ROOT="${MLOPS_TOOLCHAIN_CACHE:-$HOME/.cache/mlops-platform/toolchain}"
KEY_INPUT="pulumi-sdk=$PULUMI_SDK_VERSION pulumi-cli-fallback=$PULUMI_CLI_FALLBACK_VERSION
pulumi-kubernetes=$PULUMI_KUBERNETES_VERSION provider=$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION
provider-go-sdk=$PULUMI_KUBERNETES_GO_SDK_VERSION kubernetes=$KUBERNETES_VERSION etcd=$ETCD_VERSION
kwok=$KWOK_VERSION recipe=$RECIPE_REVISION os=$(uname -s)-$(uname -m)"
KEY="pulumi${PULUMI_SDK_VERSION}-k8s${KUBERNETES_VERSION#v}-$(printf '%s' "$KEY_INPUT" | sha256sum | cut -c1-10)"
TOOLCHAIN_DIR="$CACHE_ROOT/$KEY"
BIN_DIR="$TOOLCHAIN_DIR/bin"
PULUMI_HOME_DIR="$TOOLCHAIN_DIR/pulumi-home"
LOG_DIR="$TOOLCHAIN_DIR/logs"

print_env() {
    cat <<EOF
export MLOPS_TOOLCHAIN_DIR="$TOOLCHAIN_DIR"
export PATH="$BIN_DIR:\${PATH}"
export PULUMI_HOME="$PULUMI_HOME_DIR"
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_SKIP_UPDATE_CHECK=true
EOF
}

# ---- Go environment: the proxy only, every cache under the cache root ---------------------------
setup_go_env() {
    # go/mod is the module cache that other scripts building from the proxy share.
    command -v go >/dev/null || { echo "toolchain: go is not on PATH" >&2; exit 1; }
    export GOPATH="$CACHE_ROOT/go"
    export GOMODCACHE="$CACHE_ROOT/go/mod"
    export GOCACHE="$CACHE_ROOT/go/toolchain-build" # this script's own: `trim` empties it
    export GOFLAGS="-mod=mod -modcacherw -buildvcs=false"
    export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
    export CGO_ENABLED=0
    unset GOPROXY GONOSUMDB GOPRIVATE GOINSECURE GOWORK GOBIN
    export GOWORK=off
    export PULUMI_HOME="$PULUMI_HOME_DIR"
    export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
    export PULUMI_SKIP_UPDATE_CHECK=true
    GO_BUILD=(go build -p "$(nproc 2>/dev/null || echo 2)" -trimpath)
    mkdir -p "$BIN_DIR" "$PULUMI_HOME_DIR" "$LOG_DIR" "$CACHE_ROOT/tmp"
}

trim_build_cache() {
    local d="$CACHE_ROOT/go/toolchain-build"
    [[ -d "$d" ]] || return 0
    echo "trimming the Go build cache $d ($(du -sh "$d" | cut -f1))"
    chmod -R u+w "$d" 2>/dev/null || true
    rm -rf "$d"
}

STEP_TMP="" # each step's scratch directory, removed when the step ends
cleanup() {
    if [[ -n "$STEP_TMP" && -d "$STEP_TMP" ]]; then
        chmod -R u+w "$STEP_TMP" 2>/dev/null || true
        rm -rf "$STEP_TMP"
    fi
}

workdir() { # a fresh scratch directory of the current step
    mkdir -p "$STEP_TMP/$1"
    echo "$STEP_TMP/$1"
}

# The wrapper module of a build, kept in the toolchain directory as a record of what was built
# (go.mod and go.sum name every module version in the binary).
module_workspace() {
    local d="$TOOLCHAIN_DIR/modules/$1"
    mkdir -p "$d"
    echo "$d"
}

# go mod download one module@version; print its source directory, or fail with the proxy's error.
module_dir() {
    local json
    json="$(go mod download -json "$1" 2>/dev/null || true)"
    python3 - "$1" "$json" <<'PY'
import json, sys
try:
    info = json.loads(sys.argv[2])
except ValueError:
    sys.exit(f"{sys.argv[1]}: no answer from go mod download")
if info.get("Error") or not info.get("Dir"):
    sys.exit(info.get("Error") or f"{sys.argv[1]}: no source directory")
print(info["Dir"])
PY
}

# ---- Bookkeeping: timings, failures ------------------------------------------------------------
declare -a SUMMARY=()
declare -a FAILED=()
BUILT_SOMETHING=0
TOTAL_CPU_TENTHS=0
ESSENTIAL=(pulumi pulumi-language-python pulumi-language-python-exec kube-apiserver etcd) # + the plugin
now_ms() { echo $(($(date +%s%N) / 1000000)); }
fmt_secs() { printf '%d.%ds' $(($1 / 1000)) $((($1 % 1000) / 100)); }

cpu_secs() { # user+system seconds of the children, from the output of `times`
    awk 'NR == 2 {
        total = 0
        for (i = 1; i <= 2; i++) { split($i, p, "m"); total += p[1] * 60 + p[2] }
        printf "%.1fs", total
    }' "$1" 2>/dev/null
}

have_all() {
    local f
    for f in "$@"; do [[ -x "$BIN_DIR/$f" ]] || return 1; done
}

# step NAME 'DONE-CHECK' COMMAND...: unless DONE-CHECK succeeds, run COMMAND with errexit in a
# subshell logging to logs/NAME.log, print its wall time, and on failure say why and carry on.
step() {
    local name="$1" check="$2"
    shift 2
    if eval "$check"; then
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
        trap cleanup EXIT
        "$@"
        times >"$LOG_DIR/$name.times" # user and system CPU time of the build's processes
    ) >"$LOG_DIR/$name.log" 2>&1 &
    wait $! || rc=$?
    elapsed=$(fmt_secs $(($(now_ms) - start)))
    if [[ $rc -eq 0 ]] && eval "$check"; then
        local cpu
        cpu="$(cpu_secs "$LOG_DIR/$name.times")"
        local tenths="${cpu%s}"
        [[ "$tenths" =~ ^[0-9]+\.[0-9]$ ]] && TOTAL_CPU_TENTHS=$((TOTAL_CPU_TENTHS + 10#${tenths/./}))
        printf '    %-28s built in %s (CPU %s)\n' "$name" "$elapsed" "$cpu"
        SUMMARY+=("$(printf '%-28s %10s   CPU %8s' "$name" "$elapsed" "$cpu")")
    else
        printf '    %-28s FAILED after %s (exit %s); the end of its log:\n' "$name" "$elapsed" "$rc"
        tail -n 15 "$LOG_DIR/$name.log" | sed 's/^/      | /'
        SUMMARY+=("$(printf '%-28s %10s FAILED' "$name" "$elapsed")")
        FAILED+=("$name")
    fi
}

# ---- Pulumi CLI ---------------------------------------------------------------------------------
build_pulumi() {
    local want="v$PULUMI_SDK_VERSION" version err note
    if err="$(module_dir "github.com/pulumi/pulumi/pkg/v3@$want" 2>&1 >/dev/null)"; then
        version="$want"
        note="pulumi CLI $version, the Python SDK's version"
    else
        version="$PULUMI_CLI_FALLBACK_VERSION"
        note="pulumi CLI $version for the Python SDK $PULUMI_SDK_VERSION: the module proxy does not serve pkg/v3@$want ($(tail -n1 <<<"$err" | cut -c1-160))"
    fi
    echo "$note"
    local pkgdir w out
    pkgdir="$(module_dir "github.com/pulumi/pulumi/pkg/v3@$version")"
    w="$(module_workspace pulumi)"
    out="$(workdir pulumi)"
    # pkg/v3's own go.mod replaces sdk/v3 with ../sdk (a sibling directory that is not in the module
    # zip), so `go install pkg/v3/cmd/pulumi@version` refuses it; a wrapper module requires both at
    # the same version and copies every other (non-local) replace directive of pkg/v3.
    {
        echo "module mlops.local/toolchain/pulumi"
        echo
        echo "go 1.26"
        echo
        echo "require ("
        echo "	github.com/pulumi/pulumi/pkg/v3 $version"
        echo "	github.com/pulumi/pulumi/sdk/v3 $version"
        echo ")"
    } >"$w/go.mod"
    (cd "$w" && go mod edit -json "$pkgdir/go.mod") | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    new = r["New"]
    if "Version" not in new:      # a local path such as ../sdk: covered by the require above
        continue
    old = r["Old"]["Path"] + ("@" + r["Old"]["Version"] if r["Old"].get("Version") else "")
    print(f"-replace={old}={new['"'"'Path'"'"']}@{new['"'"'Version'"'"']}")
' | while read -r flag; do (cd "$w" && go mod edit "$flag"); done
    echo "wrapper go.mod:"
    cat "$w/go.mod"
    (cd "$w" && "${GO_BUILD[@]}" \
        -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
        -o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
    "$out/pulumi" version
    mv "$out/pulumi" "$BIN_DIR/pulumi"
    echo "$note" >"$TOOLCHAIN_DIR/pulumi-cli.note"
}

# ---- Python language host -----------------------------------------------------------------------
# The upstream host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is
# not served by the module proxy at any version (403 "not available"). This is a small host of
# our own on the served sdk/v3 gRPC API, running programs through the SDK's exec shim.
build_language_host() {
    local version="v$PULUMI_SDK_VERSION" sdkdir w out
    sdkdir="$(module_dir "github.com/pulumi/pulumi/sdk/v3@$version")"
    w="$(module_workspace pulumi-language-python)"
    out="$(workdir langhost)"
    cat >"$w/go.mod" <<EOF
module mlops.local/toolchain/pulumi-language-python

go 1.26

require github.com/pulumi/pulumi/sdk/v3 $version
EOF
    write_language_host_source "$w/main.go"
    (cd "$w" && "${GO_BUILD[@]}" -ldflags "-s -w -X main.Version=$PULUMI_SDK_VERSION" \
        -o "$out/pulumi-language-python" .)
    install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$BIN_DIR/pulumi-language-python-exec"
    mv "$out/pulumi-language-python" "$BIN_DIR/pulumi-language-python"
}

write_language_host_source() {
    cat >"$1" <<'GO'
// pulumi-language-python: a small Python language host for the Pulumi engine. It speaks the
// LanguageRuntime gRPC protocol of github.com/pulumi/pulumi/sdk/v3 and runs the program through
// the SDK's pulumi-language-python-exec shim installed beside it. It covers what preview, up,
// destroy and about need: required packages (from the virtualenv's pulumi-plugin.json files),
// Run, About, program dependencies and installs with uv or pip; no code generation.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Version is set at build time to the Python SDK version this host pairs with.
var Version = "0.0.0-dev"

const bailExitCode = 32 // the exec shim's "error already shown to the user"

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress, tracing, execScript string
	virtualenv, toolchain, root        string
}

func main() {
	h := &host{}
	flag.StringVar(&h.tracing, "tracing", "", "Zipkin-compatible tracing endpoint")
	flag.StringVar(&h.virtualenv, "virtualenv", "", "virtualenv, relative to the project root")
	flag.StringVar(&h.toolchain, "toolchain", "", "pip or uv")
	flag.StringVar(&h.root, "root", "", "project root directory")
	flag.String("typechecker", "", "ignored")
	flag.Bool("binary", false, "ignored")
	useExecutor := flag.String("use-executor", "", "path of pulumi-language-python-exec")
	flag.Parse()
	if args := flag.Args(); len(args) > 0 {
		h.engineAddress = args[len(args)-1]
	}
	h.execScript = *useExecutor
	if h.execScript == "" {
		self, err := os.Executable()
		if err != nil {
			fatal(err)
		}
		if resolved, err := filepath.EvalSymlinks(self); err == nil {
			self = resolved
		}
		h.execScript = self + "-exec"
	}
	if _, err := os.Stat(h.execScript); err != nil {
		fatal(fmt.Errorf("the exec shim is missing: %w", err))
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		fatal(fmt.Errorf("could not start the language host RPC server: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fatal(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

// option reads a string runtime option of Pulumi.yaml (runtime.options.KEY).
func option(info *pulumirpc.ProgramInfo, key string) string {
	if v, ok := info.GetOptions().GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

func (h *host) rootDir(info *pulumirpc.ProgramInfo, fallback string) string {
	for _, d := range []string{info.GetRootDirectory(), h.root, fallback} {
		if d != "" {
			return d
		}
	}
	wd, _ := os.Getwd()
	return wd
}

func (h *host) toolchainOf(info *pulumirpc.ProgramInfo) string {
	for _, t := range []string{option(info, "toolchain"), h.toolchain} {
		if t != "" {
			return t
		}
	}
	return "pip"
}

// venv is the program's virtualenv directory, or "" to use python3 from PATH.
func (h *host) venv(info *pulumirpc.ProgramInfo, fallbackRoot string) string {
	venv := option(info, "virtualenv")
	if venv == "" {
		venv = h.virtualenv
	}
	if venv == "" && h.toolchainOf(info) == "uv" {
		if venv = os.Getenv("UV_PROJECT_ENVIRONMENT"); venv == "" {
			venv = ".venv"
		}
	}
	if venv != "" && !filepath.IsAbs(venv) {
		venv = filepath.Join(h.rootDir(info, fallbackRoot), venv)
	}
	return venv
}

// python returns the interpreter and the environment to run it with.
func (h *host) python(info *pulumirpc.ProgramInfo, fallbackRoot string) (string, []string, error) {
	venv := h.venv(info, fallbackRoot)
	if venv == "" {
		for _, name := range []string{"python3", "python"} {
			if p, err := exec.LookPath(name); err == nil {
				return p, os.Environ(), nil
			}
		}
		return "", nil, errors.New("no python3 on PATH and no virtualenv configured")
	}
	bin := filepath.Join(venv, "bin")
	py := filepath.Join(bin, "python")
	if _, err := os.Stat(py); err != nil {
		hint := "create it first"
		if h.toolchainOf(info) == "uv" {
			hint = "run `uv sync` in the project directory"
		}
		return "", nil, fmt.Errorf("the virtualenv %s has no python (%v): %s", venv, err, hint)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHONHOME=") && !strings.HasPrefix(kv, "VIRTUAL_ENV=") &&
			!strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "VIRTUAL_ENV="+venv, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return py, env, nil
}

func pyOutput(py string, env []string, code string) ([]byte, error) {
	cmd := exec.Command(py, "-c", code)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s failed: %w", py, err)
	}
	return out, nil
}

// requiredPackages lists the resource plugins of the Pulumi packages installed for the program.
func (h *host) requiredPackages(info *pulumirpc.ProgramInfo, fallbackRoot string) ([]*pulumirpc.PackageDependency, error) {
	py, env, err := h.python(info, fallbackRoot)
	if err != nil {
		return nil, err
	}
	out, err := pyOutput(py, env,
		"import json, site; print(json.dumps(site.getsitepackages() + [site.getusersitepackages()]))")
	if err != nil {
		return nil, err
	}
	var dirs []string
	if err := json.Unmarshal(out, &dirs); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var deps []*pulumirpc.PackageDependency
	for _, dir := range dirs {
		matches, _ := filepath.Glob(filepath.Join(dir, "*", "pulumi-plugin.json"))
		for _, m := range matches {
			var p struct {
				Resource bool   `json:"resource"`
				Name     string `json:"name"`
				Version  string `json:"version"`
				Server   string `json:"server"`
			}
			data, err := os.ReadFile(m)
			if err != nil || json.Unmarshal(data, &p) != nil || !p.Resource || p.Name == "" {
				continue
			}
			version := p.Version
			if version != "" && !strings.HasPrefix(version, "v") {
				version = "v" + version
			}
			if seen[p.Name+"@"+version] {
				continue
			}
			seen[p.Name+"@"+version] = true
			deps = append(deps, &pulumirpc.PackageDependency{
				Kind: "resource", Name: p.Name, Version: version, Server: p.Server,
			})
		}
	}
	return deps, nil
}

func (h *host) GetRequiredPackages(ctx context.Context,
	req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := h.requiredPackages(req.GetInfo(), "")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

func (h *host) GetRequiredPlugins(ctx context.Context,
	req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := h.requiredPackages(req.GetInfo(), req.GetPwd())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, d := range deps {
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Name: d.Name, Kind: d.Kind, Version: d.Version, Server: d.Server,
		})
	}
	return resp, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	py, env, err := h.python(info, req.GetPwd())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	args := []string{"-u", h.execScript}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprintf("%v", req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	add("root_directory", h.rootDir(info, req.GetPwd()))
	program := req.GetProgram()
	if info.GetProgramDirectory() != "" {
		program = filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
	}
	if program == "" {
		program = "."
	}
	args = append(append(args, program), req.GetArgs()...)

	if cfg := req.GetConfig(); cfg != nil {
		data, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		env = append(env, "PULUMI_CONFIG="+string(data))
	}
	if keys := req.GetConfigSecretKeys(); keys != nil {
		data, err := json.Marshal(keys)
		if err != nil {
			return nil, err
		}
		env = append(env, "PULUMI_CONFIG_SECRET_KEYS="+string(data))
	}
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Env = append(env, "PYTHONUNBUFFERED=1")
	cmd.Dir = req.GetPwd()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr) && exitErr.ExitCode() == bailExitCode:
			return &pulumirpc.RunResponse{Bail: true}, nil
		case errors.As(err, &exitErr):
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		default:
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
			}, nil
		}
	}
	return &pulumirpc.RunResponse{}, nil
}

func (h *host) GetPluginInfo(ctx context.Context, _ *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	py, env, err := h.python(req.GetInfo(), "")
	if err != nil {
		return nil, err
	}
	out, err := pyOutput(py, env, "import platform; print(platform.python_version())")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: py,
		Version:    strings.TrimSpace(string(out)),
		Metadata:   map[string]string{"toolchain": h.toolchainOf(req.GetInfo())},
	}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context,
	req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	py, env, err := h.python(req.GetInfo(), req.GetPwd())
	if err != nil {
		return nil, err
	}
	out, err := pyOutput(py, env, "import json, importlib.metadata as m; "+
		"print(json.dumps(sorted({(d.metadata['Name'], d.version) for d in m.distributions()})))")
	if err != nil {
		return nil, err
	}
	var pairs [][2]string
	if err := json.Unmarshal(out, &pairs); err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range pairs {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p[0], Version: p[1]})
	}
	return resp, nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	info := req.GetInfo()
	root := h.rootDir(info, req.GetDirectory())
	venv := h.venv(info, root)
	var cmd *exec.Cmd
	switch h.toolchainOf(info) {
	case "uv":
		cmd = exec.Command("uv", "sync")
		cmd.Env = append(os.Environ(), "UV_PROJECT_ENVIRONMENT="+venv)
	case "pip":
		if venv == "" {
			return status.Error(codes.FailedPrecondition,
				"set runtime.options.virtualenv in Pulumi.yaml to install dependencies")
		}
		py := filepath.Join(venv, "bin", "python")
		cmd = exec.Command("sh", "-c", fmt.Sprintf(
			"set -e; [ -x %q ] || python3 -m venv %q; %q -m pip install -r requirements.txt", py, venv, py))
	default:
		return status.Errorf(codes.Unimplemented, "toolchain %q is not supported by this language host",
			h.toolchainOf(info))
	}
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if sendErr := stream.Send(&pulumirpc.InstallDependenciesResponse{Stdout: out}); sendErr != nil {
		return sendErr
	}
	if err != nil {
		return fmt.Errorf("installing dependencies failed: %w", err)
	}
	return nil
}

func (h *host) RuntimeOptionsPrompts(ctx context.Context,
	req *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) Cancel(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}
GO
}

# ---- Kubernetes provider ------------------------------------------------------------------------
build_kubernetes_provider() {
    local moddir w version="$PULUMI_KUBERNETES_VERSION"
    moddir="$(module_dir "github.com/pulumi/pulumi-kubernetes/provider/v4@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION")"
    echo "$PROVIDER_SOURCE_NOTE"
    w="$(workdir provider)"
    # A writable copy: `go generate` writes the schema files that main.go embeds.
    cp -R "$moddir" "$w/provider"
    chmod -R u+w "$w/provider"
    cd "$w/provider"
    go mod edit -replace "github.com/pulumi/pulumi-kubernetes/sdk/v4=github.com/pulumi/pulumi-kubernetes/sdk/v4@$PULUMI_KUBERNETES_GO_SDK_VERSION"
    (cd cmd/pulumi-resource-kubernetes && VERSION="$version" go generate ./...)
    ls -l cmd/pulumi-resource-kubernetes/schema-embed.json cmd/pulumi-resource-kubernetes/terraform-mapping-embed.json
    "${GO_BUILD[@]}" \
        -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$version" \
        -o "$w/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes
    # Installed into PULUMI_HOME only: a pulumi-resource-kubernetes on PATH would take precedence
    # over the installed plugin (with a warning on every run).
    [[ -x "$BIN_DIR/pulumi" ]] || { echo "the pulumi CLI is needed to install the plugin"; return 1; }
    "$BIN_DIR/pulumi" plugin install resource kubernetes "$version" \
        --file "$w/pulumi-resource-kubernetes" --non-interactive
    "$BIN_DIR/pulumi" plugin ls
}

provider_installed() {
    [[ -x "$(provider_path)" ]]
}

provider_path() {
    echo "$PULUMI_HOME_DIR/plugins/resource-kubernetes-v$PULUMI_KUBERNETES_VERSION/pulumi-resource-kubernetes"
}

# ---- Kubernetes control plane and kubectl -------------------------------------------------------
kube_wrapper() { # a wrapper module pinning every staging module k8s.io/kubernetes replaces locally
    local kdir minor_patch w
    kdir="$(module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")"
    minor_patch="${KUBERNETES_VERSION#v1.}"
    w="$(module_workspace kubernetes)"
    {
        echo "module mlops.local/toolchain/kubernetes"
        echo
        echo "go 1.26"
        echo
        echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
        echo
        echo "replace ("
        # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
        # ./staging/src/k8s.io/NAME; a dependent module must name the released v0.MINOR.PATCH.
        sed -n 's|^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*|\1|p' "$kdir/go.mod" |
            while read -r mod; do echo "	$mod => $mod v0.$minor_patch"; done
        echo ")"
    } >"$w/go.mod.new"
    if ! cmp -s "$w/go.mod.new" "$w/go.mod.in"; then # regenerate go.mod only when the pins move
        cp "$w/go.mod.new" "$w/go.mod.in"
        cp "$w/go.mod.new" "$w/go.mod"
        rm -f "$w/go.sum"
    fi
    rm -f "$w/go.mod.new"
    echo "$w"
}

build_kube() { # build_kube NAME: k8s.io/kubernetes/cmd/NAME
    local name="$1" minor="${KUBERNETES_VERSION#v1.}" pkg ldflags w out
    w="$(kube_wrapper)"
    out="$(workdir "$name")"
    minor="${minor%%.*}"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    (cd "$w" && "${GO_BUILD[@]}" -ldflags "$ldflags" -o "$out/$name" "k8s.io/kubernetes/cmd/$name")
    if [[ "$name" == kubectl ]]; then "$out/$name" version --client; else "$out/$name" --version; fi
    mv "$out/$name" "$BIN_DIR/$name"
}

# ---- etcd ---------------------------------------------------------------------------------------
build_etcd() {
    local w out
    w="$(module_workspace etcd)"
    out="$(workdir etcd)"
    # go.etcd.io/etcd/server/v3 is itself the etcd main package (its main.go calls etcdmain.Main);
    # its ../api, ../client replaces resolve to the same released versions through the wrapper.
    cat >"$w/go.mod" <<EOF
module mlops.local/toolchain/etcd

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
    (cd "$w" && "${GO_BUILD[@]}" -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
    "$out/etcd" --version
    mv "$out/etcd" "$BIN_DIR/etcd"
}

# ---- kwok and kwokctl ---------------------------------------------------------------------------
build_kwok() { # build_kwok kwok|kwokctl
    local name="$1" w out
    w="$(module_workspace kwok)"
    out="$(workdir "$name")"
    cat >"$w/go.mod" <<EOF
module mlops.local/toolchain/kwok

go 1.26

require sigs.k8s.io/kwok $KWOK_VERSION
EOF
    (cd "$w" && "${GO_BUILD[@]}" \
        -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}" \
        -o "$out/$name" "sigs.k8s.io/kwok/cmd/$name")
    "$out/$name" --version || true
    if [[ "$name" == kwok ]]; then
        # The stages that make kwok act like kubelets (the ones kwokctl uses by default, plus fake
        # volume provisioning): scripts/local-cluster.sh hands them to kwok with --config.
        local src share="$TOOLCHAIN_DIR/share/kwok"
        src="$(module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")/kustomize/stage"
        rm -rf "$share"
        mkdir -p "$share/stages"
        install -m 0644 "$src"/node/fast/node-initialize.yaml \
            "$src"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
            "$src"/pod/fast/pod-ready.yaml "$src"/pod/fast/pod-complete.yaml "$src"/pod/fast/pod-delete.yaml \
            "$src"/volume/fast/pvc-provision.yaml "$src"/volume/fast/pv-bind.yaml \
            "$src"/volume/fast/pv-delete.yaml "$src"/volume/fast/pvc-delete.yaml "$share/stages/"
        install -m 0644 "$src"/volume/fast/storage-class.yaml "$share/storage-class.yaml"
    fi
    mv "$out/$name" "$BIN_DIR/$name"
}

# ---- Run ----------------------------------------------------------------------------------------
build_all() {
    setup_go_env
    TOTAL_START=$(now_ms)
    echo "toolchain: $TOOLCHAIN_DIR"
    echo "pins: pulumi SDK $PULUMI_SDK_VERSION (CLI fallback $PULUMI_CLI_FALLBACK_VERSION), pulumi-kubernetes $PULUMI_KUBERNETES_VERSION,"
    echo "      kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION; $(go version)"

    step pulumi "have_all pulumi" build_pulumi
    step pulumi-language-python "have_all pulumi-language-python pulumi-language-python-exec" build_language_host
    step pulumi-resource-kubernetes provider_installed build_kubernetes_provider
    step etcd "have_all etcd" build_etcd
    for name in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
        step "$name" "have_all $name" build_kube "$name"
    done
    step kwok "have_all kwok && [[ -f \$TOOLCHAIN_DIR/share/kwok/storage-class.yaml ]]" build_kwok kwok
    step kwokctl "have_all kwokctl" build_kwok kwokctl

    TOTAL=$(fmt_secs $(($(now_ms) - TOTAL_START)))
    {
        echo
        echo "---- toolchain summary ($KEY) ----"
        printf '%s\n' "${SUMMARY[@]}"
        printf '%-28s %10s   CPU %8s\n' total "$TOTAL" "$((TOTAL_CPU_TENTHS / 10)).$((TOTAL_CPU_TENTHS % 10))s"
        [[ -f "$TOOLCHAIN_DIR/pulumi-cli.note" ]] && cat "$TOOLCHAIN_DIR/pulumi-cli.note"
        echo "pulumi-language-python: this script's own host on sdk/v3 v$PULUMI_SDK_VERSION (the upstream host's module is not served)"
        echo "$PROVIDER_SOURCE_NOTE"
        provider_installed && echo "kubernetes plugin: $(provider_path)"
        if ((BUILT_SOMETHING)); then
            echo "disk: toolchain $(du -sh "$TOOLCHAIN_DIR" | cut -f1)," \
                "module cache $(du -sh "$GOMODCACHE/" 2>/dev/null | cut -f1)," \
                "build cache $(du -sh "$GOCACHE/" 2>/dev/null | cut -f1) (scripts/toolchain.sh trim empties it)"
        fi
    } | tee -a "$TOOLCHAIN_DIR/timings.log"
    if ((BUILT_SOMETHING)) && [[ "${MLOPS_TOOLCHAIN_TRIM:-0}" == 1 && ${#FAILED[@]} -eq 0 ]]; then
        trim_build_cache
    fi
    echo
    echo "# use it in this shell:  eval \"\$($0 env)\""
    print_env

    missing=()
    for b in "${ESSENTIAL[@]}"; do have_all "$b" || missing+=("$b"); done
    provider_installed || missing+=("kubernetes plugin in PULUMI_HOME")
    if [[ ${#FAILED[@]} -gt 0 ]]; then
        echo "failed builds: ${FAILED[*]} (logs in $LOG_DIR)" >&2
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        echo "missing for pulumi up: ${missing[*]}" >&2
        exit 1
    fi
}

main() {
    case "${1:-build}" in
    build) build_all ;;
    env)
        print_env
        for b in "${ESSENTIAL[@]}"; do
            if [[ ! -x "$BIN_DIR/$b" ]]; then
                echo "toolchain: $BIN_DIR/$b is not built yet: run scripts/toolchain.sh" >&2
                exit 1
            fi
        done
        if ! provider_installed; then
            echo "toolchain: the kubernetes plugin is not installed yet: run scripts/toolchain.sh" >&2
            exit 1
        fi
        exit 0
        ;;
    dir)
        echo "$TOOLCHAIN_DIR"
        exit 0
        ;;
    trim)
        trim_build_cache
        exit 0
        ;;
    clean)
        for d in "$CACHE_ROOT"/pulumi*-k8s*-* "$CACHE_ROOT/tmp" "$CACHE_ROOT/go/toolchain-build"; do
            [[ -d "$d" ]] || continue
            chmod -R u+w "$d" 2>/dev/null || true
            rm -rf "$d"
            echo "removed $d"
        done
        echo "(module cache kept: $CACHE_ROOT/go/mod; remove it with: go clean -modcache, GOMODCACHE=$CACHE_ROOT/go/mod)"
        exit 0
        ;;
    *)
        echo "usage: $0 [build|env|dir|trim|clean]" >&2
        exit 2
        ;;
    esac
}

# Everything above only defines, so the whole file is read before anything runs (editing the file
# while it runs is then harmless).
main "$@"; exit $?
