"""The seed and materialize steps, run in the cluster: Jobs made from the deployed feast-apply
Job, so they run the workload image with its environment (the registry URL and the store
passwords from the stack's Secrets), volumes, service account and security context, and with
its pod labels, by which Feast's NetworkPolicy lets them reach Postgres and Redis. Nothing
is port-forwarded and no password comes to this machine."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from typing import Any

from infra.components import feast
from mlops import console, status
from mlops.demo import data
from mlops.demo.target import DemoTarget
from mlops.errors import StepFailed, UserError

TEMPLATE = "feast-apply"
SEED_JOB = "mlops-demo-seed"
MATERIALIZE_JOB = "mlops-demo-materialize"
# The Job controller labels the template of a Job it owns with that Job's name and uid; a new
# Job keeping them would not match the selector made for it, and the API server refuses it.
CONTROLLER_LABELS = frozenset(
    {
        "controller-uid",
        "job-name",
        "batch.kubernetes.io/controller-uid",
        "batch.kubernetes.io/job-name",
    }
)
# Not part-of the platform: `mlops status` counts the deploy's own Jobs, not these.
JOB_LABELS = {"app.kubernetes.io/name": "mlops-demo", "app.kubernetes.io/managed-by": "mlops"}
JOB_TIMEOUT = 900
# A finished Job stays this long, for `kubectl logs`.
KEEP_FINISHED = 600
POLL_SECONDS = 3.0
GENERATOR = f"{feast.REPO_DIR}/datagen/fraud_events.py"


@dataclass(frozen=True)
class Seeded:
    job: str
    transactions: int
    fraudulent: int


@dataclass(frozen=True)
class Materialized:
    job: str
    start: str
    end: str


def job_from_template(
    template: dict[str, Any], name: str, command: list[str], deadline: int
) -> dict[str, Any]:
    """A Job running `command` in a pod shaped like `template`'s (a Job as the API server
    returns it), once, for at most `deadline` seconds."""
    pod = copy.deepcopy(template["spec"]["template"])
    labels = (pod.get("metadata") or {}).get("labels") or {}
    pod["metadata"] = {"labels": {k: v for k, v in labels.items() if k not in CONTROLLER_LABELS}}
    container = pod["spec"]["containers"][0]
    container["command"] = command
    container.pop("args", None)
    pod["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": template["metadata"]["namespace"],
            "labels": dict(JOB_LABELS),
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": KEEP_FINISHED,
            "template": pod,
        },
    }


def seed_command() -> list[str]:
    # Kubernetes expands $(VAR) from the container's env: the registry's own URL, sslmode too.
    url = f"$({feast.REGISTRY_URL_ENV})"
    return ["python", GENERATOR, *data.generator_arguments(), "--postgres-url", url]


def template_of(target: DemoTarget) -> dict[str, Any]:
    found = target.kube.run("get", "job", TEMPLATE, "-n", target.namespace, "-o", "json")
    if found.returncode != 0:
        raise UserError(
            f"stack {target.stack} has no Job {target.namespace}/{TEMPLATE} to model the demo's "
            f"Jobs on ({found.stderr.strip()}): is it up? mlops status {target.stack}"
        )
    template: dict[str, Any] = json.loads(found.stdout)
    return template


def _pod_detail(target: DemoTarget, name: str) -> str:
    """How the Job's pod stands: its phase, and why a container waits (an image pull...)."""
    pods = target.kube.items("pods", "-n", target.namespace, "-l", f"job-name={name}")
    if not pods:
        return "no pod yet"
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    detail = f"pod {(pod.get('status') or {}).get('phase', 'Pending')}"
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            detail += f", {waiting.get('reason', 'waiting')}"
            if waiting.get("message"):
                detail += f": {waiting['message']}"
    return detail


def run_job(
    target: DemoTarget, what: str, name: str, command: list[str], timeout: int = JOB_TIMEOUT
) -> None:
    """Runs `command` as the Job `name` (replacing one left from before) until it completes;
    StepFailed with its reason and last log lines if it fails or runs out of time."""
    job = job_from_template(template_of(target), name, command, timeout)
    ns = target.namespace
    target.kube.check("delete", "job", name, "-n", ns, "--ignore-not-found", "--wait=true")
    target.kube.check("create", "-f", "-", input=json.dumps(job))
    # The Job's own deadline ends it; this one covers a cluster that stops answering.
    give_up = time.monotonic() + timeout + 120
    with console.waiting(f"{what} (Job {ns}/{name})") as update:
        while True:
            found = target.kube.get("job", name, "-n", ns)
            phase = status.job_phase(found)
            if phase == "complete":
                return
            if phase == "failed" or time.monotonic() > give_up:
                raise StepFailed(_failure(target, what, name, found))
            update(_pod_detail(target, name))
            time.sleep(POLL_SECONDS)


def _failure(target: DemoTarget, what: str, name: str, job: dict[str, Any]) -> str:
    conditions = (job.get("status") or {}).get("conditions") or []
    failed = next((c for c in conditions if c["type"] == "Failed"), None)
    why = (
        f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".rstrip(": ")
        if failed
        else f"not finished in time ({_pod_detail(target, name)})"
    )
    logs = target.kube.run("logs", f"job/{name}", "-n", target.namespace, "--tail=50")
    return (
        f"{what} failed (Job {target.namespace}/{name}): {why}\n"
        f"its last log lines:\n{(logs.stdout or logs.stderr).rstrip() or '(none)'}"
    )


def seed(target: DemoTarget) -> Seeded:
    """The seeded transactions and feature tables into the offline store (replacing them)."""
    run_job(target, "seeding the offline store", SEED_JOB, seed_command())
    events = data.seeded().transactions
    return Seeded(SEED_JOB, len(events), int(events["is_fraud"].sum()))


def materialize(target: DemoTarget) -> Materialized:
    """The seeded features into the online store, over the window the data spans."""
    start, end = data.materialize_window(data.seeded())
    run_job(
        target,
        f"materializing {start} to {end}",
        MATERIALIZE_JOB,
        ["feast", "materialize", start, end],
    )
    return Materialized(MATERIALIZE_JOB, start, end)
