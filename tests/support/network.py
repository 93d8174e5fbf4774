"""A small NetworkPolicy evaluator for tests, and a scan for the connections a rendered pod's
settings name.

The evaluator follows the networking.k8s.io/v1 semantics: a pod selected by no policy of a
direction is open in that direction; a selected pod accepts what any rule of any selecting
policy allows (peers by pod and namespace selector, or ipBlock; ports by number and protocol).
A connection needs the source's egress and the destination's ingress. `ipBlock` is taken to
match addresses outside the cluster only (what the platform's ipBlocks are meant for).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra import network
from mlops.render import Rendering
from policy import rules
from tests.support.rendering import pod_template

OUTSIDE_IP = "203.0.113.7"
PROTOCOLS = ("TCP", "UDP")


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels), or an address outside the cluster (`namespace` None).
    `group` names what it stands for in the graph."""

    group: str
    namespace: str | None
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    ip: str | None = None


def outside() -> Endpoint:
    return Endpoint("outside", None, ip=OUTSIDE_IP)


def _peer_matches(peer: Mapping[str, Any], namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        labels = {network.NAMESPACE_NAME_LABEL: other.namespace}
        if not rules.label_selector_matches(peer["namespaceSelector"], labels):
            return False
    elif other.namespace != namespace:
        return False
    return rules.label_selector_matches(peer.get("podSelector", {}), other.labels)


def _rule_allows(
    rule: Mapping[str, Any], key: str, namespace: str, other: Endpoint, port: int, protocol: str
) -> bool:
    ports = rule.get("ports")
    if ports and not any(
        p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
    ):
        return False
    peers = rule.get(key)
    return not peers or any(_peer_matches(p, namespace, other) for p in peers)


def _direction(
    policies: Sequence[Mapping[str, Any]],
    pod: Endpoint,
    other: Endpoint,
    port: int,
    protocol: str,
    kind: str,
) -> bool:
    if pod.namespace is None:
        return True
    selecting = [
        p
        for p in policies
        if policy_selects(p, pod.namespace, pod.labels)
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    key = "to" if kind == "Egress" else "from"
    return any(
        _rule_allows(rule, key, pod.namespace, other, port, protocol)
        for p in selecting
        for rule in p["spec"].get(kind.lower(), [])
    )


def allowed(
    policies: Sequence[Mapping[str, Any]],
    source: Endpoint,
    destination: Endpoint,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether the policies let `source` open a connection to `destination` on `port`."""
    return _direction(policies, source, destination, port, protocol, "Egress") and _direction(
        policies, destination, source, port, protocol, "Ingress"
    )


def representative(pods: network.Pods) -> Endpoint:
    """A pod of a group: the labels its selector requires (any value where it asks for a key)."""
    selector = pods.selector or {}
    labels = dict(selector.get("matchLabels", {}))
    for expression in selector.get("matchExpressions", []):
        if expression["operator"] == "Exists":
            labels[expression["key"]] = "any"
        elif expression["operator"] == "In":
            labels[expression["key"]] = expression["values"][0]
    return Endpoint(pods.name, pods.namespace, labels)


def rendered_pods(rendering: Rendering) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(owner, namespace, labels) of every rendered pod template."""
    for obj in rendering.objects():
        template = pod_template(obj)
        if template is not None:
            owner = f"{obj['kind']}/{obj['metadata']['name']}"
            yield owner, obj["metadata"]["namespace"], template["metadata"].get("labels", {})


def group_of(graph: network.Graph, namespace: str, labels: Mapping[str, str]) -> list[str]:
    """The declared groups a pod belongs to."""
    return [
        p.name
        for p in graph.pods
        if p.namespace == namespace and rules.label_selector_matches(p.selector or {}, labels)
    ]


def policies_of(rendering: Rendering) -> list[dict[str, Any]]:
    return [o for o in rendering.objects() if o["kind"] == "NetworkPolicy"]


# ---- the connections a pod's settings name ----

# An in-cluster Service name, with the port after it when there is one.
_SERVICE = re.compile(r"([a-z0-9-]+\.[a-z0-9-]+\.svc\.cluster\.local)(?::(\d+))?")
# ConfigMaps that pods the platform does not render read (Flyte's task pods the project
# namespaces', the InferenceService pods the model namespace's): the groups whose name starts
# with the value.
READ_ELSEWHERE = {
    "mlops-workloads": "tasks-",
    "mlops-workloads-feast": "tasks-",
    "feast-client": "inference-transformer",
    "prediction-log": "inference-transformer",
    # The storage initializer reads the S3 endpoint from the Secret's annotations.
    "kserve-s3": "inference-predictor",
}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _config_maps(spec: Mapping[str, Any]) -> set[str]:
    """The ConfigMaps a pod spec mounts or reads its environment from."""
    names = set()
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            names.add(volume["configMap"]["name"])
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                names.add(source["configMap"]["name"])
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                names.add(source["configMapRef"]["name"])
    return names


def _pod_texts(spec: Mapping[str, Any]) -> Iterator[str]:
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        yield from _strings(container.get("command", []))
        yield from _strings(container.get("args", []))
        yield from (e["value"] for e in container.get("env", []) if "value" in e)


def named_connections(
    objects: Iterable[Mapping[str, Any]], graph: network.Graph
) -> set[tuple[str, str, int | None]]:
    """(group, Service host, port or None) of every in-cluster Service a pod's command, args,
    env values or ConfigMaps name; a ConfigMap read elsewhere counts for the groups that read
    it. Secrets are not read (their values are redacted)."""
    objects = list(objects)
    maps = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o.get("data", {})
        for o in objects
        if o["kind"] == "ConfigMap"
    }
    annotated = [
        (o["metadata"]["name"], o["metadata"].get("annotations", {}))
        for o in objects
        if o["kind"] == "Secret" and o["metadata"]["name"] in READ_ELSEWHERE
    ]
    found: set[tuple[str, str, int | None]] = set()

    def add(groups: Iterable[str], texts: Iterable[str]) -> None:
        for text in texts:
            for host, port in _SERVICE.findall(text):
                for group in groups:
                    found.add((group, host, int(port) if port else None))

    for obj in objects:
        template = pod_template(obj)
        if template is None:
            continue
        ns, spec = obj["metadata"]["namespace"], template["spec"]
        groups = group_of(graph, ns, template["metadata"].get("labels", {}))
        add(groups, _pod_texts(spec))
        for name in _config_maps(spec) - set(READ_ELSEWHERE):
            add(groups, _strings(maps.get((ns, name), {})))
    sources = [p.name for p in graph.pods] + [e.source.name for e in graph.edges]
    for name, data in [*((name, data) for (_, name), data in maps.items()), *annotated]:
        if name in READ_ELSEWHERE:
            readers = {s for s in sources if s.startswith(READ_ELSEWHERE[name])}
            add(readers, _strings(data))
    return found


def undeclared(
    connections: Iterable[tuple[str, str, int | None]], graph: network.Graph
) -> list[str]:
    """The named connections no declared edge allows: a host of a listener, at a port it
    listens on (or, with no port named, any port of it)."""
    missing = []
    for group, host, port in sorted(connections, key=str):
        listeners = [listener for listener in graph.listeners if host in listener.hosts]
        if any(listener.pods.name == group for listener in listeners):
            # A server naming itself (allowed Host headers, its own advertised address).
            continue
        if not listeners:
            missing.append(f"{group} -> {host}: no declared listener has this name")
            continue
        targets = {
            (e.to.pods.name, e.to.port)
            for e in graph.edges
            if e.source.name == group and e.to.pods is not None
        }
        ok = any(
            (listener.pods.name, number) in targets
            for listener in listeners
            for number in listener.ports.values()
            if port is None or number == port
        )
        if not ok:
            missing.append(f"{group} -> {host}:{port or '*'}: no declared edge")
    return missing


def policy_selects(policy: Mapping[str, Any], namespace: str, labels: Mapping[str, str]) -> bool:
    """Whether a NetworkPolicy manifest selects a pod of `namespace` with `labels`."""
    return policy["metadata"].get("namespace") == namespace and rules.label_selector_matches(
        policy["spec"].get("podSelector", {}), labels
    )
