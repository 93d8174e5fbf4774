"""Object storage: SeaweedFS with S3, credentials only in Secrets, idempotent buckets."""

from __future__ import annotations

import json

from infra import config, versions
from infra.components import object_store
from tests.support.rendering import SENTINELS, component_objects, env_of, evaluate, secret_data

EXTERNAL = {
    "objectStore": {
        "external": {"endpoint": "https://s3.example.com", "region": "eu-west-1"},
        "buckets": {"mlflow": "acme-mlflow"},
    }
}


def test_s3_identities_are_a_secret_holding_the_stack_credentials() -> None:
    rendering = evaluate({})
    identities = json.loads(secret_data(rendering, "seaweedfs-s3-config")["s3.json"])
    assert identities["identities"][0]["credentials"] == [
        {
            "accessKey": SENTINELS["objectStoreAccessKey"],
            "secretKey": SENTINELS["objectStoreSecretKey"],
        }
    ]
    server = rendering.find("StatefulSet", "seaweedfs").manifest()["spec"]["template"]["spec"]
    container = server["containers"][0]
    assert container["image"] == versions.SEAWEEDFS_IMAGE
    assert "-s3.config=/etc/seaweedfs/s3.json" in container["args"]
    assert {"name": "s3-config", "secret": {"secretName": "seaweedfs-s3-config"}} in server[
        "volumes"
    ]


def test_consumer_secret_carries_endpoint_and_credentials() -> None:
    assert secret_data(evaluate({}), "object-store") == {
        "access-key-id": SENTINELS["objectStoreAccessKey"],
        "secret-access-key": SENTINELS["objectStoreSecretKey"],
        "endpoint": "http://seaweedfs.mlops.svc.cluster.local:8333",
        "region": "us-east-1",
    }


def test_bucket_job_creates_the_configured_buckets_after_the_server() -> None:
    rendering = evaluate({"objectStore": {"buckets": {"models": "serving-models"}}})
    job = rendering.find("Job", "seaweedfs-buckets")
    env = env_of(job.manifest()["spec"]["template"]["spec"]["containers"][0])
    assert env["BUCKETS"] == "backups feast flyte mlflow predictions serving-models"
    assert env["MASTER"] == f"seaweedfs.mlops.svc.cluster.local:{object_store.MASTER_PORT}"
    assert rendering.find("StatefulSet", "seaweedfs").urn in job.depends_on
    assert rendering.outputs["objectStore"]["buckets"]["models"] == "serving-models"


def test_bucket_script_creates_only_missing_buckets() -> None:
    script = object_store.BUCKETS_SCRIPT
    assert 'if has "$existing" "$bucket"' in script
    assert script.index("s3.bucket.list") < script.index("s3.bucket.create")


def test_service_exposes_grpc_ports_the_shell_needs() -> None:
    service = evaluate({}).find("Service", "seaweedfs").manifest()
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports["s3"] == 8333 and ports["master-grpc"] == 19333 and ports["filer-grpc"] == 18888


def test_external_object_store_creates_no_server() -> None:
    rendering = evaluate(EXTERNAL)
    assert [o["kind"] for o in component_objects(rendering, "seaweedfs")] == ["Secret"]
    out = rendering.outputs["objectStore"]
    assert (out["endpoint"], out["region"]) == ("https://s3.example.com", "eu-west-1")
    assert out["buckets"] == {
        "mlflow": "acme-mlflow",
        "flyte": "flyte",
        "feast": "feast",
        "models": "models",
        "predictions": "predictions",
        "backups": "backups",
    }
    assert out["accessKey"] == out["secretKey"] == "[redacted]"


def test_disabled_object_store_leaves_no_object() -> None:
    secrets = {
        k: v for k, v in SENTINELS.items() if config.SECRET_KEYS[k] not in ("objectStore", "mlflow")
    }
    rendering = evaluate(
        {
            "objectStore": {"enabled": False},
            "mlflow": {"enabled": False},
            "flyte": {"enabled": False},
            "kserve": {"enabled": False},
            "backups": {"enabled": False},
        },
        secrets,
    )
    assert component_objects(rendering, "seaweedfs") == []
    assert "objectStore" not in rendering.outputs


def test_server_reports_no_telemetry_and_opens_only_the_s3_api() -> None:
    container = (
        evaluate({})
        .find("StatefulSet", "seaweedfs")
        .manifest()["spec"]["template"]["spec"]["containers"][0]
    )
    assert {"-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0"} <= set(
        container["args"]
    )
