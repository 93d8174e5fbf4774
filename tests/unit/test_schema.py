"""Every rendered object validates strictly against each supported Kubernetes version."""

from __future__ import annotations

import kubernetes_validate
import pytest

from infra import versions
from mlops import render
from tests.support.rendering import INGRESSES, evaluate


def validate_strictly(rendering: render.Rendering, k8s_version: str) -> None:
    objects = rendering.objects()
    assert len(objects) > 10
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"].startswith("serving.kserve.io/"):
            # Not a Kubernetes type: checked against KServe's CRD in test_kserve.
            continue
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{rendering.stack}: {name} is invalid for Kubernetes {k8s_version}: {error}"
            )


@pytest.mark.parametrize("k8s_version", versions.KUBERNETES_VERSIONS)
def test_every_object_validates_strictly(stack: render.Rendering, k8s_version: str) -> None:
    validate_strictly(stack, k8s_version)


@pytest.mark.parametrize("k8s_version", versions.KUBERNETES_VERSIONS)
def test_every_object_validates_strictly_with_every_ingress_on(k8s_version: str) -> None:
    rendering = evaluate(INGRESSES)
    assert len(rendering.of_type("Ingress")) == 4
    validate_strictly(rendering, k8s_version)


def test_strict_validation_rejects_a_misplaced_ingress_field() -> None:
    """The Ingress check above can fail: a TLS block in the wrong place is caught."""
    ingress = evaluate(INGRESSES).find("Ingress", "mlflow").manifest()
    ingress["spec"]["rules"][0]["tls"] = ingress["spec"]["tls"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ingress, versions.KUBERNETES_VERSIONS[-1], strict=True)


def test_strict_validation_rejects_an_unknown_field(stack: render.Rendering) -> None:
    """The check above can fail: a misspelt field is caught."""
    statefulset = next(o for o in stack.objects() if o["kind"] == "StatefulSet")
    statefulset["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, versions.KUBERNETES_VERSIONS[-1], strict=True)


def test_supported_versions_are_oldest_and_newest_first_to_last() -> None:
    parsed = [tuple(int(p) for p in v.split(".")) for v in versions.KUBERNETES_VERSIONS]
    assert parsed == sorted(parsed) and len(parsed) >= 2
