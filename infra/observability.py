"""What each component tells the monitoring stack about itself.

A component declares its scrape targets (the ports and paths it defines), the metric series
those targets expose, the alert rule files that watch it and its pods' requests. The
monitoring component turns the declarations into Prometheus config; the dashboards and the
tests read the same declarations, so nothing is typed twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra.config import Resources

_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


def quantity(text: str) -> float:
    """A Kubernetes quantity as a number: "250m" is 0.25 (cores), "512Mi" is 536870912."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return float(match.group(1)) * _FACTORS[match.group(2)]


def histogram(name: str) -> frozenset[str]:
    """The series a Prometheus histogram exposes."""
    return frozenset({f"{name}_bucket", f"{name}_sum", f"{name}_count"})


def summary(name: str) -> frozenset[str]:
    """The series a Prometheus summary exposes (the quantiles carry the bare name)."""
    return frozenset({name, f"{name}_sum", f"{name}_count"})


# The characters Kubernetes' generated name suffixes and pod-template hashes are made of: a
# Job's pods (`feast-apply-x2b7q`) never match a Deployment's pattern.
_GENERATED = "[bcdfghjklmnpqrstvwxz2456789]"


def deployment_pods(name: str) -> str:
    """The pod names of a Deployment: <name>-<pod-template hash>-<5 generated characters>."""
    return f"{name}-{_GENERATED}+-{_GENERATED}{{5}}"


def statefulset_pods(name: str) -> str:
    return f"{name}-[0-9]+"


@dataclass(frozen=True)
class BasicAuth:
    """Credentials Prometheus sends: a user name and a key of a Secret in the namespace."""

    username: str
    secret: str
    key: str


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    # host:port, resolvable from the Prometheus pod.
    address: str
    path: str = "/metrics"
    basic_auth: BasicAuth | None = None


@dataclass(frozen=True)
class Workload:
    """A component's pods, for usage-against-requests panels: a pod-name regex and requests."""

    name: str
    pods: str
    cpu_request: float
    memory_request: float

    @staticmethod
    def of(name: str, pods: str, size: Resources) -> Workload:
        return Workload(name, pods, quantity(size.cpu_request), quantity(size.memory_request))


@dataclass(frozen=True)
class Telemetry:
    component: str
    targets: tuple[ScrapeTarget, ...] = ()
    # Every series name the targets expose that a dashboard or rule may query.
    metrics: frozenset[str] = frozenset()
    # Rule files in infra/alerts/ that watch this component.
    rules: tuple[str, ...] = ()
    workloads: tuple[Workload, ...] = ()
