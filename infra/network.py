"""Who may talk to whom: the component graph, and the NetworkPolicies built from it.

Each component declares, beside its `telemetry`, a `network` (a `Network`):

- `pods`: its groups of pods (`Pods`: a namespace and the label selector of the pods, usually
  `kube.selector(component)`, which its Jobs' and CronJobs' pods carry too);
- `listeners`: what those pods accept connections on (`Listener`: the pods, the named ports and
  the DNS names of the Services in front of them); a provider hands `listener.at("port")`, an
  `Address`, to its consumers inside its endpoint dataclass (PostgresDatabase.address,
  RedisEndpoint.address, S3Endpoint.address), or `outside(host, port)` when it is external;
- `edges`: the connections its pods open (`Edge(source pods, address)`);
- `api_server`: the pods that call the Kubernetes API (those whose ServiceAccount has a role);
- `scraper`: the pods that scrape every declared scrape target (Prometheus);
- `discovered`: addresses Prometheus finds through pod discovery (the InferenceService pods).

A component that consumes another declares the edge with the address it was handed:

    network = Network(
        "mlflow",
        pods=(pods,),
        listeners=(listener,),
        edges=(Edge(pods, args.database.address), Edge(pods, args.storage.address)),
    )

`graph` merges the declarations (and resolves each telemetry scrape target to the listener
behind its address: a target no listener declares is an error); `policies` builds, for each
namespace the platform denies (its own and the model namespace): a default deny of ingress and
egress, DNS egress to kube-system for every pod, and one NetworkPolicy per group of pods that
allows exactly the declared edges in and out. The policy pack's `rules.label_selector_matches`
decides whether a selector matches a pod's labels (for the pack and the tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.observability import Telemetry

Spec = dict[str, Any]
# The label Kubernetes (1.21+) puts on every namespace, naming it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DNS_NAMESPACE = "kube-system"
DNS_PORT = 53
# The API server's address is the cluster's (a cloud endpoint, a node's IP, kind's control
# plane container): not knowable here, so pods that hold a role may reach any address on the
# ports API servers listen on (443 behind the `kubernetes` Service, 6443 on kubeadm and kind).
API_SERVER_PORTS = (443, 6443)
ANYWHERE = "0.0.0.0/0"
DEFAULT_DENY = "default-deny"
ALLOW_DNS = "allow-dns"


@dataclass(frozen=True)
class Pods:
    """A group of pods: `namespace` and a label selector (None: every pod of the namespace).

    `name` identifies the group in the graph and names its NetworkPolicy."""

    name: str
    namespace: str
    # Not part of the identity (a dict is not hashable): a name means one group.
    selector: Spec | None = field(default=None, compare=False)

    def peer(self, namespace: str) -> Spec:
        """A NetworkPolicy peer for these pods, seen from a policy in `namespace`."""
        pods = self.selector if self.selector is not None else {}
        if self.namespace == namespace:
            return {"podSelector": pods}
        return {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: self.namespace}},
            "podSelector": pods,
        }


def component_pods(component: str, namespace: str, selector: Mapping[str, str]) -> Pods:
    """A component's pods, selected as its Services select them."""
    return Pods(component, namespace, {"matchLabels": dict(selector)})


@dataclass(frozen=True)
class Address:
    """Where a connection goes: a port of declared pods, or (`pods` None) an address outside
    the graph (an external service), reached by `host`."""

    host: str
    port: int
    pods: Pods | None = None


def outside(host: str, port: int) -> Address:
    return Address(host, port)


def url_address(url: str) -> Address:
    """The address of an http(s) URL: its host, and its port or the scheme's."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Address(parts.hostname or url, port)


@dataclass(frozen=True)
class Listener:
    """Pods that accept connections on named ports, and the Service names in front of them."""

    pods: Pods
    ports: Mapping[str, int]
    hosts: tuple[str, ...] = ()

    def at(self, port: str) -> Address:
        if port not in self.ports:
            raise KeyError(f"{self.pods.name} listens on {sorted(self.ports)}, not {port!r}")
        return Address(self.hosts[0] if self.hosts else self.pods.name, self.ports[port], self.pods)


@dataclass(frozen=True)
class Edge:
    source: Pods
    to: Address


@dataclass(frozen=True)
class Network:
    component: str
    pods: tuple[Pods, ...] = ()
    listeners: tuple[Listener, ...] = ()
    edges: tuple[Edge, ...] = ()
    api_server: tuple[Pods, ...] = ()
    scraper: Pods | None = None
    discovered: tuple[Address, ...] = ()
    # Addresses an Ingress routes to: the ingress controller's pods reach them.
    exposed: tuple[Address, ...] = ()


def ingress_controller(namespace: str) -> Pods:
    """The ingress controller's pods: every pod of its namespace (`ingressNamespace`)."""
    return Pods("ingress-controller", namespace)


@dataclass(frozen=True)
class Graph:
    """Every declared group of pods, listener and connection of a stack."""

    pods: tuple[Pods, ...]
    listeners: tuple[Listener, ...]
    edges: tuple[Edge, ...]
    api_server: tuple[Pods, ...]
    # The namespaces whose pods are denied everything not declared.
    denied: tuple[str, ...] = field(default=())

    def owned(self, namespace: str) -> list[Pods]:
        return [p for p in self.pods if p.namespace == namespace]


def _scrape_edges(
    scraper: Pods, listeners: Sequence[Listener], telemetry: Iterable[Telemetry]
) -> list[Edge]:
    """The scraper to the listener behind every declared scrape target."""
    edges = []
    for declared in telemetry:
        for target in declared.targets:
            host, _, port = target.address.rpartition(":")
            found = [
                listener
                for listener in listeners
                if host in listener.hosts and int(port) in listener.ports.values()
            ]
            if not found:
                raise ValueError(
                    f"scrape target {target.job} at {target.address} matches no declared "
                    "listener: declare the pods and port in the component's network"
                )
            edges.append(Edge(scraper, Address(host, int(port), found[0].pods)))
    return edges


def graph(
    networks: Iterable[Network],
    telemetry: Iterable[Telemetry],
    denied: Sequence[str],
    ingress: Pods,
) -> Graph:
    """The merged declarations of every component; the scraper reaches every scrape target and
    every discovered address, the `ingress` controller's pods every exposed address."""
    declared = tuple(networks)
    listeners = tuple(listener for n in declared for listener in n.listeners)
    edges = [edge for n in declared for edge in n.edges]
    edges += [Edge(ingress, address) for n in declared for address in n.exposed]
    for network in declared:
        if network.scraper is not None:
            edges += _scrape_edges(network.scraper, listeners, telemetry)
            edges += [
                Edge(network.scraper, address) for other in declared for address in other.discovered
            ]
    pods = tuple(p for n in declared for p in n.pods)
    names = [p.name for p in pods]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"groups of pods declared twice: {repeated}")
    return Graph(
        pods=pods,
        listeners=listeners,
        edges=tuple(dict.fromkeys(edges)),
        api_server=tuple(p for n in declared for p in n.api_server),
        denied=tuple(dict.fromkeys(denied)),
    )


def _ports(numbers: Iterable[int], protocol: str = "TCP") -> list[Spec]:
    return [{"port": n, "protocol": protocol} for n in sorted(set(numbers))]


def _rules(peers: Mapping[str, tuple[Spec, set[int]]], key: str) -> list[Spec]:
    return [{key: [peer], "ports": _ports(ports)} for peer, ports in peers.values()]


def _allowed(pods: Pods, graph: Graph) -> tuple[list[Spec], list[Spec]]:
    """The ingress and egress rules of one group of pods: the declared edges, grouped by peer."""
    ns = pods.namespace
    ingress: dict[str, tuple[Spec, set[int]]] = {}
    egress: dict[str, tuple[Spec, set[int]]] = {}
    outward: set[int] = set()
    for edge in graph.edges:
        if edge.to.pods == pods:
            peer = edge.source.peer(ns)
            ingress.setdefault(edge.source.name, (peer, set()))[1].add(edge.to.port)
        if edge.source == pods:
            if edge.to.pods is None:
                outward.add(edge.to.port)
            else:
                peer = edge.to.pods.peer(ns)
                egress.setdefault(edge.to.pods.name, (peer, set()))[1].add(edge.to.port)
    if pods in graph.api_server:
        outward.update(API_SERVER_PORTS)
    rules_out = _rules(egress, "to")
    if outward:
        rules_out.append({"to": [{"ipBlock": {"cidr": ANYWHERE}}], "ports": _ports(outward)})
    return _rules(ingress, "from"), rules_out


def policy_specs(graph: Graph) -> dict[tuple[str, str], Spec]:
    """(namespace, name) -> NetworkPolicy spec: for each denied namespace, the default deny,
    DNS for every pod, and one policy per declared group of pods."""
    specs: dict[tuple[str, str], Spec] = {}
    for ns in graph.denied:
        specs[(ns, DEFAULT_DENY)] = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        dns = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: DNS_NAMESPACE}}}
        specs[(ns, ALLOW_DNS)] = {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [dns], "ports": _ports([DNS_PORT], "UDP") + _ports([DNS_PORT])}],
        }
        for pods in graph.owned(ns):
            ingress, egress = _allowed(pods, graph)
            specs[(ns, pods.name)] = {
                "podSelector": pods.selector or {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": ingress,
                "egress": egress,
            }
    return specs


def create(
    graph: Graph, after: Mapping[str, Sequence[pulumi.Resource]], parent: pulumi.Resource
) -> list[k8s.networking.v1.NetworkPolicy]:
    """The NetworkPolicies of `graph`, each created after what `after` lists for its namespace
    (the namespace itself)."""
    return [
        k8s.networking.v1.NetworkPolicy(
            f"network-{ns}-{name}",
            metadata=kube.metadata(name, ns, "network", "network-policy"),
            spec=spec,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=list(after.get(ns, ()))),
        )
        for (ns, name), spec in policy_specs(graph).items()
    ]
