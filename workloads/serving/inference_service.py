"""The InferenceService of a model version: MLServer's MLflow runtime as the predictor, the
fraud transformer in front of it, both in Standard (raw Deployment) mode.

The names it refers to are the platform's (infra/components/kserve.py); a unit test keeps them
equal. Settings come from the environment of the task that deploys, with those names as
defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from workloads.model_inputs import FEATURE_SERVICE

API_VERSION = "serving.kserve.io/v1beta1"
# The ServingRuntime the platform installs in the model namespace, and the model format it
# serves: MLflow 3 models (KServe's own MLServer runtime matches formats 1 and 2 only).
RUNTIME = "mlops-mlflow"
MODEL_FORMAT = {"name": "mlflow", "version": "3"}
# What the platform puts in the model namespace: the storage ServiceAccount and the Feast
# client config and credentials.
SERVICE_ACCOUNT = "kserve-models"
FEAST_CONFIG_MAP = "feast-client"
FEAST_SECRET = "feast-client"
FEAST_CONFIG_DIR = "/etc/feast"
# Each secret variable of the store config and its key in FEAST_SECRET.
FEAST_SECRET_ENV = {
    "FEAST_REGISTRY_URL": "registry-url",
    "FEAST_POSTGRES_PASSWORD": "postgres-password",
    "FEAST_REDIS_PASSWORD": "redis-password",
}
# The prediction log's location (MLOPS_PREDICTION_LOG_URI, AWS_ENDPOINT_URL, ...), and the
# storage Secret whose keys are the standard AWS credential variables.
PREDICTION_LOG_CONFIG_MAP = "prediction-log"
STORAGE_SECRET = "kserve-s3"
TRANSFORMER_PORT = 8080
PREDICTOR_METRICS_PORT = 8082
TRANSFORMER_UID = 1001
PART_OF = "mlops-platform"


@dataclass(frozen=True)
class Target:
    """Where and how a model is served."""

    namespace: str = "mlops-models"
    image: str = "ghcr.io/mlops-platform/mlops-platform-workloads:0.1.0"
    # Measured (workloads/README.md, "Serving"): requests hold what one client's stream of
    # transactions uses; at 1 CPU neither part was throttled from one client to 32.
    predictor_resources: dict[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "450m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        }
    )
    transformer_resources: dict[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        }
    )

    @classmethod
    def from_env(cls) -> Target:
        """MLOPS_MODEL_NAMESPACE and MLOPS_WORKLOADS_IMAGE, written into every Flyte project
        namespace by the platform."""
        default = cls()
        return cls(
            namespace=os.environ.get("MLOPS_MODEL_NAMESPACE", default.namespace),
            image=os.environ.get("MLOPS_WORKLOADS_IMAGE", default.image),
        )


def _security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _scrape(port: int) -> dict[str, str]:
    """Prometheus' `inference` job keeps the model namespace's pods that opt in."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def transformer_container(name: str, image: str, resources: dict[str, Any]) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "FEAST_FS_YAML_FILE_PATH", "value": f"{FEAST_CONFIG_DIR}/feature_store.yaml"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]
    env += [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": FEAST_SECRET, "key": key}}}
        for variable, key in FEAST_SECRET_ENV.items()
    ]
    # Optional: without the platform's prediction log the transformer serves, unlogged.
    env += [
        {
            "name": variable,
            "valueFrom": {
                "secretKeyRef": {"name": STORAGE_SECRET, "key": variable, "optional": True}
            },
        }
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    return {
        "name": "kserve-container",
        "image": image,
        "command": ["python", "-m", "workloads.serving.transformer"],
        # KServe adds --model_name, --predictor_host and --http_port.
        "args": [f"--feature_service={FEATURE_SERVICE}"],
        "env": env,
        "envFrom": [{"configMapRef": {"name": PREDICTION_LOG_CONFIG_MAP, "optional": True}}],
        "ports": [{"name": "http", "containerPort": TRANSFORMER_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/{name}", "port": TRANSFORMER_PORT},
            "periodSeconds": 5,
        },
        "resources": resources,
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "feast-config", "mountPath": FEAST_CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def inference_service(
    name: str, version: str, storage_uri: str, target: Target | None = None
) -> dict[str, Any]:
    """The InferenceService serving `version` of registered model `name` from `storage_uri`."""
    target = target or Target()
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": "inference",
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": target.namespace,
            "labels": labels,
            "annotations": {
                "serving.kserve.io/deploymentMode": "Standard",
                "mlops-platform.io/model-version": version,
            },
        },
        "spec": {
            "predictor": {
                "serviceAccountName": SERVICE_ACCOUNT,
                # The storage initializer reads the account's S3 Secret, not the API.
                "automountServiceAccountToken": False,
                "minReplicas": 1,
                "annotations": _scrape(PREDICTOR_METRICS_PORT),
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "model": {
                    "modelFormat": dict(MODEL_FORMAT),
                    "runtime": RUNTIME,
                    "protocolVersion": "v2",
                    "storageUri": storage_uri,
                    # MLServer answers with this version: the transformer passes it on.
                    "env": [{"name": "MLSERVER_MODEL_VERSION", "value": version}],
                    "resources": target.predictor_resources,
                },
            },
            "transformer": {
                "minReplicas": 1,
                "annotations": _scrape(TRANSFORMER_PORT),
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": TRANSFORMER_UID,
                    "runAsGroup": TRANSFORMER_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    transformer_container(name, target.image, target.transformer_resources)
                ],
                "volumes": [
                    {"name": "feast-config", "configMap": {"name": FEAST_CONFIG_MAP}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                ],
            },
        },
    }
