"""Secret rotation: a changed secret in stack config changes the Secrets that hold it, and the
pod template of every workload that reads one of those keys at start (its `checksum/secrets`
annotation), so the pods roll and the init Jobs run again; nothing else changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from infra import config, kube
from mlops import render
from tests.support.rendering import (
    ALL_RECEIVERS,
    RECEIVER_SECRETS,
    evaluate,
    secret_refs,
    unwrap,
)

# Every component on, every optional secret in use: alert receivers, a registry login,
# Flyte's identity provider and an external backup target.
EVERYTHING: dict[str, Any] = {
    "flyte": {
        "auth": {"oidc": {"baseUrl": "https://id.example.com/realms/ml", "clientId": "flyte"}}
    },
    **ALL_RECEIVERS,
    "images": {"pullSecret": {"registry": "registry.example.com", "username": "robot"}},
    "backups": {"external": {"endpoint": "https://s3.example.com", "bucket": "mlops-backups"}},
}
SECRETS = RECEIVER_SECRETS
WORKLOADS = ("Deployment", "StatefulSet", "Job")

Key = tuple[str, str, str]


def rotated(key: str) -> dict[str, str]:
    return {**SECRETS, key: SECRETS[key].replace("S3NT1NEL", "R0TAT3D")}


def by_identity(rendering: render.Rendering) -> dict[Key, dict[str, Any]]:
    found = {}
    for resource in rendering.resources:
        if resource.is_kubernetes_object:
            obj = unwrap(resource.inputs)
            meta = obj["metadata"]
            found[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
    return found


def without_secret_digest(obj: Mapping[str, Any]) -> dict[str, Any]:
    template = obj["spec"]["template"]
    annotations = {
        k: v
        for k, v in template["metadata"].get("annotations", {}).items()
        if k != kube.SECRET_DIGEST_ANNOTATION
    }
    metadata = {**template["metadata"], "annotations": annotations}
    return {**obj, "spec": {**obj["spec"], "template": {**template, "metadata": metadata}}}


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str | None]:
    data_before, data_after = before.get("stringData", {}), after.get("stringData", {})
    return {k for k in {*data_before, *data_after} if data_before.get(k) != data_after.get(k)}


@pytest.fixture(scope="module")
def base() -> render.Rendering:
    return evaluate(EVERYTHING, SECRETS)


@pytest.mark.parametrize("key", sorted(config.SECRET_KEYS))
def test_a_rotated_secret_rolls_exactly_its_readers(base: render.Rendering, key: str) -> None:
    before = by_identity(base)
    after = by_identity(evaluate(EVERYTHING, rotated(key)))
    assert set(after) == set(before)
    changed = {identity for identity in before if before[identity] != after[identity]}
    secrets = {i: changed_keys(before[i], after[i]) for i in changed if i[0] == "Secret"}
    assert secrets, f"{key} is held by no Secret"
    readers = set()
    for identity, obj in before.items():
        if identity[0] not in WORKLOADS:
            continue
        namespace = identity[1]
        for name, ref_key in secret_refs(obj["spec"]["template"]["spec"]):
            rotated_keys = secrets.get(("Secret", namespace, name))
            if rotated_keys and (ref_key is None or ref_key in rotated_keys):
                readers.add(identity)
    assert changed - set(secrets) == readers
    for identity in readers:
        old, new = before[identity], after[identity]
        assert without_secret_digest(old) == without_secret_digest(new), identity
        digests = [
            o["spec"]["template"]["metadata"]["annotations"][kube.SECRET_DIGEST_ANNOTATION]
            for o in (old, new)
        ]
        assert digests[0] != digests[1]


def test_init_jobs_rerun_when_a_password_they_apply_is_rotated(base: render.Rendering) -> None:
    after = evaluate(EVERYTHING, rotated("postgresFeastPassword"))
    rerun = {
        name
        for name in ("postgres-init", "mlflow-db-upgrade", "feast-apply")
        if base.find("Job", name).inputs != after.find("Job", name).inputs
    }
    assert rerun == {"postgres-init", "feast-apply"}
    after = evaluate(EVERYTHING, rotated("mlflowAdminPassword"))
    assert (
        base.find("Job", "mlflow-db-upgrade").inputs
        != after.find("Job", "mlflow-db-upgrade").inputs
    )


def test_the_digest_does_not_reveal_the_password() -> None:
    weak = "password1234"
    digest = kube.secret_values_digest([weak])
    assert weak not in digest
    assert digest != kube.checksum(weak)
    assert digest == kube.secret_values_digest([weak])
    assert digest != kube.secret_values_digest(["password1235"])


def test_a_secret_digest_on_a_template_is_no_pulumi_secret(base: render.Rendering) -> None:
    """Readable in a preview's diff: the annotation carries no secret marker."""
    template = base.find("StatefulSet", "redis").inputs["spec"]["template"]
    annotation = template["metadata"]["annotations"][kube.SECRET_DIGEST_ANNOTATION]
    assert not render.is_secret(annotation)
    assert annotation == kube.secret_values_digest([SECRETS["redisPassword"]])
