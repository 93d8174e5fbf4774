#!/usr/bin/env bash
# The main job: stands up the platform for one stack.
#
#   ./scripts/up.sh <stack> [pulumi up flags, e.g. --yes]
#
# 1. creates .venv from the lock file;
# 2. uses the current kube context (or $KUBE_CONTEXT); with none and Docker present, creates a
#    kind cluster named mlops-<stack> (scripts/kind-cluster.yaml);
# 3. uses the configured Pulumi backend; with none, a local file backend under
#    $MLOPS_STATE_DIR (default ~/.local/state/mlops-platform) and a generated passphrase file;
# 4. checks that the chart repositories the stack installs from answer;
# 5. on a kind context, builds the project's images and loads them into the cluster
#    (scripts/images.sh; MLOPS_BUILD_IMAGES=0 skips it when the stack names pullable images);
# 6. generates missing secrets (scripts/bootstrap-secrets.sh);
# 7. runs `pulumi up`.
set -euo pipefail
# shellcheck source=lib/kind.sh
source "$(dirname "$0")/lib/kind.sh"
cd "$REPO_ROOT"

stack="${1:?usage: ./scripts/up.sh <stack> [pulumi up flags]}"
shift
[ -f "stacks/Pulumi.$stack.yaml" ] || {
  echo "error: no stack file stacks/Pulumi.$stack.yaml; known: $(find stacks -name 'Pulumi.*.yaml' | sed -n 's|^stacks/Pulumi\.\(.*\)\.yaml$|\1|p' | sort | tr '\n' ' ')" >&2
  exit 2
}
state="${MLOPS_STATE_DIR:-$HOME/.local/state/mlops-platform}"
export PULUMI_SKIP_UPDATE_CHECK=true

./scripts/setup.sh

# The pulumi on PATH; else the toolchain's (scripts/toolchain.sh), else the released CLI of the
# pinned version (scripts/pulumi-cli.sh downloads it once).
if ! command -v pulumi >/dev/null 2>&1; then
  if ./scripts/toolchain.sh env >/dev/null 2>&1; then
    eval "$(./scripts/toolchain.sh env)"
  elif pulumi_env="$(./scripts/pulumi-cli.sh env)"; then
    eval "$pulumi_env"
  else
    echo "error: no pulumi CLI: install it (https://www.pulumi.com/docs/install/)" >&2
    exit 1
  fi
fi

current_context() {
  .venv/bin/python - <<'PY'
import os, pathlib, yaml
paths = os.environ.get("KUBECONFIG") or str(pathlib.Path.home() / ".kube" / "config")
for path in paths.split(os.pathsep):
    p = pathlib.Path(path)
    if p.is_file():
        context = (yaml.safe_load(p.read_text()) or {}).get("current-context")
        if context:
            print(context)
            break
PY
}

context="${KUBE_CONTEXT:-$(current_context)}"
if [ -z "$context" ]; then
  if docker_ready && kind="$(kind_cli)"; then
    if ! "$kind" get clusters 2>/dev/null | grep -qx "mlops-$stack"; then
      echo "[up] no kube context: creating kind cluster mlops-$stack" >&2
      "$kind" create cluster --name "mlops-$stack" --config "$KIND_CONFIG" --wait 300s
    fi
    context="kind-mlops-$stack"
  else
    echo "error: no kube context: set KUBECONFIG or KUBE_CONTEXT, or install Docker (and Go or kind)" >&2
    exit 1
  fi
fi
echo "[up] kube context: $context" >&2

if [ -z "${PULUMI_BACKEND_URL:-}" ] && ! pulumi whoami --non-interactive >/dev/null 2>&1; then
  mkdir -p "$state/pulumi"
  export PULUMI_BACKEND_URL="file://$state/pulumi"
  if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    if [ ! -f "$state/passphrase" ]; then
      (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))' >"$state/passphrase")
      echo "[up] generated the stack passphrase in $state/passphrase: back it up" >&2
    fi
    export PULUMI_CONFIG_PASSPHRASE_FILE="$state/passphrase"
  fi
  echo "[up] Pulumi backend: $PULUMI_BACKEND_URL" >&2
fi

# The chart repositories the stack installs from must answer before anything is created: a
# Helm release that cannot fetch its chart would stop the deploy halfway.
charts=$(.venv/bin/python -m mlops.stackfile charts --stack "$stack")
for repository in $charts; do
  case "$repository" in
    oci://*) host="${repository#oci://}"; probe="https://${host%%/*}/v2/" ;;
    *) probe="${repository%/}/index.yaml" ;;
  esac
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 "$probe" 2>/dev/null || true)
  if [ -z "$code" ] || [ "$code" = "000" ]; then
    echo "error: the chart repository $repository cannot be reached ($probe)." >&2
    echo "  Point kserve.chartRepository / kserve.certManager.chartRepository at a mirror," >&2
    echo "  or set kserve.install: false if KServe and cert-manager are already installed." >&2
    exit 1
  fi
done

# A kind cluster pulls nothing from this project's registry: build the images the stack names
# and load them into the cluster.
if [[ "$context" == kind-* ]] && [ "${MLOPS_BUILD_IMAGES:-1}" != 0 ]; then
  ./scripts/images.sh load "$stack" "${context#kind-}"
fi

./scripts/bootstrap-secrets.sh "$stack"
# The first deploy pins the stack to its cluster; later runs refuse another context.
pinned=$(pulumi config get kubernetes:context --stack "$stack" 2>/dev/null || true)
if [ -z "$pinned" ]; then
  pulumi config set kubernetes:context "$context" --stack "$stack" --non-interactive
elif [ "$pinned" != "$context" ]; then
  echo "error: stack $stack is pinned to kube context '$pinned', not '$context'" >&2
  echo "  (deploy there with KUBE_CONTEXT=$pinned, or re-pin: pulumi config set kubernetes:context ...)" >&2
  exit 1
fi
pulumi up --stack "$stack" "$@"
