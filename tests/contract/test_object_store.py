"""The rendered SeaweedFS server and bucket Job, run for real with the pinned weed binary.

The server's args and S3 identities come from the offline render; only the pod IP, the data
directory, the config path and the ports (to stay clear of other local servers) change.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.components import object_store
from mlops import render
from tests.support.rendering import SENTINELS, evaluate, pod_container, secret_data
from tests.support.servers import free_port, local_s3, run_script_job, running_server
from tests.support.tools import require_module

boto3 = require_module("boto3", "the workloads dependency group")
botocore_exceptions = require_module("botocore.exceptions", "the workloads dependency group")


@dataclass(frozen=True)
class Server:
    rendering: render.Rendering
    s3: str
    master: str
    metrics: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    weed = local_s3().weed
    rendering = evaluate({})
    work = tmp_path_factory.mktemp("seaweedfs")
    (work / "s3.json").write_text(secret_data(rendering, "seaweedfs-s3-config")["s3.json"])
    # gRPC ports are HTTP ports + 10000: draw HTTP ports whose twins are free too.
    ports: dict[str, int] = {}
    while len(ports) < 5:
        port = free_port()
        if port < 55000 and port not in ports.values():
            ports[f"p{len(ports)}"] = port
    s3, master, volume, filer, metrics = ports.values()
    container = pod_container(rendering, "StatefulSet", "seaweedfs")
    local = {
        "-ip=$(POD_IP)": "-ip=127.0.0.1",
        "-ip.bind=0.0.0.0": "-ip.bind=127.0.0.1",
        "-dir=/data": f"-dir={work}",
        f"-s3.port={object_store.S3_PORT}": f"-s3.port={s3}",
        "-s3.config=/etc/seaweedfs/s3.json": f"-s3.config={work / 's3.json'}",
        f"-metricsPort={object_store.METRICS_PORT}": f"-metricsPort={metrics}",
    }
    args = [local.get(a, a) for a in container["args"]]
    args += [f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}"]
    with running_server([str(weed), *args], f"http://127.0.0.1:{s3}/healthz", work):
        yield Server(
            rendering,
            f"http://127.0.0.1:{s3}",
            f"127.0.0.1:{master}",
            f"http://127.0.0.1:{metrics}",
        )


def test_bucket_job_creates_every_bucket_once(server: Server, tmp_path: Path) -> None:
    weed_dir = str(local_s3().weed.parent)
    first = run_script_job(
        server.rendering, "seaweedfs-buckets", tmp_path, {}, weed_dir, MASTER=server.master
    )
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_script_job(
        server.rendering, "seaweedfs-buckets", tmp_path, {}, weed_dir, MASTER=server.master
    )
    assert second.returncode == 0, second.stdout + second.stderr
    for bucket in ("feast", "flyte", "mlflow", "models"):
        assert f"bucket {bucket} created" in first.stdout
        assert f"bucket {bucket} exists" in second.stdout
    assert "created" not in second.stdout


def test_stack_credentials_read_and_write_and_others_are_refused(server: Server) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=server.s3,
        region_name="us-east-1",
        aws_access_key_id=SENTINELS["objectStoreAccessKey"],
        aws_secret_access_key=SENTINELS["objectStoreSecretKey"],
    )
    client.create_bucket(Bucket="contract")
    client.put_object(Bucket="contract", Key="a/b.txt", Body=b"payload")
    assert client.get_object(Bucket="contract", Key="a/b.txt")["Body"].read() == b"payload"
    stranger = boto3.client(
        "s3",
        endpoint_url=server.s3,
        region_name="us-east-1",
        aws_access_key_id="not-a-key",
        aws_secret_access_key="not-a-secret",
    )
    with pytest.raises(botocore_exceptions.ClientError) as refused:
        stranger.get_object(Bucket="contract", Key="a/b.txt")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_metrics_port_serves_prometheus_text(server: Server) -> None:
    with urllib.request.urlopen(f"{server.metrics}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert "# TYPE" in body and "SeaweedFS" in body
