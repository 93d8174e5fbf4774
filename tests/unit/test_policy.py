"""The policy pack's rules (policy/rules.py): each passes a good object and names what is wrong
with a bad one, and every rendered stack passes every rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlops import render
from policy import rules
from tests.support.rendering import pod_specs

RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
PROBE = {"httpGet": {"path": "/healthz", "port": "http"}}
SIZES = {"cpu": "100m", "memory": "128Mi"}


def container(**overrides: Any) -> dict[str, Any]:
    good = {
        "name": "app",
        "image": "registry.example.com:5000/team/app:1.4.2",
        "securityContext": RESTRICTED_CONTAINER,
        "resources": {"requests": SIZES, "limits": SIZES},
        "readinessProbe": PROBE,
        "livenessProbe": PROBE,
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "PASSWORD_FILE", "value": "/run/secrets/password"},
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
            },
        ],
    }
    return copy.deepcopy({**good, **overrides})


def workload(kind: str = "Deployment", labels: dict[str, str] | None = None, **pod: Any) -> dict:
    spec = {"securityContext": RESTRICTED_POD, "containers": [container()], **pod}
    template = {"metadata": {"labels": labels or {"app": "web"}}, "spec": spec}
    body: dict[str, Any] = {"template": template}
    if kind == "CronJob":
        body = {"schedule": "0 * * * *", "jobTemplate": {"spec": body}}
    return {"kind": kind, "metadata": {"name": "web", "namespace": "team"}, "spec": body}


def without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    del changed["spec"]["template"]["spec"]["containers"][0][key]
    return changed


def test_restricted_pod_security_passes_a_restricted_pod_and_names_each_gap() -> None:
    assert rules.restricted_pod_security(workload()) == []
    root = {**RESTRICTED_CONTAINER, "runAsNonRoot": False, "capabilities": {"add": ["NET_ADMIN"]}}
    bad = workload(
        securityContext={"runAsUser": 0},
        hostNetwork=True,
        volumes=[{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}],
        initContainers=[container(name="setup", securityContext=root)],
    )
    assert rules.restricted_pod_security(bad) == [
        "pod securityContext.runAsNonRoot must be true",
        "pod securityContext.runAsUser is 0: set a non-zero user id",
        "pod securityContext.seccompProfile.type must be RuntimeDefault",
        "pod hostNetwork must be false",
        "volume docker: hostPath volumes are not allowed",
        "container setup: capabilities must drop [ALL] and add none",
        "container setup: runAsNonRoot must be true",
    ]


def test_requests_and_limits_cover_init_containers_too() -> None:
    assert rules.requests_and_limits(workload(kind="Job")) == []
    bad = workload(initContainers=[container(name="migrate", resources={"requests": SIZES})])
    bad["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    assert rules.requests_and_limits(bad) == [
        "container migrate: resources.limits lacks cpu, memory",
        "container app: resources.requests lacks cpu, memory",
        "container app: resources.limits lacks memory",
    ]


def test_probes_are_required_of_long_running_pods_only() -> None:
    assert rules.probes(workload()) == []
    assert rules.probes(without(workload(), "livenessProbe")) == ["container app: no livenessProbe"]
    for kind in ("StatefulSet", "DaemonSet"):
        assert rules.probes(without(workload(kind), "readinessProbe")) == [
            "container app: no readinessProbe"
        ]
    unprobed_init = workload(initContainers=[{"name": "wait", "image": "busybox:1.37"}])
    assert rules.probes(unprobed_init) == []
    assert rules.probes(without(workload("Job"), "readinessProbe")) == []
    cronjob = workload("CronJob")
    del cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert rules.probes(cronjob) == []


@pytest.mark.parametrize(
    "image",
    [
        "postgres:18.1",
        "registry.example.com:5000/team/app:1.4.2",
        "ghcr.io/mlflow/mlflow:v3.17.2-full",
        "redis@sha256:" + "a" * 64,
    ],
)
def test_pinned_images_accept_a_version_tag_or_a_digest(image: str) -> None:
    assert rules.pinned_images(workload(containers=[container(image=image)])) == []


@pytest.mark.parametrize(
    "image", ["nginx", "nginx:latest", "registry.example.com:5000/team/app", "app:stable", "x:"]
)
def test_pinned_images_refuse_latest_no_tag_and_names_that_are_no_version(image: str) -> None:
    assert rules.pinned_images(workload(containers=[container(image=image)])) == [
        f"container app: image {image!r} is not pinned: "
        "give a version tag (not latest) or an @sha256 digest"
    ]


def test_no_secret_literals_passes_secret_references_and_file_paths() -> None:
    assert rules.no_secret_literals(workload()) == []
    configmap = {
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {
            "config.yaml": "auth:\n  type: no_auth\npassword_file: /run/secrets/pw\n"
            "connection_string: redis:6379,password=${REDIS_PASSWORD}\npassword: ''\n",
            "LOG_LEVEL": "debug",
        },
    }
    assert rules.no_secret_literals(configmap) == []


def test_no_secret_literals_finds_credentials_in_env_literals_and_configmaps() -> None:
    env = [
        {"name": "PGPASSWORD", "value": "hunter2"},
        {"name": "AWS_ACCESS_KEY_ID", "value": "AKIAIOSFODNN7EXAMPLE"},
        {"name": "API_TOKEN", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "t"}}},
    ]
    assert rules.no_secret_literals(workload(containers=[container(env=env)])) == [
        f"container app: env {name} looks like a credential: take it from a Secret "
        "(valueFrom.secretKeyRef), not a literal or a ConfigMap"
        for name in ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "API_TOKEN")
    ]
    configmap = {
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {
            "db_password": "hunter2",
            "app.yaml": "database:\n  url: postgresql://app:hunter2@db:5432/app\n"
            "  password: hunter2\n",
            "bundle.pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n",
        },
    }
    assert rules.no_secret_literals(configmap) == [
        "key db_password looks like a credential: keep it in a Secret",
        "key app.yaml holds a password inside a URL: keep it in a Secret",
        "key app.yaml sets password to a literal value: read it from a Secret",
        "key bundle.pem holds a private key: keep it in a Secret",
    ]


def network_policy(namespace: str, selector: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow", "namespace": namespace},
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"]},
    }


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ({}, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "web", "tier": "db"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Near", "values": ["web"]}]}, False),
    ],
)
def test_label_selectors_match_as_kubernetes_does(selector: dict[str, Any], selected: bool) -> None:
    assert rules.label_selector_matches(selector, {"app": "web"}) is selected


def test_network_policy_coverage_wants_a_policy_in_the_pods_namespace() -> None:
    web, job = workload(), workload("CronJob", labels={"app": "report"})
    covered = [web, job, network_policy("team", {"matchLabels": {"app": "web"}})]
    covered.append(
        network_policy(
            "team", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["report"]}]}
        )
    )
    assert rules.network_policy_coverage(covered) == []
    elsewhere = [web, network_policy("other", {})]
    assert rules.network_policy_coverage(elsewhere) == [
        "Deployment team/web: no NetworkPolicy in namespace team selects its pods "
        "(labels {'app': 'web'})"
    ]
    assert rules.network_policy_coverage(
        [job, network_policy("team", {"matchLabels": {"app": "web"}})]
    ) == [
        "CronJob team/web: no NetworkPolicy in namespace team selects its pods "
        "(labels {'app': 'report'})"
    ]


RULES = [*rules.RESOURCE_RULES, *rules.STACK_RULES]


@pytest.mark.parametrize("rule", RULES)
def test_every_rendered_stack_passes_the_rule(stack: render.Rendering, rule: str) -> None:
    assert rules.violations(stack.objects())[rule] == []


def test_the_rules_see_every_pod_template_of_a_stack(stack: render.Rendering) -> None:
    seen = {f"{o['kind']}/{o['metadata']['name']}" for o in stack.objects() if rules.pod_spec(o)}
    assert seen == {name for name, _ in pod_specs(stack)}
    assert {name.split("/")[0] for name in seen} == {"Deployment", "StatefulSet", "Job", "CronJob"}
