"""Invariants over every object of every stack."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from infra import kube, profiles
from infra.components import flyte
from mlops import render
from policy import rules
from tests.support.rendering import (
    INGRESSES,
    SENTINELS,
    containers,
    evaluate,
    pod_specs,
    secret_data,
    stack_rendering,
)

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def findings(stack: render.Rendering, rule: rules.Rule) -> list[str]:
    """What one of the policy pack's rules finds wrong with a stack's objects."""
    return [
        f"{obj['kind']}/{obj['metadata']['name']}: {message}"
        for obj in stack.objects()
        for message in rule(obj)
    ]


def test_every_container_has_requests_and_limits(stack: render.Rendering) -> None:
    assert findings(stack, rules.requests_and_limits) == []


def test_every_server_container_has_probes(stack: render.Rendering) -> None:
    servers = [(n, c) for n, c, is_job in containers(stack) if not is_job]
    assert len(servers) >= 5
    assert findings(stack, rules.probes) == []


def test_every_container_meets_the_restricted_pod_security_standard(
    stack: render.Rendering,
) -> None:
    assert findings(stack, rules.restricted_pod_security) == []
    for name, spec in pod_specs(stack):
        # A token only where a role is bound, projected explicitly: tests/unit/test_tokens.py.
        assert spec["automountServiceAccountToken"] is False, name


def test_namespaces_enforce_the_restricted_standard(stack: render.Rendering) -> None:
    """The platform's namespace enforces restricted. KServe's model namespace, the operators'
    namespaces and Flyte's project-domain namespaces enforce baseline (their injected,
    upstream and users' task pods need it) and warn and audit against restricted."""
    namespaces = {o["metadata"]["name"]: o for o in stack.objects() if o["kind"] == "Namespace"}
    kserve = stack.config.kserve
    operators = {"kserve"} if kserve.install else set()
    if kserve.install and kserve.cert_manager.install:
        operators.add("cert-manager")
    models = stack.config.kserve.model_namespace
    assert models == f"{stack.config.namespace}-models"
    projects = set(flyte.project_namespaces(stack.config.flyte))
    assert projects == {"ml-development", "ml-staging", "ml-production"}
    assert set(namespaces) == {stack.config.namespace, models, *operators, *projects}
    for name, ns in namespaces.items():
        labels = ns["metadata"]["labels"]
        enforce = "restricted" if name == stack.config.namespace else "baseline"
        assert labels["pod-security.kubernetes.io/enforce"] == enforce, name
        assert labels["pod-security.kubernetes.io/warn"] == "restricted", name
        assert labels["pod-security.kubernetes.io/audit"] == "restricted", name


def test_every_object_is_named_labelled_and_placed(stack: render.Rendering) -> None:
    for obj in stack.objects():
        meta = obj["metadata"]
        assert meta["name"], obj
        assert meta["labels"]["app.kubernetes.io/part-of"] == kube.PART_OF, meta["name"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == kube.MANAGED_BY, meta["name"]
        if obj["kind"] not in CLUSTER_SCOPED:
            models = stack.config.kserve.model_namespace
            projects = flyte.project_namespaces(stack.config.flyte) if stack.config.flyte else ()
            assert meta["namespace"] in (stack.config.namespace, models, *projects), meta["name"]


def test_no_stack_exposes_a_service_by_default(stack: render.Rendering) -> None:
    assert stack.of_type("Ingress") == []


def test_each_ingress_is_a_child_of_its_component_named_labelled_and_placed() -> None:
    rendering = evaluate(INGRESSES)
    owners = {
        "mlflow": "mlops:components:Mlflow",
        "flyte": "mlops:components:Flyte",
        "grafana": "mlops:components:Monitoring",
        "prometheus": "mlops:components:Monitoring",
    }
    components = {r.urn: r.type for r in rendering.resources}
    ingresses = rendering.of_type("Ingress")
    assert sorted(i.name for i in ingresses) == sorted(owners)
    for ingress in ingresses:
        meta = ingress.manifest()["metadata"]
        assert components[ingress.parent] == owners[ingress.name], ingress.name
        assert meta["name"] == ingress.name and meta["namespace"] == "mlops", ingress.name
        assert meta["labels"] == kube.labels(
            ingress.name, meta["labels"]["app.kubernetes.io/component"]
        )


def test_every_volume_size_comes_from_the_profile(stack: render.Rendering) -> None:
    profile = profiles.PROFILE_DEFAULTS[stack.config.profile]
    expected = {
        "postgres": profile["postgres"]["storageSize"],
        "redis": profile["redis"]["storageSize"],
        "seaweedfs": profile["objectStore"]["storageSize"],
        "prometheus": profile["monitoring"]["storageSize"],
        # Silences and the notification log: the same small volume in every profile.
        "alertmanager": "1Gi",
    }
    sizes = {
        s.inputs["metadata"]["name"]: [
            c["spec"]["resources"]["requests"]["storage"]
            for c in s.manifest()["spec"]["volumeClaimTemplates"]
        ]
        for s in stack.of_type("StatefulSet")
    }
    assert sizes == {name: [size] for name, size in expected.items()}
    assert not stack.of_type("PersistentVolumeClaim")


def test_prod_protects_stateful_data() -> None:
    prod = stack_rendering("prod")
    for statefulset in prod.of_type("StatefulSet"):
        assert statefulset.protect, statefulset.name
        policy = statefulset.manifest()["spec"]["persistentVolumeClaimRetentionPolicy"]
        assert policy["whenDeleted"] == "Retain", statefulset.name
    assert prod.find("Namespace", prod.config.namespace).protect


@pytest.mark.parametrize("name", ["dev", "ci"])
def test_dev_and_ci_leave_data_unprotected(name: str) -> None:
    rendering = stack_rendering(name)
    assert not [r.name for r in rendering.resources if r.protect]
    for statefulset in rendering.of_type("StatefulSet"):
        policy = statefulset.manifest()["spec"]["persistentVolumeClaimRetentionPolicy"]
        assert policy["whenDeleted"] == "Delete", statefulset.name


def test_secrets_reach_the_program_but_no_configmap_env_literal_or_file(
    stack: render.Rendering, tmp_path: Path
) -> None:
    # The sentinels do reach the cluster, in Secrets: the absence below is meaningful.
    assert secret_data(stack, "redis")["password"] == SENTINELS["redisPassword"]
    for configmap in stack.of_type("ConfigMap"):
        text = str(configmap.inputs)
        assert not any(s in text for s in SENTINELS.values()), configmap.name
    for name, container, _ in containers(stack):
        literals = " ".join(str(e.get("value", "")) for e in container.get("env", []))
        literals += " ".join(container.get("command", []) + container.get("args", []))
        assert not any(s in literals for s in SENTINELS.values()), name
    render.write(stack, tmp_path)
    rendered = "".join(p.read_text() for p in tmp_path.rglob("*.yaml"))
    assert rendered and not any(s in rendered for s in SENTINELS.values())


def test_credentials_reach_containers_only_by_secret_reference(stack: render.Rendering) -> None:
    credentials = [
        env["name"]
        for _, container, _ in containers(stack)
        for env in container.get("env", [])
        if rules.is_credential_name(env["name"])
    ]
    assert {"POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY"} <= set(credentials)
    assert findings(stack, rules.no_secret_literals) == []


def test_services_select_pods_and_name_their_ports(stack: render.Rendering) -> None:
    templates = {
        o["metadata"]["name"]: o["spec"]["template"]
        for o in stack.objects()
        if o["kind"] in ("StatefulSet", "Deployment")
    }
    for service in (o for o in stack.objects() if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        matches = [
            t for t in templates.values() if selector.items() <= t["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, service["metadata"]["name"]
        port_names = {p["name"] for c in matches[0]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)


def test_only_the_kubernetes_provider_is_used(stack: render.Rendering) -> None:
    packages = {r.type.split(":")[0] for r in stack.resources}
    assert packages == {"kubernetes", "mlops"}


def test_every_component_is_parented_to_the_platform(stack: render.Rendering) -> None:
    by_urn = {r.urn: r for r in stack.resources}
    for resource in stack.resources:
        if resource.type == "mlops:index:Platform":
            assert resource.parent.endswith("pulumi:pulumi:Stack::mlops-platform-" + stack.stack)
        else:
            assert resource.parent in by_urn, resource.name


def test_images_are_pinned_to_a_version(stack: render.Rendering) -> None:
    assert findings(stack, rules.pinned_images) == []


def test_job_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (./scripts/install-prerequisites.sh installs it)")
    rendering = stack_rendering("dev")
    scripts = {
        c.name: c.inputs["data"]["run.sh"]
        for c in rendering.of_type("ConfigMap")
        if "run.sh" in c.inputs["data"]
    }
    assert set(scripts) == {"postgres-init", "seaweedfs-buckets"}
    for name, script in scripts.items():
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        result = subprocess.run(
            [shellcheck, "-s", "sh", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout
