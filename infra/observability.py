"""What each component tells the monitoring stack about itself.

A component declares its scrape targets (the ports and paths it defines, or the pods it
discovers), the metric series those targets expose, the alert rule files that watch it and its
pods' requests. Prometheus is configured from the declarations; the dashboards and the tests
read the same declarations, and take the thresholds they draw from the alert rules, so nothing
is typed twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pulumi
import yaml

from infra.sizes import Resources, quantity

ALERTS_DIR = Path(__file__).resolve().parent / "alerts"


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
    """Credentials Prometheus sends: a user name and a key of a Secret in the namespace (whose
    value, `password`, rolls Prometheus when it is rotated)."""

    username: str
    secret: str
    key: str
    password: pulumi.Output[str] = field(compare=False, repr=False)


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    # host:port, resolvable from the Prometheus pod.
    address: str
    path: str = "/metrics"
    basic_auth: BasicAuth | None = None
    # A gateway that relays others' series (the Pushgateway): their job and instance labels win.
    honor_labels: bool = False


@dataclass(frozen=True)
class PodDiscovery:
    """Pods of one namespace found through the API server: those that carry `label` and opt in
    with the `prometheus.io/scrape`, `prometheus.io/port` and `prometheus.io/path` annotations.
    Their series are labelled namespace, pod and `series_label` (the value of `label`)."""

    job: str
    namespace: str
    label: str
    series_label: str


@dataclass(frozen=True)
class Workload:
    """A component's pods, for usage-against-requests panels: a pod-name regex and requests."""

    name: str
    pods: str
    cpu_request: float
    memory_request: float

    @staticmethod
    def of(name: str, pods: str, size: Resources) -> Workload:
        return Workload(name, pods, quantity(size.requests.cpu), quantity(size.requests.memory))


@dataclass(frozen=True)
class Telemetry:
    component: str
    targets: tuple[ScrapeTarget, ...] = ()
    discovery: tuple[PodDiscovery, ...] = ()
    # Every series name the targets expose that a dashboard or rule may query.
    metrics: frozenset[str] = frozenset()
    # Rule files in infra/alerts/ that watch this component.
    rules: tuple[str, ...] = ()
    workloads: tuple[Workload, ...] = ()


@cache
def _rules(rule_file: str) -> dict[str, str]:
    document = yaml.safe_load((ALERTS_DIR / rule_file).read_text())
    return {r["alert"]: r["expr"] for g in document["groups"] for r in g["rules"] if "alert" in r}


def alert_names(rule_file: str) -> frozenset[str]:
    return frozenset(_rules(rule_file))


@cache
def component_alerts(rule_file: str) -> dict[str, str]:
    """The alerts whose rule sets a `component` label (a component's own symptoms, such as its
    latency and error alerts), and that component."""
    document = yaml.safe_load((ALERTS_DIR / rule_file).read_text())
    return {
        r["alert"]: r["labels"]["component"]
        for g in document["groups"]
        for r in g["rules"]
        if "alert" in r and "component" in r.get("labels", {})
    }


_COMPARED = re.compile(r"(?:>=|<=|==|!=|>|<)\s*(?:bool\s+)?([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)")


def threshold(rule_file: str, alert: str) -> float:
    """The number an alert compares against, read from its rule (every comparison in the
    expression must use the same one), for dashboards to draw where the alert fires."""
    numbers = {float(n) for n in _COMPARED.findall(_rules(rule_file)[alert])}
    if len(numbers) != 1:
        raise ValueError(f"{rule_file} {alert}: not one threshold but {sorted(numbers)}")
    number = numbers.pop()
    # Whole numbers stay integers in the dashboards' JSON (3600, not 3600.0).
    return int(number) if number.is_integer() else number
