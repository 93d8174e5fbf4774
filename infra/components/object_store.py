"""S3-compatible object storage: SeaweedFS in the cluster, or an existing external S3 service.

The in-cluster server is one `weed server` (master, volume, filer and the S3 gateway) on a
volume; a Job creates the platform's buckets, only those missing, on every deploy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from infra import kube, network, sizes, versions
from infra.config import ObjectStoreConfig
from infra.configtypes import reveal
from infra.observability import ScrapeTarget, Telemetry, Workload, statefulset_pods

COMPONENT = "seaweedfs"
SECRET_NAME = "object-store"
S3_PORT = 8333
MASTER_PORT = 9333
FILER_PORT = 8888
VOLUME_PORT = 8080
METRICS_PORT = 9327
# Each HTTP port has its gRPC twin at +10000.
GRPC_OFFSET = 10000
SERVER_PORTS = {
    "s3": S3_PORT,
    "master": MASTER_PORT,
    "master-grpc": MASTER_PORT + GRPC_OFFSET,
    "filer": FILER_PORT,
    "filer-grpc": FILER_PORT + GRPC_OFFSET,
    "volume": VOLUME_PORT,
    "volume-grpc": VOLUME_PORT + GRPC_OFFSET,
    "metrics": METRICS_PORT,
}
# The ports the server's parts and the bucket Job use among themselves.
INTERNAL_PORTS = ("master", "master-grpc", "filer", "filer-grpc", "volume", "volume-grpc")
JOB_SIZE = sizes.Resources.of("10m", "64Mi", "500m", "256Mi")
REGION = "us-east-1"

BUCKETS_SCRIPT = r"""#!/bin/sh
set -eu
# weed shell may hang on an unreachable master (timeout), and reports a failed command on its
# output ("error: ...", "cannot connect", "no filer") with an exit code that varies by version.
run() { echo "$1" | timeout 60 weed shell -master="$MASTER" 2>&1; }
failed() { case "$1" in *"error:"*|*"cannot connect"*|*"no filer"*) return 0 ;; esac; return 1; }
listing() {
  # Explicit: errexit is off inside `until` conditions.
  out="$(run "s3.bucket.list")" || return 1
  if failed "$out"; then return 1; fi
  printf '%s\n' "$out"
}
has() { printf '%s\n' "$1" | grep -Eq "^[[:space:]]*$2([[:space:]]|\$)"; }
until existing="$(listing)"; do
  echo "waiting for the seaweedfs master and filer at ${MASTER}"
  sleep 2
done
for bucket in $BUCKETS; do
  if has "$existing" "$bucket"; then
    echo "bucket ${bucket} exists"
  else
    if ! out="$(run "s3.bucket.create -name ${bucket}")" || failed "$out"; then
      echo "$out"
      echo "bucket ${bucket} create failed"
      exit 1
    fi
    echo "bucket ${bucket} created"
  fi
done
existing="$(listing)" || { echo "cannot list buckets after create"; exit 1; }
for bucket in $BUCKETS; do
  has "$existing" "$bucket" || { echo "bucket ${bucket} missing after create"; exit 1; }
done
"""


@dataclass(frozen=True)
class S3Endpoint:
    """What a consumer needs to use the object store: the endpoint this component exports."""

    # The S3 API's URL (http://... in the cluster, the service's URL when external).
    url: str
    region: str
    # Bucket name for each platform use: mlflow, flyte, feast, models.
    buckets: Mapping[str, str]
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]
    # Kubernetes Secret with keys access-key-id, secret-access-key, endpoint and region.
    secret_name: str
    # Where consumers connect: the S3 gateway's pods, or the external service.
    address: network.Address


@dataclass(frozen=True)
class ObjectStoreArgs:
    config: ObjectStoreConfig
    namespace: str
    # The data volume of the in-cluster server (unused with `external`).
    storage: kube.Storage


def identities(access_key: str, secret_key: str) -> str:
    """SeaweedFS S3 identity config: one identity with full rights on every bucket."""
    return json.dumps(
        {
            "identities": [
                {
                    "name": "platform",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        },
        indent=2,
    )


class ObjectStore(pulumi.ComponentResource):
    endpoint: S3Endpoint
    telemetry: Telemetry
    network: network.Network
    # The stack outputs, under the key "objectStore".
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:ObjectStore", name, None, opts)
        cfg, ns = args.config, args.namespace
        external = cfg.external
        host = kube.service_host(COMPONENT, ns)
        pods = network.component_pods(COMPONENT, ns, kube.selector(COMPONENT))
        listener = network.Listener(pods, SERVER_PORTS, (host,))
        # The server's master, volume and filer find each other at the pod's own address, and
        # the bucket Job's `weed shell` reaches the master and the filer it names.
        self.network = (
            network.Network(COMPONENT)
            if external
            else network.Network(
                COMPONENT,
                pods=(pods,),
                listeners=(listener,),
                edges=tuple(network.Edge(pods, listener.at(port)) for port in INTERNAL_PORTS),
            )
        )
        self.endpoint = S3Endpoint(
            url=external.endpoint if external else f"http://{host}:{S3_PORT}",
            region=external.region if external else REGION,
            buckets=dict(cfg.buckets),
            access_key=reveal(cfg.access_key),
            secret_key=reveal(cfg.secret_key),
            secret_name=SECRET_NAME,
            address=network.url_address(external.endpoint) if external else listener.at("s3"),
        )
        endpoint = self.endpoint
        credentials = kube.secret(
            SECRET_NAME,
            ns,
            COMPONENT,
            "storage",
            {
                "access-key-id": endpoint.access_key,
                "secret-access-key": endpoint.secret_key,
                "endpoint": endpoint.url,
                "region": endpoint.region,
            },
            self,
        )
        self.telemetry = Telemetry(COMPONENT)
        if external is None:
            server = self._server(args)
            self._bucket_job(args, [credentials, *server])
            self.telemetry = Telemetry(
                COMPONENT,
                targets=(ScrapeTarget(COMPONENT, f"{host}:{METRICS_PORT}"),),
                rules=("platform.yaml", "storage.yaml"),
                workloads=(Workload.of(COMPONENT, statefulset_pods(COMPONENT), cfg.resources),),
            )
        self.outputs = {
            "objectStore": {
                "endpoint": endpoint.url,
                "region": endpoint.region,
                "buckets": dict(endpoint.buckets),
                "secret": SECRET_NAME,
                "accessKey": endpoint.access_key,
                "secretKey": endpoint.secret_key,
            }
        }
        self.register_outputs(self.outputs)

    def _server(self, args: ObjectStoreArgs) -> list[pulumi.Resource]:
        cfg, ns = args.config, args.namespace
        s3_config = kube.secret(
            "seaweedfs-s3-config",
            ns,
            COMPONENT,
            "storage",
            {
                "s3.json": pulumi.Output.all(
                    self.endpoint.access_key, self.endpoint.secret_key
                ).apply(lambda keys: identities(keys[0], keys[1]))
            },
            self,
        )
        ports = SERVER_PORTS
        server = kube.container(
            COMPONENT,
            versions.SEAWEEDFS_IMAGE,
            cfg.resources,
            ports=ports,
            probes=kube.Probes.server(kube.http_check("/healthz", "s3")),
            command=["/usr/bin/weed"],
            args=[
                "-logtostderr=true",
                "server",
                "-ip=$(POD_IP)",
                "-ip.bind=0.0.0.0",
                "-dir=/data",
                "-volume.max=0",
                "-master.volumeSizeLimitMB=1024",
                # No usage reports leave the cluster.
                "-master.telemetry=false",
                "-s3",
                f"-s3.port={S3_PORT}",
                "-s3.config=/etc/seaweedfs/s3.json",
                # Only the S3 API: no Iceberg or Lance catalog listeners.
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-metricsPort={METRICS_PORT}",
            ],
            # The embedded filer store is created in the working directory: keep it on the volume.
            workingDir="/data",
            env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            volumeMounts=[
                {"name": "data", "mountPath": "/data"},
                {"name": "s3-config", "mountPath": "/etc/seaweedfs", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        )
        service = kube.service(COMPONENT, ns, COMPONENT, "storage", ports, self)
        statefulset = kube.stateful_set(
            COMPONENT,
            ns,
            "storage",
            pod=kube.pod_spec(
                versions.SEAWEEDFS_UID,
                [server],
                volumes=[
                    {"name": "s3-config", "secret": {"secretName": "seaweedfs-s3-config"}},
                    kube.empty_dir("tmp", "1Gi"),
                ],
            ),
            size=cfg.storage_size,
            storage=args.storage,
            needs=[s3_config],
            parent=self,
            secret_digest=kube.secret_digest(self.endpoint.access_key, self.endpoint.secret_key),
        )
        return [service, statefulset]

    def _bucket_job(self, args: ObjectStoreArgs, needs: list[pulumi.Resource]) -> None:
        master = f"{kube.service_host(COMPONENT, args.namespace)}:{MASTER_PORT}"
        kube.script_job(
            "seaweedfs-buckets",
            args.namespace,
            COMPONENT,
            image=versions.SEAWEEDFS_IMAGE,
            uid=versions.SEAWEEDFS_UID,
            size=JOB_SIZE,
            script=BUCKETS_SCRIPT,
            env=[
                {"name": "MASTER", "value": master},
                {"name": "BUCKETS", "value": " ".join(sorted(set(self.endpoint.buckets.values())))},
            ],
            needs=needs,
            parent=self,
        )
