"""The NetworkPolicies of every stack allow exactly the component graph: every declared edge,
DNS and the API server where declared, and nothing else; every pod is selected; a connection a
pod's settings name but no component declared fails."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from infra import network
from infra.observability import ScrapeTarget, Telemetry
from mlops.render import Rendering
from policy import rules
from tests.support import network as net
from tests.support.rendering import INGRESSES, SENTINELS, STACKS, evaluate, stack_rendering

# External services, every Ingress, an ingress class for the models and every receiver.
EXTERNAL = {
    "postgres": {"external": {"host": "db.example.com", "port": 6432}},
    "redis": {"external": {"host": "cache.example.com", "port": 6380, "tls": True}},
    "objectStore": {"external": {"endpoint": "https://s3.eu-west-1.amazonaws.com:8443"}},
    "kserve": {"ingressClass": "nginx"},
    "ingressNamespace": "ingress",
    **INGRESSES,
}
RECEIVERS = {
    "monitoring": {
        **INGRESSES["monitoring"],
        "alertmanager": {
            "receivers": {
                "webhook": {},
                "slack": {"channel": "#alerts"},
                "email": {
                    "to": ["oncall@example.com"],
                    "from": "alertmanager@example.com",
                    "smarthost": "smtp.example.com:2525",
                    "username": "alertmanager",
                },
            }
        },
    }
}
RECEIVER_SECRETS = {
    "alertmanagerWebhookUrl": "https://hooks.example.com:9443/S3NT1NEL-webhook",
    "alertmanagerSlackApiUrl": "https://hooks.slack.com/services/S3NT1NEL-slack",
}
CASES = (*STACKS, "kind", "external", "receivers")


@cache
def rendered(case: str) -> Rendering:
    if case == "external":
        return evaluate(EXTERNAL)
    if case == "receivers":
        return evaluate(RECEIVERS, {**SENTINELS, **RECEIVER_SECRETS})
    return stack_rendering(case)


def graph_of(rendering: Rendering) -> network.Graph:
    assert rendering.graph is not None
    return rendering.graph


def endpoints(rendering: Rendering) -> list[net.Endpoint]:
    """Every rendered pod, a pod of every declared group (the InferenceService pods, the
    task pods, the ingress controller), DNS, an unrelated pod in each namespace and an
    address outside the cluster."""
    graph = graph_of(rendering)
    found = []
    for owner, ns, labels in net.rendered_pods(rendering):
        groups = net.group_of(graph, ns, labels)
        assert len(groups) <= 1, f"{owner} is in several groups: {groups}"
        found.append(net.Endpoint(groups[0] if groups else f"unknown {owner}", ns, labels))
    sources = {e.source for e in graph.edges}
    found += [net.representative(p) for p in (*graph.pods, *sources)]
    found.append(net.Endpoint("dns", network.DNS_NAMESPACE, {"k8s-app": "kube-dns"}))
    for ns in (*graph.denied, "default"):
        found.append(net.Endpoint(f"stranger in {ns}", ns, {"app": "stranger"}))
    found.append(net.outside())
    return found


def candidate_ports(graph: network.Graph) -> set[int]:
    ports = {port for listener in graph.listeners for port in listener.ports.values()}
    ports |= {e.to.port for e in graph.edges}
    return ports | {network.DNS_PORT, *network.API_SERVER_PORTS}


Connection = tuple[str, str, int, str]


def declared(graph: network.Graph, groups: set[str]) -> set[Connection]:
    """What the graph says may connect: each edge, the API server, and DNS from every pod of
    a denied namespace (`groups`: the groups of those pods, strangers included), where one
    end is in a denied namespace."""
    found: set[Connection] = set()
    for edge in graph.edges:
        ends = {edge.source.namespace, edge.to.pods.namespace if edge.to.pods else None}
        if not ends & set(graph.denied):
            # Between namespaces that deny nothing (task pods to an external database).
            continue
        to = edge.to.pods.name if edge.to.pods is not None else "outside"
        found.add((edge.source.name, to, edge.to.port, "TCP"))
    for pods in graph.api_server:
        found |= {(pods.name, "outside", port, "TCP") for port in network.API_SERVER_PORTS}
    for group in groups:
        found |= {(group, "dns", network.DNS_PORT, protocol) for protocol in net.PROTOCOLS}
    return found


def allowed(rendering: Rendering) -> tuple[set[Connection], set[str]]:
    """What the rendered policies let through, between every pair of endpoints of which one
    is in a denied namespace (elsewhere nothing is denied, and nothing declared)."""
    graph = graph_of(rendering)
    policies = net.policies_of(rendering)
    every = endpoints(rendering)
    ports = sorted(candidate_ports(graph))
    denied = set(graph.denied)
    found: set[Connection] = set()
    for source in every:
        for target in every:
            if source.namespace not in denied and target.namespace not in denied:
                continue
            for port in ports:
                for protocol in net.PROTOCOLS:
                    if net.allowed(policies, source, target, port, protocol):
                        found.add((source.group, target.group, port, protocol))
    return found, {e.group for e in every if e.namespace in denied}


@pytest.mark.parametrize("case", CASES)
def test_every_pod_is_selected_by_its_groups_policy(case: str) -> None:
    rendering = rendered(case)
    graph = graph_of(rendering)
    policies = net.policies_of(rendering)
    for owner, ns, labels in net.rendered_pods(rendering):
        assert ns in graph.denied, f"{owner} runs in {ns}, where nothing is denied"
        selecting = {p["metadata"]["name"] for p in policies if net.policy_selects(p, ns, labels)}
        assert network.DEFAULT_DENY in selecting, owner
        groups = net.group_of(graph, ns, labels)
        assert len(groups) == 1 and groups[0] in selecting, (owner, groups, selecting)


@pytest.mark.parametrize("case", CASES)
def test_the_policies_allow_exactly_the_declared_graph(case: str) -> None:
    rendering = rendered(case)
    graph = graph_of(rendering)
    found, denied_groups = allowed(rendering)
    expected = declared(graph, denied_groups)
    missing = sorted(expected - found)
    extra = sorted(found - expected)
    assert not missing, f"declared but not allowed: {missing}"
    assert not extra, f"allowed but not declared: {extra}"


@pytest.mark.parametrize("case", CASES)
def test_every_connection_a_pod_names_is_declared(case: str) -> None:
    rendering = rendered(case)
    graph = graph_of(rendering)
    assert net.undeclared(net.named_connections(rendering.objects(), graph), graph) == []


def test_a_consumer_without_its_edge_is_found() -> None:
    """Grafana given Redis's address, with no edge declared: the scan names it, and the
    policies would not let it through."""
    rendering = rendered("dev")
    graph = graph_of(rendering)
    objects = copy.deepcopy(rendering.objects())
    grafana = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "grafana"
    )
    container = grafana["spec"]["template"]["spec"]["containers"][0]
    container["env"].append(
        {"name": "CACHE", "value": "redis://redis.mlops.svc.cluster.local:6379"}
    )
    found = net.undeclared(net.named_connections(objects, graph), graph)
    assert found == ["grafana -> redis.mlops.svc.cluster.local:6379: no declared edge"]
    labels = grafana["spec"]["template"]["metadata"]["labels"]
    redis = next(p for p in graph.pods if p.name == "redis")
    assert not net.allowed(
        net.policies_of(rendering),
        net.Endpoint("grafana", "mlops", labels),
        net.representative(redis),
        6379,
    )


def test_a_scrape_target_without_a_listener_is_refused() -> None:
    scraper = network.Pods("prometheus", "mlops", {"matchLabels": {"app": "prometheus"}})
    lost = Telemetry("lost", targets=(ScrapeTarget("lost", "lost.mlops.svc.cluster.local:9999"),))
    with pytest.raises(
        ValueError, match=r"scrape target lost at lost\.mlops\.svc\.cluster\.local:9999"
    ):
        network.graph(
            [network.Network("monitoring", pods=(scraper,), scraper=scraper)],
            [lost],
            denied=["mlops"],
            ingress=network.ingress_controller("ingress-nginx"),
        )


def test_external_services_and_receivers_are_reached_outside_on_their_ports() -> None:
    external = graph_of(rendered("external"))
    reached = {(e.source.name, e.to.port) for e in external.edges if e.to.pods is None}
    assert {("postgres", 6432), ("mlflow", 6432), ("feast", 6380), ("mlflow", 8443)} <= reached
    assert {("inference-predictor", 8443), ("inference-transformer", 6380)} <= reached
    receivers = graph_of(rendered("receivers"))
    delivered = {e.to.port for e in receivers.edges if e.source.name == "alertmanager"}
    assert {9443, 443, 2525} <= delivered


def test_ingress_controllers_reach_only_what_an_ingress_routes_to() -> None:
    graph = graph_of(rendered("external"))
    routed = {
        (e.to.pods.name, e.to.port)
        for e in graph.edges
        if e.source.name == "ingress-controller" and e.to.pods is not None
    }
    assert routed == {
        ("mlflow", 5000),
        ("flyte", 8088),
        ("grafana", 3000),
        ("prometheus", 9090),
        ("inference-predictor", 8080),
        ("inference-transformer", 8080),
    }
    assert all(
        e.source.namespace == "ingress"
        for e in graph.edges
        if e.source.name == "ingress-controller"
    )
    assert not any(e.source.name == "ingress-controller" for e in graph_of(rendered("dev")).edges)


def test_only_pods_that_hold_a_role_reach_the_api_server() -> None:
    graph = graph_of(rendered("dev"))
    assert {p.name for p in graph.api_server} == {"flyte", "prometheus"}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {"a": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
    ],
)
def test_label_selectors_match_as_kubernetes_matches_them(
    selector: dict[str, Any], labels: dict[str, str], expected: bool
) -> None:
    assert rules.label_selector_matches(selector, labels) is expected


@pytest.mark.parametrize("case", CASES)
def test_each_denied_namespace_has_a_default_deny_and_dns(case: str) -> None:
    """One default deny and one DNS policy per denied namespace, and one per group of pods."""
    rendering = rendered(case)
    graph = graph_of(rendering)
    policies = net.policies_of(rendering)
    assert set(graph.denied) == {
        rendering.config.namespace,
        rendering.config.kserve.model_namespace,
    }  # type: ignore[union-attr]
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in policies}
    for ns in graph.denied:
        assert {(ns, network.DEFAULT_DENY), (ns, network.ALLOW_DNS)} <= names
    assert len(policies) == 2 * len(graph.denied) + len(graph.pods)
