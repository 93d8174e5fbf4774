"""Shared Kubernetes shapes: labels, the restricted pod security profile, probes and sizes.

Every component builds its pods from these, so the invariants the tests check (requests,
limits, probes, security context) are written once.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.config import CLUSTER_ISSUER_ANNOTATION, ISSUER_ANNOTATION, IngressConfig
from infra.sizes import Resources

PART_OF = "mlops-platform"
MANAGED_BY = "pulumi"
# Pod Security Standard every platform namespace enforces.
POD_SECURITY_LEVEL = "restricted"

Spec = dict[str, Any]


# A shell-and-client container that waits or runs one short script.
SMALL_JOB = Resources.of("10m", "32Mi", "200m", "128Mi")
# A metrics exporter beside a server.
SIDECAR = Resources.of("10m", "32Mi", "200m", "64Mi")


def selector(component: str) -> dict[str, str]:
    """The labels a Service or controller selects a component's pods by."""
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": PART_OF}


def labels(component: str, part: str) -> dict[str, str]:
    """The recommended `app.kubernetes.io/*` labels of every object."""
    return {
        **selector(component),
        "app.kubernetes.io/component": part,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def metadata(name: str, namespace: str, component: str, part: str, **extra: Any) -> Spec:
    return {"name": name, "namespace": namespace, "labels": labels(component, part), **extra}


def namespace_labels(enforce: str = POD_SECURITY_LEVEL) -> dict[str, str]:
    """A platform namespace's labels: it enforces a Pod Security Standard (restricted unless
    told otherwise) and warns and audits against restricted."""
    return {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": POD_SECURITY_LEVEL,
        "pod-security.kubernetes.io/audit": POD_SECURITY_LEVEL,
    }


def namespace(
    name: str, opts: pulumi.ResourceOptions, enforce: str = POD_SECURITY_LEVEL
) -> k8s.core.v1.Namespace:
    """A namespace labelled by `namespace_labels`."""
    return k8s.core.v1.Namespace(
        name, metadata={"name": name, "labels": namespace_labels(enforce)}, opts=opts
    )


def pod_security_context(uid: int) -> Spec:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(read_only_root: bool = True) -> Spec:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(size: Resources) -> Spec:
    return size.model_dump()


def http_check(path: str, port: str) -> Spec:
    return {"httpGet": {"path": path, "port": port}}


def exec_check(command: list[str]) -> Spec:
    return {"exec": {"command": command}, "initialDelaySeconds": 0}


def probe(check: Spec, period: int = 10, failures: int = 3) -> Spec:
    return {**check, "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": failures}


@dataclass(frozen=True)
class Probes:
    """When the kubelet sends a container traffic, restarts it, and how long it waits first."""

    readiness: Spec
    liveness: Spec
    startup: Spec | None = None

    @staticmethod
    def server(ready: Spec, live: Spec | None = None, start_failures: int = 60) -> Probes:
        """Ready every 10 s; alive (the same check unless told) every 20 s with six chances;
        a startup probe every 5 s that gives a slow start `start_failures` chances."""
        return Probes(
            readiness=probe(ready),
            liveness=probe(live or ready, period=20, failures=6),
            startup=probe(ready, period=5, failures=start_failures),
        )

    @staticmethod
    def sidecar(check: Spec) -> Probes:
        """An exporter beside a server: the same check for traffic and restarts."""
        return Probes(readiness=probe(check), liveness=probe(check))


def service_host(name: str, namespace: str) -> str:
    """A Service's in-cluster DNS name."""
    return f"{name}.{namespace}.svc.cluster.local"


def container(
    name: str,
    image: str,
    size: Resources,
    *,
    ports: dict[str, int],
    probes: Probes,
    read_only_root: bool = True,
    **fields: Any,
) -> Spec:
    """A container with resources, probes and the restricted security context always set."""
    spec: Spec = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": port, "containerPort": number} for port, number in ports.items()],
        "resources": resources(size),
        "securityContext": container_security_context(read_only_root),
        "readinessProbe": probes.readiness,
        "livenessProbe": probes.liveness,
        **fields,
    }
    if probes.startup is not None:
        spec["startupProbe"] = probes.startup
    return spec


def exporter(image: str, port: int, health_path: str, env: list[Spec]) -> Spec:
    """A metrics exporter beside a server, on its `metrics` port, with the sidecar size."""
    return container(
        "exporter",
        image,
        SIDECAR,
        ports={"metrics": port},
        probes=Probes.sidecar(http_check(health_path, "metrics")),
        env=env,
    )


def job_container(name: str, image: str, size: Resources, **fields: Any) -> Spec:
    """A run-to-completion container: probes do not apply, the rest of the contract does."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": resources(size),
        "securityContext": container_security_context(),
        **fields,
    }


def checksum(*texts: str) -> str:
    """A digest of config a pod reads at start: put on its template, a change rolls the pods."""
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()


# The pod template annotations that roll a workload (or re-run a Job) when what it reads at
# start changes: its config files, and the secret values it reads.
CONFIG_DIGEST_ANNOTATION = "checksum/config"
SECRET_DIGEST_ANNOTATION = "checksum/secrets"
# scrypt's cost: ~60 ms a value here, so guessing a weak password back from the annotation costs
# as much per guess; under a second for a stack's dozen secret values.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32, "maxmem": 64 * 1024 * 1024}
_SCRYPT_SALT = b"mlops-platform/checksum/secrets"


@functools.lru_cache(maxsize=256)
def _stretched(value: str) -> bytes:
    return hashlib.scrypt(value.encode(), salt=_SCRYPT_SALT, **_SCRYPT)


def secret_values_digest(values: Sequence[str]) -> str:
    """The digest of plain secret values, in order (see `secret_digest`)."""
    return hashlib.sha256(b"".join(_stretched(value) for value in values)).hexdigest()


def secret_digest(*values: pulumi.Input[str]) -> pulumi.Output[str]:
    """A digest of the secret values a pod reads at start: on its template, a rotated secret
    rolls the pods (or re-runs the Job). Anyone who may read the pod sees the annotation, so
    each value goes through scrypt (a plain sha256 of a weak password is guessed back in
    seconds); the digest itself is then no secret and shows in a preview's diff."""
    digest = pulumi.Output.all(*values).apply(
        lambda plain: secret_values_digest([str(value) for value in plain])
    )
    return pulumi.Output.unsecret(digest)


def secret_env(name: str, secret: str, key: str) -> Spec:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


# Where client libraries (client-go, the Python client, Prometheus) look for the in-cluster
# credentials.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_TOKEN_VOLUME = "kube-api-access"
API_TOKEN_SECONDS = 3600


def api_token_volume() -> Spec:
    """The ServiceAccount token of a pod whose account holds a role, mounted explicitly since
    automount is off everywhere: an expiring token, the cluster's CA and the namespace, laid
    out as automount would lay them out."""
    return {
        "name": API_TOKEN_VOLUME,
        "projected": {
            "sources": [
                # No audience: in-cluster clients present it to the API server, whose default
                # audience is the cluster's own (it differs between distributions).
                {"serviceAccountToken": {"path": "token", "expirationSeconds": API_TOKEN_SECONDS}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ]
        },
    }


def api_token_mount() -> Spec:
    return {"name": API_TOKEN_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}


def pod_spec(uid: int, containers: list[Spec], **fields: Any) -> Spec:
    return {
        "securityContext": pod_security_context(uid),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": containers,
        **fields,
    }


def volume_claim(name: str, size: str, storage_class: str | None) -> Spec:
    spec: Spec = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


def claim_retention(data_protection: bool) -> Spec:
    """Protected data keeps its volumes when the StatefulSet goes; unprotected data does not."""
    policy = "Retain" if data_protection else "Delete"
    return {"whenDeleted": policy, "whenScaled": "Retain"}


def empty_dir(name: str, limit: str = "64Mi") -> Spec:
    return {"name": name, "emptyDir": {"sizeLimit": limit}}


def secret(
    name: str, namespace: str, component: str, part: str, data: Spec, parent: pulumi.Resource
) -> k8s.core.v1.Secret:
    """An Opaque Secret; its values stay Pulumi secrets end to end."""
    return k8s.core.v1.Secret(
        name,
        metadata=metadata(name, namespace, component, part),
        type="Opaque",
        string_data=data,
        opts=pulumi.ResourceOptions(parent=parent),
    )


# The registry login Secret in every namespace that runs a project image.
IMAGE_PULL_SECRET = "mlops-image-pull"


@dataclass(frozen=True)
class ImagePull:
    """The login of the private registry the project images come from; each component that
    runs them creates IMAGE_PULL_SECRET from it in its own namespace."""

    registry: str
    username: str
    password: pulumi.Output[str]

    def docker_config(self) -> pulumi.Output[str]:
        """The `.dockerconfigjson` value, as `kubectl create secret docker-registry` writes it;
        a Pulumi secret."""
        return pulumi.Output.secret(
            self.password.apply(lambda pw: docker_config_json(self.registry, self.username, pw))
        )


def docker_config_json(registry: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    login = {"username": username, "password": password, "auth": auth}
    return json.dumps({"auths": {registry: login}}, sort_keys=True)


def image_pull_secret(
    namespace: str, component: str, pull: ImagePull, opts: pulumi.ResourceOptions
) -> k8s.core.v1.Secret:
    """The registry login Secret (IMAGE_PULL_SECRET) of one namespace."""
    return k8s.core.v1.Secret(
        f"{component}-image-pull",
        metadata=metadata(IMAGE_PULL_SECRET, namespace, component, "image-pull"),
        type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": pull.docker_config()},
        opts=opts,
    )


def image_pull_fields(pull: ImagePull | None) -> Spec:
    """The `imagePullSecrets` of a pod spec or ServingRuntime that runs a project image; none
    without a registry login."""
    return {"imagePullSecrets": [{"name": IMAGE_PULL_SECRET}]} if pull is not None else {}


def job(
    name: str,
    namespace: str,
    component: str,
    part: str,
    *,
    uid: int,
    runner: Spec,
    volumes: list[Spec],
    needs: list[pulumi.Resource],
    parent: pulumi.Resource,
    secret_digest: pulumi.Output[str] | None = None,
    **pod_fields: Any,
) -> k8s.batch.v1.Job:
    """A run-to-completion Job that starts once `needs` exist.

    Jobs are immutable, so a changed Job is deleted and created again; each run must therefore
    be idempotent. A `secret_digest` on its template makes a rotated secret re-run it.
    """
    return k8s.batch.v1.Job(
        name,
        metadata=metadata(name, namespace, component, part),
        spec={
            "backoffLimit": 6,
            "activeDeadlineSeconds": 900,
            "template": _template(
                component,
                part,
                pod_spec(uid, [runner], restartPolicy="OnFailure", volumes=volumes, **pod_fields),
                None,
                secret_digest,
            ),
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=needs, delete_before_replace=True),
    )


def script_job(
    name: str,
    namespace: str,
    component: str,
    *,
    image: str,
    uid: int,
    size: Resources,
    script: str,
    env: list[Spec],
    needs: list[pulumi.Resource],
    parent: pulumi.Resource,
    secret_digest: pulumi.Output[str] | None = None,
) -> k8s.batch.v1.Job:
    """A Job that runs a shell script kept in its own ConfigMap."""
    script_map = k8s.core.v1.ConfigMap(
        name,
        metadata=metadata(name, namespace, component, "init"),
        data={"run.sh": script},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    runner = job_container(
        "run",
        image,
        size,
        command=["/bin/sh", "/scripts/run.sh"],
        env=[*env, {"name": "HOME", "value": "/tmp"}],
        volumeMounts=[
            {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    return job(
        name,
        namespace,
        component,
        "init",
        uid=uid,
        runner=runner,
        volumes=[{"name": "scripts", "configMap": {"name": name}}, empty_dir("tmp")],
        needs=[script_map, *needs],
        parent=parent,
        secret_digest=secret_digest,
    )


def cron_job(
    name: str,
    namespace: str,
    component: str,
    part: str,
    *,
    schedule: str,
    pod: Spec,
    starting_deadline: int,
    backoff: int,
    deadline: int,
    needs: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
    suspend: bool = False,
) -> k8s.batch.v1.CronJob:
    """A Job on a schedule (UTC) that never overlaps itself and keeps three finished Jobs of
    each outcome; a run missed by more than `starting_deadline` seconds is skipped, not queued."""
    template_labels = labels(component, part)
    return k8s.batch.v1.CronJob(
        name,
        metadata=metadata(name, namespace, component, part),
        spec={
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            "suspend": suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": starting_deadline,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": template_labels},
                "spec": {
                    "backoffLimit": backoff,
                    "activeDeadlineSeconds": deadline,
                    "template": {"metadata": {"labels": template_labels}, "spec": pod},
                },
            },
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(needs)),
    )


def service(
    name: str,
    namespace: str,
    component: str,
    part: str,
    ports: dict[str, int],
    parent: pulumi.Resource,
) -> k8s.core.v1.Service:
    """A Service in front of a component's pods; each port targets the container port of the
    same name."""
    return k8s.core.v1.Service(
        name,
        metadata=metadata(name, namespace, component, part),
        spec={
            "selector": selector(component),
            "ports": [
                {"name": port, "port": number, "targetPort": port} for port, number in ports.items()
            ],
        },
        opts=pulumi.ResourceOptions(parent=parent),
    )


def tls_secret(component: str) -> str:
    """The Secret cert-manager writes a component's ingress certificate into."""
    return f"{component}-tls"


def ingress(
    component: str,
    namespace: str,
    part: str,
    config: IngressConfig,
    service: str,
    port: int,
    parent: pulumi.Resource,
) -> k8s.networking.v1.Ingress:
    """An Ingress named after the component that routes every host to a Service port; with
    `config.tls`, cert-manager issues its certificate into `<component>-tls`."""
    annotations = dict(config.annotations)
    backend = {"service": {"name": service, "port": {"number": port}}}
    spec: Spec = {
        "rules": [
            {
                "host": host,
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
            }
            for host in config.hosts
        ]
    }
    if config.class_name is not None:
        spec["ingressClassName"] = config.class_name
    if config.tls is not None:
        if config.tls.cluster_issuer is not None:
            annotations[CLUSTER_ISSUER_ANNOTATION] = config.tls.cluster_issuer
        if config.tls.issuer is not None:
            annotations[ISSUER_ANNOTATION] = config.tls.issuer
        spec["tls"] = [{"hosts": list(config.hosts), "secretName": tls_secret(component)}]
    extra = {"annotations": annotations} if annotations else {}
    return k8s.networking.v1.Ingress(
        component,
        metadata=metadata(component, namespace, component, part, **extra),
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def cluster_access(
    component: str, namespace: str, part: str, rules: list[Spec], parent: pulumi.Resource
) -> list[pulumi.Resource]:
    """A component's ServiceAccount with a ClusterRole bound to it. Cluster-scoped names carry
    the namespace: two stacks can share a cluster."""
    name = f"{namespace}-{component}"
    child = pulumi.ResourceOptions(parent=parent)
    # Its pods mount the token explicitly (`api_token_volume`).
    account = k8s.core.v1.ServiceAccount(
        component,
        metadata=metadata(component, namespace, component, part),
        automount_service_account_token=False,
        opts=child,
    )
    role = k8s.rbac.v1.ClusterRole(
        name, metadata={"name": name, "labels": labels(component, part)}, rules=rules, opts=child
    )
    binding = k8s.rbac.v1.ClusterRoleBinding(
        name,
        metadata={"name": name, "labels": labels(component, part)},
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        subjects=[{"kind": "ServiceAccount", "name": component, "namespace": namespace}],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[role]),
    )
    return [account, role, binding]


def disruption_budget(
    component: str, namespace: str, part: str, parent: pulumi.Resource
) -> k8s.policy.v1.PodDisruptionBudget:
    """Keeps one replica of a replicated service up through voluntary disruptions."""
    return k8s.policy.v1.PodDisruptionBudget(
        component,
        metadata=metadata(component, namespace, component, part),
        spec={"maxUnavailable": 1, "selector": {"matchLabels": selector(component)}},
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class Storage:
    """Where a stateful component's data volume comes from, and whether the data is protected:
    protected data keeps its StatefulSet (`protect`) and its volume claims on delete."""

    storage_class: str | None
    protect: bool


def _template(
    component: str,
    part: str,
    pod: Spec,
    config_digest: str | None,
    secret_digest: pulumi.Output[str] | None = None,
) -> Spec:
    meta: Spec = {"labels": labels(component, part)}
    annotations: Spec = {}
    if config_digest is not None:
        annotations[CONFIG_DIGEST_ANNOTATION] = config_digest
    if secret_digest is not None:
        annotations[SECRET_DIGEST_ANNOTATION] = secret_digest
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": pod}


def stateful_set(
    component: str,
    namespace: str,
    part: str,
    *,
    pod: Spec,
    size: str,
    storage: Storage,
    needs: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
    config_digest: str | None = None,
    secret_digest: pulumi.Output[str] | None = None,
) -> k8s.apps.v1.StatefulSet:
    """One pod with a data volume (`data`); a `config_digest` or `secret_digest` rolls it on a
    config change or a rotated secret."""
    return k8s.apps.v1.StatefulSet(
        component,
        metadata=metadata(component, namespace, component, part),
        spec={
            "serviceName": component,
            "replicas": 1,
            "selector": {"matchLabels": selector(component)},
            "persistentVolumeClaimRetentionPolicy": claim_retention(storage.protect),
            "template": _template(component, part, pod, config_digest, secret_digest),
            "volumeClaimTemplates": [volume_claim("data", size, storage.storage_class)],
        },
        opts=pulumi.ResourceOptions(parent=parent, protect=storage.protect, depends_on=list(needs)),
    )


def deployment(
    component: str,
    namespace: str,
    part: str,
    *,
    replicas: int,
    pod: Spec,
    needs: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
    config_digest: str | None = None,
    secret_digest: pulumi.Output[str] | None = None,
    strategy: str | None = None,
) -> k8s.apps.v1.Deployment:
    """A stateless service; with more than one replica, a budget keeps one up."""
    spec: Spec = {
        "replicas": replicas,
        "selector": {"matchLabels": selector(component)},
        "template": _template(component, part, pod, config_digest, secret_digest),
    }
    if strategy is not None:
        spec["strategy"] = {"type": strategy}
    made = k8s.apps.v1.Deployment(
        component,
        metadata=metadata(component, namespace, component, part),
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(needs)),
    )
    if replicas > 1:
        disruption_budget(component, namespace, part, parent)
    return made
