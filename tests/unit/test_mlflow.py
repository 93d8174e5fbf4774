"""MLflow: migrations before rollout, secrets by reference, names from the data plane's outputs."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

from infra import config, versions
from infra.components import mlflow
from tests.support.rendering import (
    INGRESSES,
    SENTINELS,
    component_objects,
    env_of,
    evaluate,
    ingress_of,
    secret_data,
)
from tests.support.tools import require_module

ROOT = Path(__file__).resolve().parents[2]


def server(values: dict[str, object] | None = None) -> dict[str, object]:
    deployment = evaluate(values or {}).find("Deployment", "mlflow").manifest()
    return deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def flag(args: object, name: str) -> list[str]:
    """The comma-separated values of one `--name=` server flag ([] when it is absent)."""
    assert isinstance(args, list)
    found = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return found[0].split(",") if found else []


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


def test_no_ingress_and_no_extra_origin_by_default() -> None:
    rendering = evaluate({})
    assert rendering.of_type("Ingress") == []
    assert flag(server()["args"], "cors-allowed-origins") == []
    assert "externalUrl" not in rendering.outputs["mlflow"]


def test_ingress_routes_every_host_to_the_server_with_a_certificate_from_cert_manager() -> None:
    rendering = evaluate(
        {
            "mlflow": {
                "ingress": {
                    "hosts": ["mlflow.example.com", "tracking.example.com"],
                    "className": "nginx",
                    "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "0"},
                    "tls": {"clusterIssuer": "letsencrypt"},
                }
            }
        }
    )
    ingress = ingress_of(rendering, "mlflow")
    assert ingress["metadata"]["namespace"] == "mlops"
    assert ingress["metadata"]["labels"]["app.kubernetes.io/name"] == "mlflow"
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-body-size": "0",
        "cert-manager.io/cluster-issuer": "letsencrypt",
    }
    backend = {"service": {"name": "mlflow", "port": {"number": 5000}}}
    assert ingress["spec"] == {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": host,
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
            }
            for host in ("mlflow.example.com", "tracking.example.com")
        ],
        "tls": [
            {"hosts": ["mlflow.example.com", "tracking.example.com"], "secretName": "mlflow-tls"}
        ],
    }
    component = next(r for r in rendering.resources if r.type == "mlops:components:Mlflow")
    assert rendering.find("Ingress", "mlflow").parent == component.urn
    assert rendering.outputs["mlflow"]["externalUrl"] == "https://mlflow.example.com"


def test_ingress_hosts_reach_the_servers_allowed_hosts_and_origins() -> None:
    args = server(INGRESSES)["args"]
    hosts = flag(args, "allowed-hosts")
    assert {"mlflow.example.com", "tracking.example.com", "tracking.example.com:*"} <= set(hosts)
    assert "mlflow.mlops.svc.cluster.local" in hosts
    assert flag(args, "cors-allowed-origins") == [
        "https://mlflow.example.com",
        "https://tracking.example.com",
        "https://mlflow.example.com:*",
        "https://tracking.example.com:*",
    ]


def test_the_pinned_server_accepts_requests_through_the_ingress() -> None:
    """MLflow's own checks, fed the rendered flags: the Host header of the ingress and the
    Origin a browser sends with the UI's writes, also on a controller's non-default port."""
    security = require_module("mlflow.server.security_utils", "the workloads dependency group")
    args = server(INGRESSES)["args"]
    hosts, origins = flag(args, "allowed-hosts"), flag(args, "cors-allowed-origins")
    for host in ("mlflow.example.com", "tracking.example.com:8443"):
        assert security.is_allowed_host_header(hosts, host), host
    assert not security.is_allowed_host_header(hosts, "elsewhere.example.com")
    for origin in ("https://mlflow.example.com", "https://tracking.example.com:8443"):
        assert not security.should_block_cors_request(origin, "POST", origins), origin
    assert security.should_block_cors_request("https://elsewhere.example.com", "POST", origins)


def test_ingress_without_tls_is_plain_http() -> None:
    values = {"mlflow": {"ingress": {"hosts": ["mlflow.internal"]}}}
    rendering = evaluate(values)
    ingress = ingress_of(rendering, "mlflow")
    assert "tls" not in ingress["spec"] and "ingressClassName" not in ingress["spec"]
    assert "annotations" not in ingress["metadata"]
    assert rendering.outputs["mlflow"]["externalUrl"] == "http://mlflow.internal"
    assert flag(server(values)["args"], "cors-allowed-origins")[0] == "http://mlflow.internal"


def test_a_disabled_ingress_leaves_no_object() -> None:
    values = {"mlflow": {"ingress": {"enabled": False, "hosts": ["mlflow.example.com"]}}}
    assert evaluate(values).of_type("Ingress") == []
    assert "mlflow.example.com" not in flag(server(values)["args"], "allowed-hosts")
