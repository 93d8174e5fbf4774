#!/usr/bin/env bash
# Restores a stack's Postgres databases and Redis from a backup (docs/operations.md).
#
#   ./scripts/restore.sh <stack> <backup>   # backup: `latest` or a UTC timestamp (20261130T020000Z)
#
# Runs the platform's own restore templates (the suspended CronJobs restore-postgres and
# restore-redis) as Jobs with BACKUP_ID set, so the restore is exactly the rendered pod that the
# restore drill tests. Order: scale the writers (MLflow, Feast, Flyte) to zero and suspend the
# materialization; restore Postgres (pg_restore --clean --if-exists per database); stop Redis,
# swap its data for the backup's RDB (rewritten as its append-only file) and start it again;
# scale the writers back. Uses the current kube context (or $KUBE_CONTEXT).
set -euo pipefail
cd "$(dirname "$0")/.."

stack="${1:?usage: ./scripts/restore.sh <stack> <latest|UTC timestamp such as 20261130T020000Z>}"
backup="${2:?usage: ./scripts/restore.sh <stack> <latest|UTC timestamp such as 20261130T020000Z>}"
if [ "$backup" != latest ] && ! [[ "$backup" =~ ^[0-9]{8}T[0-9]{6}Z$ ]]; then
  echo "error: backup '$backup': must be latest or a UTC timestamp such as 20261130T020000Z" >&2
  exit 2
fi
[ -x .venv/bin/python ] || ./scripts/setup.sh
namespace="$(.venv/bin/python -c 'import sys
from mlops import stackfile
print(stackfile.read(sys.argv[1]).config().namespace)' "$stack")"
context=()
[ -z "${KUBE_CONTEXT:-}" ] || context=(--context "$KUBE_CONTEXT")
k() { kubectl "${context[@]}" --namespace "$namespace" "$@"; }
log() { printf '[restore] %s\n' "$*" >&2; }
suffix="$(date -u +%Y%m%d%H%M%S)"

# Creates a Job from a restore template with BACKUP_ID set on its fetch container, waits for it.
run_restore() {
  local template="$1" job="$1-$suffix"
  k get cronjob "$template" -o json | .venv/bin/python -c '
import json, sys
cron, job_name, backup = json.load(sys.stdin), sys.argv[1], sys.argv[2]
template = cron["spec"]["jobTemplate"]
for container in template["spec"]["template"]["spec"]["initContainers"]:
    for item in container.get("env", []):
        if item["name"] == "BACKUP_ID":
            item["value"] = backup
print(json.dumps({"apiVersion": "batch/v1", "kind": "Job",
                  "metadata": {"name": job_name, "labels": template["metadata"].get("labels", {})},
                  "spec": template["spec"]}))' "$job" "$backup" | k create -f - >/dev/null
  log "running $job"
  if ! k wait --for=condition=complete "job/$job" --timeout=6h; then
    k logs "job/$job" --all-containers >&2 || true
    echo "error: $job failed; the writers stay scaled down" >&2
    exit 1
  fi
  k logs "job/$job" --all-containers >&2
}

replicas_of() { k get "$1" -o jsonpath='{.spec.replicas}' 2>/dev/null || echo ""; }

writers=()
for workload in deployment/mlflow deployment/feast deployment/flyte; do
  count="$(replicas_of "$workload")"
  [ -n "$count" ] || continue
  writers+=("$workload=$count")
  log "scaling $workload from $count to 0"
  k scale "$workload" --replicas=0 >/dev/null
done
materialize=false
if k get cronjob feast-materialize >/dev/null 2>&1; then
  materialize=true
  k patch cronjob feast-materialize --type=merge -p '{"spec":{"suspend":true}}' >/dev/null
fi
for entry in "${writers[@]}"; do
  workload="${entry%%=*}"
  k wait --for=delete pod -l "app.kubernetes.io/name=${workload#*/}" --timeout=5m >/dev/null 2>&1 || true
done

if k get cronjob restore-postgres >/dev/null 2>&1; then
  run_restore restore-postgres
fi
if k get cronjob restore-redis >/dev/null 2>&1; then
  log "stopping redis"
  k scale statefulset/redis --replicas=0 >/dev/null
  k wait --for=delete pod/redis-0 --timeout=5m >/dev/null || true
  run_restore restore-redis
  k scale statefulset/redis --replicas=1 >/dev/null
  k rollout status statefulset/redis --timeout=10m >/dev/null
fi

for entry in "${writers[@]}"; do
  log "scaling ${entry%%=*} back to ${entry#*=}"
  k scale "${entry%%=*}" --replicas="${entry#*=}" >/dev/null
done
if [ "$materialize" = true ]; then
  k patch cronjob feast-materialize --type=merge -p '{"spec":{"suspend":false}}' >/dev/null
fi
log "restored $backup into $namespace"
