#!/usr/bin/env bash
# Writes the cluster credentials of a pipeline job: the kubeconfig in $KUBECONFIG_DATA (YAML, or
# base64 of it; an environment secret, docs/deploy.md) to a private file, and points KUBECONFIG
# at it for the job's later steps ($GITHUB_ENV). Without KUBECONFIG_DATA it writes nothing: a
# cluster login step of your own (OIDC to EKS, GKE or AKS) may have set KUBECONFIG already, and
# a preview without any cluster still validates the config and shows the plan.
set -euo pipefail

if [ -z "${KUBECONFIG_DATA:-}" ]; then
    echo "[kubeconfig] no KUBECONFIG_DATA: using ${KUBECONFIG:-the default kubeconfig, if any}" >&2
    exit 0
fi
file="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/kubeconfig"
(
    umask 077
    if printf '%s' "$KUBECONFIG_DATA" | base64 -d >"$file" 2>/dev/null && grep -q '^apiVersion:' "$file"; then
        :
    else
        printf '%s\n' "$KUBECONFIG_DATA" >"$file"
    fi
)
grep -q '^apiVersion:' "$file" || { echo "error: KUBECONFIG_DATA is not a kubeconfig (YAML, or base64 of it)" >&2; exit 1; }
if [ -n "${GITHUB_ENV:-}" ]; then
    echo "KUBECONFIG=$file" >>"$GITHUB_ENV"
fi
echo "[kubeconfig] wrote $file" >&2
