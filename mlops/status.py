"""`mlops status`: every component's readiness on the stack's cluster, and where each UI is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops import access, deploy, kube

NAME = "app.kubernetes.io/name"


@dataclass(frozen=True)
class Workload:
    """One Deployment, StatefulSet or Job of the platform, or the model's InferenceService."""

    component: str
    kind: str
    name: str
    ready: bool
    detail: str


def _rollout(kind: str, item: dict[str, Any]) -> Workload:
    spec, status = item.get("spec") or {}, item.get("status") or {}
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    labels = item["metadata"].get("labels") or {}
    return Workload(
        labels.get(NAME, item["metadata"]["name"]),
        kind,
        item["metadata"]["name"],
        ready >= desired,
        f"{ready}/{desired} ready",
    )


def job_phase(item: dict[str, Any]) -> str:
    """A Job's `complete`, `failed` or `running`, from its conditions."""
    conditions = {
        c["type"]: c["status"] for c in (item.get("status") or {}).get("conditions") or []
    }
    if conditions.get("Complete") == "True":
        return "complete"
    return "failed" if conditions.get("Failed") == "True" else "running"


def _job(item: dict[str, Any]) -> Workload:
    labels = item["metadata"].get("labels") or {}
    phase = job_phase(item)
    return Workload(
        labels.get(NAME, item["metadata"]["name"]),
        "Job",
        item["metadata"]["name"],
        phase == "complete",
        phase,
    )


def _inference_service(item: dict[str, Any]) -> Workload:
    conditions = {c["type"]: c for c in (item.get("status") or {}).get("conditions") or []}
    ready = conditions.get("Ready", {}).get("status") == "True"
    reason = conditions.get("Ready", {}).get("reason") or ("ready" if ready else "not ready")
    url = (item.get("status") or {}).get("url") or ""
    return Workload(
        "kserve", "InferenceService", item["metadata"]["name"], ready, f"{reason} {url}".strip()
    )


def workloads(k: kube.Kube, namespace: str, model_namespace: str | None) -> list[Workload]:
    selector = ["-l", deploy.SELECTOR]
    found = [_rollout("Deployment", i) for i in k.items("deployments", "-n", namespace, *selector)]
    found += [
        _rollout("StatefulSet", i) for i in k.items("statefulsets", "-n", namespace, *selector)
    ]
    # Jobs a CronJob made come and go; the platform's own Jobs say whether setup finished.
    found += [
        _job(i)
        for i in k.items("jobs", "-n", namespace, *selector)
        if not (i["metadata"].get("ownerReferences"))
    ]
    if model_namespace:
        found += [
            _inference_service(i) for i in k.items("inferenceservices", "-n", model_namespace)
        ]
    return sorted(found, key=lambda w: (w.component, w.kind, w.name))


@dataclass(frozen=True)
class Status:
    stack: str
    context: str
    workloads: list[Workload]
    services: list[access.Access]

    @property
    def ready(self) -> bool:
        return bool(self.workloads) and all(w.ready for w in self.workloads)


def status(stack: str) -> Status:
    record = deploy.record_of(stack)
    cfg = deploy.config_of(stack)
    k = deploy.kube_of(record)
    model_namespace = cfg.kserve.model_namespace if cfg.kserve else None
    return Status(
        stack, record.context, workloads(k, cfg.namespace, model_namespace), access.services(cfg)
    )
