"""Client settings for a stack, written from its outputs so nobody copies host names by hand
(`mlops connect` writes them for its port-forwards).

`flyte/config.yaml` (for pyflyte and flytectl: `--config` or FLYTECTL_CONFIG), `mlflow.env`
(MLFLOW_TRACKING_URI and the user name), `feast/feature_store.yaml` (the platform's store:
`FEAST_FS_YAML_FILE_PATH` selects it for the reference repo) and `workloads.env` (what the
training workflow reads: where MLflow keeps artifacts, the model namespace, the workload image,
the store config), for registering and running it from a laptop.

Addresses are the in-cluster ones unless a port-forward's or ingress's are given. No secret is
written: the MLflow password and Flyte's client secret stay in the stack (`mlops env` exports
them by reading `mlops secrets get` when the shell evaluates the line); Feast reads its
credentials from FEAST_REGISTRY_URL, FEAST_POSTGRES_PASSWORD and FEAST_REDIS_PASSWORD.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Where pyflyte and flytectl read the client secret from; the task pods carry the same variable.
CLIENT_SECRET_ENV = "FLYTE_CREDENTIALS_CLIENT_SECRET"


def flyte_config(endpoint: str, console: str | None, client_id: str) -> dict[str, Any]:
    """pyflyte's and flytectl's config: the plaintext gRPC endpoint (in-cluster or a
    port-forward) and a client-credentials login whose secret is read from CLIENT_SECRET_ENV."""
    settings: dict[str, Any] = {
        "admin": {
            "endpoint": f"dns:///{endpoint}",
            "insecure": True,
            "authType": "ClientSecret",
            "clientId": client_id,
            "clientSecretEnvVar": CLIENT_SECRET_ENV,
        }
    }
    if console:
        settings["console"] = {"endpoint": console.removesuffix("/console")}
    return settings


def mlflow_env(tracking_uri: str) -> str:
    return (
        f"MLFLOW_TRACKING_URI={tracking_uri}\n"
        "MLFLOW_TRACKING_USERNAME=admin\n"
        "# MLFLOW_TRACKING_PASSWORD: pulumi config get mlflowAdminPassword --stack <stack>\n"
    )


def write(
    outputs: dict[str, Any],
    out: Path,
    flyte_endpoint: str | None = None,
    mlflow_uri: str | None = None,
) -> list[Path]:
    written = []
    if "flyte" in outputs:
        path = out / "flyte" / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        console = None if flyte_endpoint else outputs["flyte"]["console"]
        path.write_text(
            yaml.safe_dump(
                flyte_config(
                    flyte_endpoint or outputs["flyte"]["endpoint"],
                    console,
                    outputs["flyte"]["clientId"],
                ),
                sort_keys=False,
            )
        )
        written.append(path)
    if "mlflow" in outputs:
        path = out / "mlflow.env"
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(mlflow_env(mlflow_uri or outputs["mlflow"]["trackingUri"]))
        written.append(path)
    if "feast" in outputs:
        path = out / "feast" / "feature_store.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outputs["feast"]["featureStoreYaml"])
        written.append(path)
        if "mlflow" in outputs and "kserve" in outputs:
            path = out / "workloads.env"
            path.write_text(workloads_env(outputs, out / "feast" / "feature_store.yaml"))
            written.append(path)
    return written


def workloads_env(outputs: dict[str, Any], store_config: Path) -> str:
    """The settings workloads/training/workflow.py reads (the platform writes the same ones
    into every Flyte project namespace)."""
    settings = {
        "MLOPS_MLFLOW_ARTIFACTS": outputs["mlflow"]["artifactsDestination"],
        "MLOPS_MODEL_NAMESPACE": outputs["kserve"]["modelNamespace"],
        "MLOPS_WORKLOADS_IMAGE": outputs["images"]["workloads"],
        "FEAST_FS_YAML_FILE_PATH": str(store_config),
    }
    return "".join(f"{k}={v}\n" for k, v in settings.items()) + (
        "# FEAST_REGISTRY_URL, FEAST_POSTGRES_PASSWORD, FEAST_REDIS_PASSWORD: from the stack's\n"
        "# Secrets (kubectl -n <namespace> get secret feast postgres-feast redis)\n"
    )
