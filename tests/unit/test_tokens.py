"""Service-account tokens: automount is off on every pod and ServiceAccount; a pod whose
account holds a role mounts a projected, expiring token explicitly, and no other pod does."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient

from infra import kube
from infra.components import flyte
from mlops import render
from tests.support.rendering import SENTINELS, evaluate, pod_specs, stack_rendering

CASES = ("dev", "ci", "staging", "prod", "kind")


def bound_accounts(rendering: render.Rendering) -> set[tuple[str, str]]:
    """(namespace, name) of every ServiceAccount a RoleBinding or ClusterRoleBinding names."""
    return {
        (subject["namespace"], subject["name"])
        for binding in rendering.objects()
        if binding["kind"] in ("RoleBinding", "ClusterRoleBinding")
        for subject in binding["subjects"]
        if subject["kind"] == "ServiceAccount"
    }


def projects_a_token(spec: dict[str, Any]) -> bool:
    return any(
        "serviceAccountToken" in source
        for volume in spec.get("volumes", [])
        for source in volume.get("projected", {}).get("sources", [])
    )


def namespaced_pod_specs(rendering: render.Rendering) -> list[tuple[str, str, dict[str, Any]]]:
    owners = {
        f"{o['kind']}/{o['metadata']['name']}": o["metadata"].get("namespace")
        for o in rendering.objects()
    }
    return [(owner, owners[owner], spec) for owner, spec in pod_specs(rendering)]


@pytest.mark.parametrize("case", CASES)
def test_no_pod_or_service_account_automounts_a_token(case: str) -> None:
    rendering = stack_rendering(case)
    for owner, spec in pod_specs(rendering):
        assert spec["automountServiceAccountToken"] is False, owner
    accounts = [o for o in rendering.objects() if o["kind"] == "ServiceAccount"]
    assert accounts
    for account in accounts:
        assert account["automountServiceAccountToken"] is False, account["metadata"]["name"]


@pytest.mark.parametrize("case", CASES)
def test_a_token_is_projected_exactly_where_a_role_is_bound(case: str) -> None:
    rendering = stack_rendering(case)
    bound = bound_accounts(rendering)
    holders = set()
    for owner, ns, spec in namespaced_pod_specs(rendering):
        has_role = (ns, spec.get("serviceAccountName", "default")) in bound
        assert projects_a_token(spec) is has_role, owner
        if has_role:
            holders.add(owner)
            assert kube.api_token_volume() in spec["volumes"], owner
            # The container that talks to the API server mounts it; a sidecar need not.
            mounts = [c.get("volumeMounts", []) for c in spec["containers"]]
            assert any(kube.api_token_mount() in m for m in mounts), owner
    assert holders == {"Deployment/flyte", "StatefulSet/prometheus"}


def test_the_projected_token_expires_and_names_no_audience() -> None:
    """In-cluster clients send it to the API server, whose default audience is the cluster's."""
    sources = kube.api_token_volume()["projected"]["sources"]
    token = next(s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s)
    assert token == {"path": "token", "expirationSeconds": 3600}
    paths = {
        item["path"]
        for s in sources
        for item in [
            *s.get("configMap", {}).get("items", []),
            *s.get("downwardAPI", {}).get("items", []),
        ]
    }
    assert paths == {"ca.crt", "namespace"}


def test_project_namespace_accounts_automount_nothing() -> None:
    """The training account and each namespace's default account, as the platform writes them."""
    rendering = evaluate({}, SENTINELS)
    for ns in flyte.project_namespaces(rendering.config.flyte):
        accounts = {
            a["metadata"]["name"]: a
            for a in rendering.objects()
            if a["kind"] == "ServiceAccount" and a["metadata"]["namespace"] == ns
        }
        assert set(accounts) == {flyte.TRAINING_ACCOUNT, "default"}
        assert all(a["automountServiceAccountToken"] is False for a in accounts.values())


def test_training_tasks_project_the_token_of_their_bound_account() -> None:
    """The training tasks' pod template mounts the platform's token shape; their account is
    the one the model namespace's deployer role is bound to."""
    from workloads.training import workflow

    spec = ApiClient().sanitize_for_serialization(workflow.POD_TEMPLATE.pod_spec)
    assert spec["automountServiceAccountToken"] is False
    assert kube.api_token_volume() in spec["volumes"]
    mounts = spec["containers"][0]["volumeMounts"]
    assert kube.api_token_mount() in mounts
    bound = bound_accounts(stack_rendering("dev"))
    assert ("ml-development", spec["serviceAccountName"]) in bound


def test_inference_service_pods_automount_nothing() -> None:
    from workloads.serving import inference_service as isvc

    manifest = isvc.inference_service("fraud", "1", "s3://models/fraud")
    assert manifest["spec"]["predictor"]["automountServiceAccountToken"] is False
    assert manifest["spec"]["transformer"]["automountServiceAccountToken"] is False
