"""The project images: where each configured reference runs, and the registry login that lets
every namespace running one pull it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from infra import kube, versions
from infra.components import flyte, kserve
from mlops import clientconfig, render
from tests.support.rendering import SENTINELS, evaluate, unwrap

REGISTRY = "registry.example.com:5000"
PROJECTS = ("ml-development", "ml-staging", "ml-production")
LOGIN = {"registry": REGISTRY, "username": "robot"}
WORKLOADS = f"{REGISTRY}/ml/workloads@sha256:{'0123456789abcdef' * 4}"
SERVING = f"{REGISTRY}/ml/serving:1.4.0@sha256:{'fedcba9876543210' * 4}"
PRIVATE = {"images": {"workloads": WORKLOADS, "serving": SERVING, "pullSecret": LOGIN}}
DOCKER_CONFIG = {
    "auths": {
        REGISTRY: {
            "username": "robot",
            "password": SENTINELS["imagePullPassword"],
            "auth": base64.b64encode(f"robot:{SENTINELS['imagePullPassword']}".encode()).decode(),
        }
    }
}
# The project's own pods: the feast Jobs (the feature server runs Feast's public image).
FEAST_JOBS = (("Job", "feast-apply"), ("CronJob", "feast-materialize"))


def pod(rendering: render.Rendering, kind: str, name: str) -> dict[str, Any]:
    spec = rendering.find(kind, name).manifest()["spec"]
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def project_namespace_objects(rendering: render.Rendering) -> dict[tuple[str, str], Any]:
    """What the platform writes into Flyte's project namespace ml-development, secret values
    as the program sent them."""
    objects = {}
    for resource in rendering.resources:
        if not resource.type.startswith("kubernetes:"):
            continue
        obj = resource.manifest()
        if obj.get("metadata", {}).get("namespace") != "ml-development":
            continue
        if "stringData" in resource.inputs:
            obj["stringData"] = unwrap(resource.inputs["stringData"])
        objects[(obj["kind"], obj["metadata"]["name"])] = obj
    return objects


def pull_secrets(rendering: render.Rendering) -> dict[str, render.Resource]:
    """The registry login Secrets, by namespace."""
    return {
        r.inputs["metadata"]["namespace"]: r
        for r in rendering.of_type("Secret")
        if r.inputs["metadata"]["name"] == kube.IMAGE_PULL_SECRET
    }


def references(value: Any) -> list[Any]:
    """Every `imagePullSecrets` anywhere inside an object."""
    if isinstance(value, dict):
        found = [value["imagePullSecrets"]] if "imagePullSecrets" in value else []
        return found + [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def test_by_default_the_pinned_project_images_run() -> None:
    rendering = evaluate({})
    for kind, name in FEAST_JOBS:
        assert pod(rendering, kind, name)["containers"][0]["image"] == versions.WORKLOADS_IMAGE
    runtime = rendering.find("ServingRuntime", kserve.MLFLOW_RUNTIME).manifest()
    assert runtime["spec"]["containers"][0]["image"] == versions.SERVING_IMAGE
    settings = project_namespace_objects(rendering)[("ConfigMap", "mlops-workloads")]["data"]
    assert settings["MLOPS_WORKLOADS_IMAGE"] == versions.WORKLOADS_IMAGE
    assert rendering.outputs["images"] == {
        "workloads": versions.WORKLOADS_IMAGE,
        "serving": versions.SERVING_IMAGE,
    }


def test_the_workloads_image_by_digest_reaches_jobs_tasks_and_client_settings(
    tmp_path: Path,
) -> None:
    rendering = evaluate({"images": {"workloads": WORKLOADS}})
    for kind, name in FEAST_JOBS:
        assert pod(rendering, kind, name)["containers"][0]["image"] == WORKLOADS, name
    settings = project_namespace_objects(rendering)[("ConfigMap", "mlops-workloads")]["data"]
    # The training tasks deploy the transformer with this image.
    assert settings["MLOPS_WORKLOADS_IMAGE"] == WORKLOADS
    assert rendering.outputs["images"]["workloads"] == WORKLOADS
    clientconfig.write(rendering.outputs, tmp_path)
    assert f"MLOPS_WORKLOADS_IMAGE={WORKLOADS}\n" in (tmp_path / "workloads.env").read_text()
    # The serving image is left at its pin.
    runtime = rendering.find("ServingRuntime", kserve.MLFLOW_RUNTIME).manifest()
    assert runtime["spec"]["containers"][0]["image"] == versions.SERVING_IMAGE


def test_the_serving_image_runs_the_mlflow_runtime() -> None:
    rendering = evaluate({"images": {"serving": SERVING}})
    runtime = rendering.find("ServingRuntime", kserve.MLFLOW_RUNTIME).manifest()
    assert [c["image"] for c in runtime["spec"]["containers"]] == [SERVING]
    assert rendering.outputs["images"] == {
        "workloads": versions.WORKLOADS_IMAGE,
        "serving": SERVING,
    }
    assert (
        pod(rendering, "Job", "feast-apply")["containers"][0]["image"] == versions.WORKLOADS_IMAGE
    )


def test_a_registry_login_puts_a_pull_secret_in_every_namespace_running_project_images() -> None:
    rendering = evaluate(PRIVATE)
    secrets = pull_secrets(rendering)
    # The platform namespace, the model namespace and every Flyte project namespace.
    assert set(secrets) == {"mlops", "mlops-models", *PROJECTS}
    for namespace, secret in secrets.items():
        manifest = secret.manifest()
        assert manifest["type"] == "kubernetes.io/dockerconfigjson", namespace
        assert manifest["metadata"]["labels"]["app.kubernetes.io/part-of"] == kube.PART_OF
        # The value is a Pulumi secret: redacted in renders and state.
        assert render.is_secret(secret.inputs["stringData"]), namespace
        assert manifest["stringData"] == {".dockerconfigjson": render.REDACTED}, namespace
        assert json.loads(unwrap(secret.inputs["stringData"])[".dockerconfigjson"]) == DOCKER_CONFIG
    assert not [s for s in rendering.of_type("Secret") if s.name == "flyte-image-pull"]


def test_every_pod_and_account_that_runs_a_project_image_names_the_pull_secret() -> None:
    rendering = evaluate(PRIVATE)
    named = [{"name": kube.IMAGE_PULL_SECRET}]
    for kind, name in FEAST_JOBS:
        assert pod(rendering, kind, name)["imagePullSecrets"] == named, name
    runtime = rendering.find("ServingRuntime", kserve.MLFLOW_RUNTIME).manifest()
    assert runtime["spec"]["imagePullSecrets"] == named
    account = rendering.find("ServiceAccount", kserve.SERVICE_ACCOUNT).manifest()
    assert account["imagePullSecrets"] == named
    training = project_namespace_objects(rendering)[("ServiceAccount", flyte.TRAINING_ACCOUNT)]
    assert training["imagePullSecrets"] == named
    # Pods of public images pull without it.
    assert "imagePullSecrets" not in pod(rendering, "Deployment", "feast")
    assert "imagePullSecrets" not in pod(rendering, "Deployment", "flyte")


def test_the_runtime_with_a_pull_secret_follows_the_kserve_crd() -> None:
    from tests.support.kserve import validate

    validate(evaluate(PRIVATE).find("ServingRuntime", kserve.MLFLOW_RUNTIME).manifest())


def test_without_a_login_there_is_no_pull_secret_and_no_reference() -> None:
    rendering = evaluate({"images": {"workloads": WORKLOADS}})
    assert pull_secrets(rendering) == {}
    assert not [
        s
        for s in rendering.objects()
        if s["kind"] == "Secret" and "image-pull" in s["metadata"]["name"]
    ]
    assert [o["metadata"]["name"] for o in rendering.objects() if references(o)] == []
    project = project_namespace_objects(rendering)
    assert ("Secret", kube.IMAGE_PULL_SECRET) not in project
    assert not references(list(project.values()))


def test_the_pull_secret_follows_the_components_that_run_project_images() -> None:
    """Feast's Jobs and the backup Jobs bring the platform namespace's (one Secret for both),
    KServe the model namespace's, Flyte the project namespaces'."""
    without = {"feast": {"enabled": False}, "flyte": {"enabled": False}}
    rendering = evaluate({**PRIVATE, **without, "backups": {"enabled": False}})
    assert set(pull_secrets(rendering)) == {"mlops-models"}
    rendering = evaluate({**PRIVATE, **without})
    assert set(pull_secrets(rendering)) == {"mlops", "mlops-models"}
    rendering = evaluate({**PRIVATE, "kserve": {"enabled": False}})
    assert set(pull_secrets(rendering)) == {"mlops", *PROJECTS}


@pytest.mark.parametrize("k8s_version", versions.KUBERNETES_VERSIONS)
def test_a_stack_with_a_registry_login_validates_strictly(k8s_version: str) -> None:
    rendering = evaluate(PRIVATE)
    for obj in rendering.objects():
        if obj["apiVersion"].startswith("serving.kserve.io/"):
            continue
        kubernetes_validate.validate(obj, k8s_version, strict=True)


def test_flyte_starts_after_the_project_namespaces_pull_secrets() -> None:
    rendering = evaluate(PRIVATE)
    deployment = rendering.find("Deployment", "flyte")
    for namespace in PROJECTS:
        assert pull_secrets(rendering)[namespace].urn in deployment.depends_on, namespace


def test_the_feast_jobs_start_after_their_pull_secret() -> None:
    rendering = evaluate(PRIVATE)
    secret = pull_secrets(rendering)["mlops"]
    assert secret.urn in rendering.find("Job", "feast-apply").depends_on
