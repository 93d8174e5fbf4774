"""`mlops restore`: a stack's Postgres databases and Redis back from a backup, with the
platform's own restore templates (the suspended CronJobs restore-postgres and restore-redis) run
as Jobs with BACKUP_ID set, so the restore is exactly the rendered pod the restore drill tests.

Order: scale the writers (MLflow, Feast, Flyte) to zero and suspend the materialization; restore
Postgres (pg_restore --clean --if-exists per database); stop Redis, swap its data for the
backup's RDB and start it again; scale the writers back.
"""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

from mlops import console, deploy, kube
from mlops.errors import UserError

WRITERS = ("deployment/mlflow", "deployment/feast", "deployment/flyte")
BACKUP_ID = re.compile(r"^(latest|\d{8}T\d{6}Z)$")


def job_from_template(cron: dict[str, Any], name: str, backup: str) -> dict[str, Any]:
    """A Job from a restore CronJob's template, BACKUP_ID set on its fetch container."""
    template = copy.deepcopy(cron["spec"]["jobTemplate"])
    for container in template["spec"]["template"]["spec"].get("initContainers") or []:
        for item in container.get("env") or []:
            if item["name"] == "BACKUP_ID":
                item["value"] = backup
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": template["metadata"].get("labels", {})},
        "spec": template["spec"],
    }


def _run_template(k: kube.Kube, namespace: str, template: str, backup: str, suffix: str) -> None:
    cron = k.get("cronjob", template, "-n", namespace)
    name = f"{template}-{suffix}"
    k.check(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(job_from_template(cron, name, backup)),
    )
    with console.step(f"running {name}"):
        done = k.run(
            "wait",
            "-n",
            namespace,
            "--for=condition=complete",
            f"job/{name}",
            "--timeout=6h",
            timeout=6 * 3600 + 60,
        )
    logs = k.run("logs", "-n", namespace, f"job/{name}", "--all-containers").stdout
    if done.returncode != 0:
        raise UserError(f"{name} failed; the writers stay scaled down:\n{logs[-3000:]}")
    console.err.print(logs.rstrip())


def restore(stack: str, backup: str) -> None:
    if not BACKUP_ID.match(backup):
        raise UserError(
            f"backup '{backup}': must be latest or a UTC timestamp such as 20261130T020000Z"
        )
    record = deploy.record_of(stack)
    namespace = deploy.namespace_of(stack)
    k = deploy.kube_of(record)
    suffix = time.strftime("%Y%m%d%H%M%S", time.gmtime())

    writers: dict[str, str] = {}
    for workload in WRITERS:
        found = k.run("get", "-n", namespace, workload, "-o", "jsonpath={.spec.replicas}")
        if found.returncode == 0 and found.stdout:
            writers[workload] = found.stdout
            console.say(f"scaling {workload} from {found.stdout} to 0")
            k.check("scale", "-n", namespace, workload, "--replicas=0")
    materialize = k.run("get", "-n", namespace, "cronjob", "feast-materialize").returncode == 0
    if materialize:
        _suspend_materialization(k, namespace, True)
    for workload in writers:
        k.run(
            "wait",
            "-n",
            namespace,
            "--for=delete",
            "pod",
            "-l",
            f"app.kubernetes.io/name={workload.split('/')[1]}",
            "--timeout=5m",
            timeout=330,
        )

    if k.run("get", "-n", namespace, "cronjob", "restore-postgres").returncode == 0:
        _run_template(k, namespace, "restore-postgres", backup, suffix)
    if k.run("get", "-n", namespace, "cronjob", "restore-redis").returncode == 0:
        console.say("stopping redis")
        k.check("scale", "-n", namespace, "statefulset/redis", "--replicas=0")
        k.run("wait", "-n", namespace, "--for=delete", "pod/redis-0", "--timeout=5m", timeout=330)
        _run_template(k, namespace, "restore-redis", backup, suffix)
        k.check("scale", "-n", namespace, "statefulset/redis", "--replicas=1")
        k.run(
            "rollout", "status", "-n", namespace, "statefulset/redis", "--timeout=10m", timeout=630
        )

    for workload, replicas in writers.items():
        console.say(f"scaling {workload} back to {replicas}")
        k.check("scale", "-n", namespace, workload, f"--replicas={replicas}")
    if materialize:
        _suspend_materialization(k, namespace, False)
    console.say(f"restored {backup} into {namespace}")


def _suspend_materialization(k: kube.Kube, namespace: str, suspend: bool) -> None:
    """Holds Feast's materialization CronJob (suspend) while Redis is restored, or resumes it."""
    spec = json.dumps({"spec": {"suspend": suspend}}, separators=(",", ":"))
    k.check("patch", "-n", namespace, "cronjob", "feast-materialize", "--type=merge", "-p", spec)
