"""KServe on loopback: its v0.20 CRD schemas, its storage initializer's download, and the
predictor and transformer commands of a rendered runtime and InferenceService.

The CRDs come from the kserve Go module of the pinned version (infra/versions.py), which the
Go module proxy serves: `go mod download` caches it once; nothing is copied into this
repository.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from infra import versions
from infra.components import kserve as kserve_component
from mlops import render
from tests.support.rendering import secret_data
from tests.support.servers import LocalS3

ROOT = Path(__file__).resolve().parents[2]
MODULE = "github.com/kserve/kserve"
CRD_FILES = {
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
}


@cache
def module_dir() -> Path:
    """The kserve module of the pinned version, downloaded through the Go module proxy."""
    found = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{versions.KSERVE_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    if found.returncode != 0:
        message = f"cannot download {MODULE}@{versions.KSERVE_VERSION}: {found.stderr[-500:]}"
        if os.environ.get("MLOPS_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return Path(json.loads(found.stdout)["Dir"])


def _strict(schema: Any) -> Any:
    """A structural schema as the API server applies it: a field it does not declare is
    refused (the server would prune it silently), unless the schema keeps unknown fields."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


@cache
def crd_schema(kind: str, version: str) -> dict[str, Any]:
    path = module_dir() / "config" / "crd" / "full" / CRD_FILES[kind]
    crd = yaml.safe_load(path.read_text())
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            return _strict(served["schema"]["openAPIV3Schema"])  # type: ignore[no-any-return]
    raise KeyError(f"{kind} has no version {version} in KServe {versions.KSERVE_VERSION}")


def validate(manifest: dict[str, Any]) -> None:
    """Raises jsonschema.ValidationError where the object breaks its KServe CRD schema."""
    version = manifest["apiVersion"].split("/")[1]
    body = {k: v for k, v in manifest.items() if k != "metadata"}
    jsonschema.validate(body, crd_schema(manifest["kind"], version))


def fetch_like_storage_initializer(
    rendering: render.Rendering, storage_uri: str, s3: LocalS3, out: Path
) -> list[Path]:
    """What KServe's storage initializer does for an `s3://` URI (kserve_storage, S3): with the
    credentials and endpoint of the Secret the model ServiceAccount carries, every object
    under the URI's prefix lands in `out` at its path relative to the prefix."""
    import boto3

    secret = rendering.find("Secret", kserve_component.STORAGE_SECRET).manifest()
    annotations = secret["metadata"]["annotations"]
    data = secret_data(rendering, kserve_component.STORAGE_SECRET)
    scheme = "https" if annotations["serving.kserve.io/s3-usehttps"] == "1" else "http"
    endpoint = f"{scheme}://{annotations['serving.kserve.io/s3-endpoint']}"
    assert endpoint.startswith("http://seaweedfs."), endpoint
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name=annotations["serving.kserve.io/s3-region"],
        aws_access_key_id=data["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=data["AWS_SECRET_ACCESS_KEY"],
    )
    bucket, _, prefix = storage_uri.removeprefix("s3://").partition("/")
    written = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"].removeprefix(prefix).lstrip("/")
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, item["Key"], str(target))
            written.append(target)
    return written


def _substitute(value: str, name: str) -> str:
    return value.replace("{{.Name}}", name)


def predictor_command(
    runtime: dict[str, Any],
    isvc: dict[str, Any],
    model_dir: Path,
    ports: dict[str, int],
    bin_dir: Path,
    code: Path = ROOT,
) -> tuple[list[str], dict[str, str]]:
    """The runtime container's command and env merged with the InferenceService's model env
    (the model's wins, as KServe merges them), the model mounted at `model_dir`; the runtime's
    module importable from `code`, as the serving image's PYTHONPATH makes it."""
    name = isvc["metadata"]["name"]
    container = runtime["spec"]["containers"][0]
    env = {e["name"]: _substitute(e["value"], name) for e in container["env"]}
    env.update({e["name"]: e["value"] for e in isvc["spec"]["predictor"]["model"].get("env", [])})
    for key, port in (
        ("MLSERVER_HTTP_PORT", ports["http"]),
        ("MLSERVER_GRPC_PORT", ports["grpc"]),
        ("MLSERVER_METRICS_PORT", ports["metrics"]),
    ):
        env[key] = str(port)
    env["MLSERVER_MODEL_URI"] = str(model_dir)
    env["MLSERVER_HOST"] = "127.0.0.1"
    env["PYTHONPATH"] = str(code)
    command = [str(model_dir) if a == "/mnt/models" else a for a in container["command"]]
    command[0] = str(bin_dir / command[0])
    return command, env


def transformer_command(
    isvc: dict[str, Any], predictor: str, port: int, python: Path
) -> tuple[list[str], dict[str, str]]:
    """The transformer container's command, args and literal env, with the args KServe adds
    (model name, predictor host, HTTP port)."""
    container = isvc["spec"]["transformer"]["containers"][0]
    command = [str(python) if a == "python" else a for a in container["command"]]
    args = [
        *container["args"],
        f"--model_name={isvc['metadata']['name']}",
        f"--predictor_host={predictor}",
        f"--http_port={port}",
        "--enable_grpc=false",
    ]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return [*command, *args], env
