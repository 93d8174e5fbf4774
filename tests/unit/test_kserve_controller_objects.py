"""What scripts/kserve-controller.sh installs beside the controller it runs on the local
control plane (scripts/lib/kserve_objects.py), derived from the pinned release's manifests:
its config for Standard mode with the pinned images, and its webhooks called on loopback."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from infra import versions
from tests.support.kserve import module_dir

ROOT = Path(__file__).resolve().parents[2]
CA = b"-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n"


def objects() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kserve_objects", ROOT / "scripts" / "lib" / "kserve_objects.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upstream(name: str) -> list[dict[str, Any]]:
    """A release manifest as `kubectl create --dry-run -o json` prints it: one JSON document
    per object, read back by the script's own reader."""
    docs = [d for d in yaml.safe_load_all((module_dir() / "config" / name).read_text()) if d]
    printed = "\n".join(json.dumps(d, indent=4) for d in docs)
    read: list[dict[str, Any]] = objects().read_objects(printed)
    assert read == docs
    return read


def test_the_config_is_standard_mode_with_the_pinned_images_and_no_ingress() -> None:
    config = objects().inferenceservice_config(
        upstream("configmap/inferenceservice.yaml"), "kserve"
    )
    assert config["metadata"] == {"name": "inferenceservice-config", "namespace": "kserve"}
    data = {k: json.loads(v) for k, v in config["data"].items()}
    assert "_example" not in data
    assert data["deploy"]["defaultDeploymentMode"] == "Standard"
    assert data["ingress"]["disableIngressCreation"] is True
    assert data["storageInitializer"]["image"] == versions.KSERVE_STORAGE_INITIALIZER_IMAGE
    for key in ("logger", "agent", "batcher"):
        assert data[key]["image"] == versions.KSERVE_AGENT_IMAGE, key
    assert data["router"]["image"] == versions.KSERVE_ROUTER_IMAGE
    # The credentials section is the release's: S3 keys are read from the named Secret keys.
    assert data["credentials"]["s3"]["s3AccessKeyIDName"] == "AWS_ACCESS_KEY_ID"
    every_image = [v["image"] for v in data.values() if isinstance(v, dict) and "image" in v]
    assert all(not image.endswith(":latest") for image in every_image), every_image


def test_every_webhook_calls_the_local_controller_with_the_generated_ca() -> None:
    release = upstream("webhook/manifests.yaml")
    rendered = objects().webhook_configurations(release, "https://127.0.0.1:9443", CA)
    upstream_hooks = {h["name"]: h for c in release for h in c.get("webhooks", [])}
    hooks = {h["name"]: h for c in rendered["items"] for h in c["webhooks"]}
    assert set(hooks) == set(upstream_hooks)
    for name, hook in hooks.items():
        path = upstream_hooks[name]["clientConfig"]["service"]["path"]
        assert hook["clientConfig"] == {
            "url": f"https://127.0.0.1:9443{path}",
            "caBundle": base64.b64encode(CA).decode(),
        }
        # Everything else (rules, selectors, failure policy) is the release's.
        assert {k: v for k, v in hook.items() if k != "clientConfig"} == {
            k: v for k, v in upstream_hooks[name].items() if k != "clientConfig"
        }
    pods = hooks["inferenceservice.kserve-webhook-server.pod-mutator"]
    assert pods["rules"][0]["resources"] == ["pods"]
    assert pods["objectSelector"]["matchExpressions"][0]["key"] == (
        "serving.kserve.io/inferenceservice"
    )
