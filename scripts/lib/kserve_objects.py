"""The objects scripts/kserve-controller.sh applies beside the KServe controller it runs as a
local process: its `inferenceservice-config` for Standard mode and its admission webhooks, both
derived from the pinned release's own manifests (as `kubectl create --dry-run -o json` prints
them: one JSON document per object). Standard library only: the script runs it with any python3.

    kserve_objects.py config UPSTREAM_JSON NAMESPACE    the ConfigMap, as JSON
    kserve_objects.py webhooks UPSTREAM_JSON URL CA     the webhook configurations, as a List

The images come from infra/versions.py (the release's tag); ingress creation is off (Standard
mode with no ingress controller) and so is everything the ConfigMap's `_example` documents.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

# A script has the repository root on its path only when put there.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from infra import versions

# Each key of the ConfigMap that names an image, and the pin it gets.
IMAGES = {
    "storageInitializer": versions.KSERVE_STORAGE_INITIALIZER_IMAGE,
    "logger": versions.KSERVE_AGENT_IMAGE,
    "batcher": versions.KSERVE_AGENT_IMAGE,
    "agent": versions.KSERVE_AGENT_IMAGE,
    "router": versions.KSERVE_ROUTER_IMAGE,
}


def read_objects(text: str) -> list[dict[str, Any]]:
    """The objects of `kubectl create -o json` output: one JSON document per object, or a List."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        document, at = decoder.raw_decode(text, at)
        found += document["items"] if document.get("kind") == "List" else [document]
    return found


def inferenceservice_config(upstream: list[dict[str, Any]], namespace: str) -> dict[str, Any]:
    """The release's `inferenceservice-config`, pinned images, Standard mode, no ingress."""
    (config_map,) = [o for o in upstream if o["kind"] == "ConfigMap"]
    data = {k: json.loads(v) for k, v in config_map["data"].items() if not k.startswith("_")}
    for key, image in IMAGES.items():
        data[key]["image"] = image
    data["localModel"]["defaultJobImage"] = versions.KSERVE_STORAGE_INITIALIZER_IMAGE
    data["deploy"]["defaultDeploymentMode"] = "Standard"
    data["ingress"]["disableIngressCreation"] = True
    data["ingress"]["disableIstioVirtualHost"] = True
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map["metadata"]["name"], "namespace": namespace},
        "data": {k: json.dumps(v, indent=2) for k, v in data.items()},
    }


def webhook_configurations(
    upstream: list[dict[str, Any]], url: str, ca_pem: bytes
) -> dict[str, Any]:
    """The release's webhook configurations, each calling `url` + its path with `ca_pem` as the
    trusted CA: the controller runs outside the cluster, so no Service fronts it."""
    ca_bundle = base64.b64encode(ca_pem).decode()
    out = []
    for configuration in upstream:
        if not configuration["kind"].endswith("WebhookConfiguration"):
            continue
        hooks = []
        for hook in configuration["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hooks.append(
                {**hook, "clientConfig": {"url": url.rstrip("/") + path, "caBundle": ca_bundle}}
            )
        metadata = {"name": configuration["metadata"]["name"]}
        out.append({**configuration, "metadata": metadata, "webhooks": hooks})
    if not out:
        raise SystemExit("kserve_objects: the upstream manifests hold no webhook configuration")
    return {"apiVersion": "v1", "kind": "List", "items": out}


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "config":
        upstream = read_objects(Path(argv[1]).read_text())
        print(json.dumps(inferenceservice_config(upstream, argv[2])))
    elif len(argv) == 4 and argv[0] == "webhooks":
        upstream = read_objects(Path(argv[1]).read_text())
        print(json.dumps(webhook_configurations(upstream, argv[2], Path(argv[3]).read_bytes())))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
