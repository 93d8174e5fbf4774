"""MLflow: migrations before rollout, secrets by reference, names from the data plane's outputs."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

from infra import config, versions
from infra.components import mlflow
from tests.support.rendering import SENTINELS, component_objects, env_of, evaluate, secret_data

ROOT = Path(__file__).resolve().parents[2]


def server(values: dict[str, object] | None = None) -> dict[str, object]:
    deployment = evaluate(values or {}).find("Deployment", "mlflow").manifest()
    return deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_image_is_the_full_variant_of_the_pinned_client_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [
        d
        for d in pyproject["dependency-groups"]["workloads"]
        if isinstance(d, str) and d.startswith("mlflow")
    ]
    assert pins == [f"mlflow[auth,db]=={versions.MLFLOW_VERSION}"]
    assert server()["image"] == f"ghcr.io/mlflow/mlflow:v{versions.MLFLOW_VERSION}-full"


def test_migration_job_runs_before_the_server_rolls_out() -> None:
    rendering = evaluate({})
    job = rendering.find("Job", "mlflow-db-upgrade")
    deployment = rendering.find("Deployment", "mlflow")
    assert job.urn in deployment.depends_on
    assert job.delete_before_replace
    command = job.manifest()["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["/bin/sh", "-c", mlflow.UPGRADE]
    assert (
        "mlflow db upgrade" in mlflow.UPGRADE and "mlflow.server.auth db upgrade" in mlflow.UPGRADE
    )


def test_server_flags() -> None:
    args = server()["args"]
    assert args[:4] == ["server", "--host=0.0.0.0", "--port=5000", "--workers=2"]
    assert "--artifacts-destination=s3://mlflow" in args
    assert "--app-name=basic-auth" in args
    assert "--expose-prometheus=/tmp/prometheus" in args
    hosts = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert {"mlflow.mlops.svc.cluster.local", "mlflow.mlops.svc.cluster.local:*", "10.*"} <= set(
        hosts
    )


def test_configured_hosts_are_allowed() -> None:
    args = server({"mlflow": {"allowedHosts": ["mlflow.example.com"]}})["args"]
    assert any(a.startswith("--allowed-hosts=") and a.endswith(",mlflow.example.com") for a in args)  # type: ignore[union-attr]


def test_bucket_and_database_come_from_the_data_plane_outputs() -> None:
    rendering = evaluate(
        {"objectStore": {"buckets": {"mlflow": "team-artifacts"}}, "namespace": "ml"}
    )
    container = rendering.find("Deployment", "mlflow").manifest()["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "--artifacts-destination=s3://team-artifacts" in container["args"]
    env = env_of(container)
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs.ml.svc.cluster.local:8333"
    assert env["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "object-store", "key": "access-key-id"}
    }
    password = SENTINELS["postgresMlflowPassword"]
    uri = (
        f"postgresql+psycopg2://mlflow:{password}@postgres.ml.svc.cluster.local:5432/mlflow"
        "?sslmode=disable"
    )
    assert secret_data(rendering, "mlflow")["backend-store-uri"] == uri


def test_secrets_reach_the_server_only_by_reference() -> None:
    env = env_of(server())
    for name, key in [
        ("MLFLOW_BACKEND_STORE_URI", "backend-store-uri"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "admin-password"),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "flask-secret-key"),
    ]:
        assert env[name] == {"secretKeyRef": {"name": "mlflow", "key": key}}
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == mlflow.AUTH_CONFIG_PATH


def test_auth_config_keeps_users_in_the_tracking_database() -> None:
    data = secret_data(evaluate({}), "mlflow")
    ini = configparser.ConfigParser()
    ini.read_string(data["basic_auth.ini"])
    assert ini["mlflow"]["database_uri"] == data["backend-store-uri"]
    assert ini["mlflow"]["default_permission"] == "READ"
    assert "admin_password" not in ini["mlflow"]
    assert data["admin-password"] == SENTINELS["mlflowAdminPassword"]


def test_replicas_follow_the_profile_with_a_disruption_budget_when_replicated() -> None:
    small, ha = evaluate({}), evaluate({"profile": "ha"})
    assert small.find("Deployment", "mlflow").manifest()["spec"]["replicas"] == 1
    assert not small.of_type("PodDisruptionBudget")
    assert ha.find("Deployment", "mlflow").manifest()["spec"]["replicas"] == 2
    assert ha.find("PodDisruptionBudget", "mlflow").manifest()["spec"]["maxUnavailable"] == 1


def test_disabled_mlflow_leaves_no_object() -> None:
    secrets = {k: v for k, v in SENTINELS.items() if config.SECRET_KEYS[k] != "mlflow"}
    rendering = evaluate({"mlflow": {"enabled": False}}, secrets)
    assert component_objects(rendering, "mlflow") == []
    assert "mlflow" not in rendering.outputs


def test_tracking_uri_is_a_stack_output() -> None:
    outputs = evaluate({"namespace": "ml"}).outputs
    assert outputs["mlflow"] == {
        "trackingUri": "http://mlflow.ml.svc.cluster.local:5000",
        "artifactsDestination": "s3://mlflow",
    }
