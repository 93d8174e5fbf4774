"""Flyte: flyte-binary 1.16 config from the data plane outputs; no credential in a ConfigMap."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import config, versions
from infra.components import flyte
from tests.support.rendering import (
    INGRESSES,
    SENTINELS,
    STACKS,
    component_objects,
    evaluate,
    ingress_of,
    secret_data,
    stack_rendering,
)

ROOT = Path(__file__).resolve().parents[2]


def files(values: dict[str, Any] | None = None) -> dict[str, Any]:
    data = evaluate(values or {}).find("ConfigMap", "flyte-config").inputs["data"]
    return {name: yaml.safe_load(text) for name, text in data.items()}


def pod(values: dict[str, Any] | None = None) -> dict[str, Any]:
    deployment = evaluate(values or {}).find("Deployment", "flyte").manifest()
    return deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_flyte_1_16_server_with_flytekit_1_16_clients() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    flytekit = [
        d
        for d in pyproject["dependency-groups"]["workloads"]
        if isinstance(d, str) and d.startswith("flytekit")
    ]
    assert versions.FLYTE_VERSION.startswith("1.16.")
    assert flytekit and flytekit[0].startswith("flytekit==1.16.")
    assert pod()["containers"][0]["image"] == versions.FLYTE_IMAGE


def test_database_comes_from_the_postgres_outputs_with_a_password_file() -> None:
    database = files({"namespace": "ml"})["002-database.yaml"]["database"]["postgres"]
    assert database == {
        "username": "flyte",
        "host": "postgres.ml.svc.cluster.local",
        "port": 5432,
        "dbname": "flyte",
        "options": "sslmode=disable",
        "passwordPath": flyte.DB_PASSWORD_PATH,
    }
    volume = next(v for v in pod()["volumes"] if v["name"] == "db-password")
    assert volume["secret"] == {
        "secretName": "postgres-flyte",
        "items": [{"key": "password", "path": "password"}],
    }


def test_metadata_and_user_data_go_to_the_flyte_bucket() -> None:
    storage = files({"objectStore": {"buckets": {"flyte": "team-flyte"}}})["003-storage.yaml"]
    assert storage["storage"]["container"] == "team-flyte"
    assert storage["propeller"]["rawoutput-prefix"] == "s3://team-flyte/data"
    assert storage["storage"]["stow"]["config"]["endpoint"] == (
        "http://seaweedfs.mlops.svc.cluster.local:8333"
    )
    assert storage["storage"]["stow"]["config"]["disable_ssl"] is True


def test_storage_keys_live_only_in_the_config_secret() -> None:
    rendering = evaluate({})
    secret = yaml.safe_load(
        secret_data(rendering, "flyte-config-secret")["013-storage-secrets.yaml"]
    )
    assert secret["storage"]["stow"]["config"] == {
        "access_key_id": SENTINELS["objectStoreAccessKey"],
        "secret_key": SENTINELS["objectStoreSecretKey"],
    }
    projected = next(v for v in pod()["volumes"] if v["name"] == "config")["projected"]["sources"]
    assert projected == [
        {"configMap": {"name": "flyte-config"}},
        {"secret": {"name": "flyte-config-secret"}},
    ]


def test_task_pods_get_platform_storage_and_login_settings() -> None:
    k8s = files({"namespace": "ml"})["001-plugins.yaml"]["plugins"]["k8s"]
    assert k8s["default-env-vars"] == {
        "FLYTE_PLATFORM_URL": "flyte-grpc.ml.svc.cluster.local:8089",
        "FLYTE_PLATFORM_INSECURE": "true",
        "FLYTE_CREDENTIALS_AUTH_MODE": "ClientSecret",
        "FLYTE_CREDENTIALS_CLIENT_ID": "mlops-ci",
        "FLYTE_AWS_ENDPOINT": "http://seaweedfs.ml.svc.cluster.local:8333",
    }
    assert k8s["default-env-from-secrets"] == [flyte.TASK_STORAGE_SECRET]


def test_each_project_namespace_holds_the_task_secret_the_platform_writes() -> None:
    """flytekit in a task reads FLYTE_CREDENTIALS_* (the launcher of a retraining, too)."""
    rendering = evaluate({})
    secrets = [
        s
        for s in rendering.of_type("Secret")
        if s.manifest()["metadata"]["name"] == flyte.TASK_STORAGE_SECRET
    ]
    assert {s.manifest()["metadata"]["namespace"] for s in secrets} == {
        "ml-development",
        "ml-staging",
        "ml-production",
    }
    from tests.support.rendering import unwrap

    for secret in secrets:
        assert unwrap(secret.inputs["stringData"]) == {
            "FLYTE_AWS_ACCESS_KEY_ID": SENTINELS["objectStoreAccessKey"],
            "FLYTE_AWS_SECRET_ACCESS_KEY": SENTINELS["objectStoreSecretKey"],
            "FLYTE_CREDENTIALS_CLIENT_SECRET": SENTINELS["flyteClientSecret"],
        }


def test_projects_and_domains_come_from_config() -> None:
    core = files({"flyte": {"projects": ["fraud", "ranking"], "domains": ["dev", "prod"]}})[
        "000-core.yaml"
    ]
    assert core["flyte"]["admin"]["seedProjects"] == ["fraud", "ranking"]
    assert core["domains"] == [{"id": "dev", "name": "dev"}, {"id": "prod", "name": "prod"}]


def test_ports_services_and_probes() -> None:
    container = pod()["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8088,
        "grpc": 8089,
        "metrics": 10254,
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthcheck", "port": "http"}
    assert container["args"] == ["start", "--config", "/etc/flyte/config.d/*.yaml"]
    rendering = evaluate({})
    grpc = rendering.find("Service", "flyte-grpc").manifest()["spec"]["ports"]
    assert grpc == [{"name": "grpc", "port": 8089, "targetPort": "grpc"}]


def test_waits_for_its_database_before_start() -> None:
    init = pod()["initContainers"][0]
    assert init["name"] == "wait-for-db" and init["image"] == versions.POSTGRES_IMAGE
    assert "until pg_isready" in init["command"][-1]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env == {
        "PGHOST": "postgres.mlops.svc.cluster.local",
        "PGPORT": "5432",
        "PGUSER": "flyte",
    }


def test_cluster_role_is_bound_to_its_account_only() -> None:
    rendering = evaluate({"namespace": "ml"})
    binding = rendering.find("ClusterRoleBinding", "ml-flyte").manifest()
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "flyte", "namespace": "ml"}]
    assert pod()["serviceAccountName"] == "flyte"


def test_cluster_wide_flyte_only_reads_what_its_informers_watch() -> None:
    """No namespace, Secret or write of any namespaced object outside the Roles."""
    rules = evaluate({"namespace": "ml"}).find("ClusterRole", "ml-flyte").manifest()["rules"]
    for rule in rules:
        if rule["apiGroups"] == ["apiextensions.k8s.io"]:
            assert rule["resources"] == ["customresourcedefinitions"]
            continue
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert not {"secrets", "namespaces", "serviceaccounts", "configmaps"} & set(
            rule["resources"]
        ), rule


@pytest.mark.parametrize("name", STACKS)
def test_flytes_roles_reach_only_the_platforms_namespaces(name: str) -> None:
    rendering = stack_rendering(name)
    cfg = rendering.config
    assert cfg.flyte is not None
    platform = {cfg.namespace, *flyte.project_namespaces(cfg.flyte)}
    bindings = [
        b.manifest()
        for b in rendering.of_type("RoleBinding")
        if {"name": "flyte", "namespace": cfg.namespace, "kind": "ServiceAccount"}
        in b.manifest()["subjects"]
    ]
    assert {b["metadata"]["namespace"] for b in bindings} == set(
        flyte.project_namespaces(cfg.flyte)
    )
    assert {b["metadata"]["namespace"] for b in bindings} <= platform
    for binding in bindings:
        role = next(
            r.manifest()
            for r in rendering.of_type("Role")
            if r.manifest()["metadata"]["name"] == binding["roleRef"]["name"]
            and r.manifest()["metadata"]["namespace"] == binding["metadata"]["namespace"]
        )
        resources = {res for rule in role["rules"] for res in rule["resources"]}
        assert resources == {"pods", "events", "flyteworkflows"}


def test_a_config_change_rolls_the_pod() -> None:
    def checksum(values: dict[str, Any]) -> str:
        template = evaluate(values).find("Deployment", "flyte").manifest()["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/config"]  # type: ignore[no-any-return]

    assert checksum({}) != checksum({"flyte": {"projects": ["other"]}})


def test_disabled_flyte_leaves_no_object() -> None:
    rendering = evaluate({"flyte": {"enabled": False}})
    assert component_objects(rendering, "flyte") == []
    assert "flyte" not in rendering.outputs
    assert not [r for r in rendering.resources if r.type == "mlops:components:Flyte"]


def test_endpoint_is_a_stack_output() -> None:
    assert evaluate({"namespace": "ml"}).outputs["flyte"] == {
        "endpoint": "flyte-grpc.ml.svc.cluster.local:8089",
        "console": "http://flyte-http.ml.svc.cluster.local:8088/console",
        "clientId": "mlops-ci",
    }


def test_flytes_secrets_are_stack_secrets() -> None:
    assert {k for k, section in config.SECRET_KEYS.items() if section.startswith("flyte")} == {
        "flyteClientSecret",
        "flytePropellerClientSecret",
        "flyteSessionKey",
        "flyteTokenSigningKey",
        "flyteOidcClientSecret",
    }


def test_project_namespaces_get_what_training_tasks_read_and_secrets_only_in_a_secret() -> None:
    """The objects the training workflow's pod template names, written by the platform into
    each project namespace; secret values only in the Secret."""
    from workloads.training import workflow

    rendering = evaluate({}, SENTINELS)

    def in_namespace(kind: str, name: str) -> dict[str, Any]:
        return next(
            r.manifest()
            for r in rendering.of_type(kind)
            if r.manifest()["metadata"]["name"] == name
            and r.manifest()["metadata"]["namespace"] == "ml-development"
        )

    account = in_namespace("ServiceAccount", workflow.SERVICE_ACCOUNT)
    assert account["automountServiceAccountToken"] is False  # its pod template projects the token
    settings = in_namespace("ConfigMap", workflow.WORKLOADS_CONFIG)["data"]
    assert settings["MLOPS_MODEL_NAMESPACE"] == "mlops-models"
    assert settings["MLOPS_MLFLOW_ARTIFACTS"] == "s3://mlflow"
    assert not any(s in str(settings) for s in SENTINELS.values())
    feast_yaml = in_namespace("ConfigMap", f"{workflow.WORKLOADS_CONFIG}-feast")["data"]
    assert feast_yaml["feature_store.yaml"] == rendering.outputs["feast"]["featureStoreYaml"]
    secret = next(
        r
        for r in rendering.of_type("Secret")
        if r.manifest()["metadata"]["name"] == workflow.WORKLOADS_CONFIG
        and r.manifest()["metadata"]["namespace"] == "ml-development"
    )
    from tests.support.rendering import unwrap

    secrets = unwrap(secret.inputs["stringData"])
    assert secrets["MLFLOW_TRACKING_PASSWORD"] == SENTINELS["mlflowAdminPassword"]
    assert secrets["FEAST_REDIS_PASSWORD"] == SENTINELS["redisPassword"]


def test_ingress_routes_to_the_http_port_behind_the_controllers_login() -> None:
    rendering = evaluate(INGRESSES)
    ingress = ingress_of(rendering, "flyte")
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/auth-url": "http://oauth2-proxy/auth",
        "cert-manager.io/issuer": "platform-ca",
    }
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "flyte.example.com"
    assert rule["http"]["paths"][0]["backend"] == {
        "service": {"name": "flyte-http", "port": {"number": flyte.HTTP_PORT}}
    }
    assert ingress["spec"]["tls"] == [{"hosts": ["flyte.example.com"], "secretName": "flyte-tls"}]
    assert rendering.outputs["flyte"]["externalConsole"] == "https://flyte.example.com/console"
    # The in-cluster endpoints the clients and tasks use stay as they were.
    assert rendering.outputs["flyte"]["endpoint"] == flyte.grpc_endpoint("mlops")


def test_ingress_needs_no_login_annotation_now_that_flyte_has_its_own() -> None:
    rendering = evaluate({"flyte": {"ingress": {"hosts": ["flyte.lab.internal"]}}})
    assert [r.name for r in rendering.of_type("Ingress")] == ["flyte"]
    auth = files({"flyte": {"ingress": {"hosts": ["flyte.lab.internal"]}}})["004-auth.yaml"]
    assert "http://flyte.lab.internal" in auth["auth"]["authorizedUris"]
    assert "externalConsole" not in evaluate({}).outputs["flyte"]


def test_the_platform_owns_every_project_domain_namespace() -> None:
    """`pulumi destroy` removes them with what Flyte wrote there; Flyte runs only once they and
    its Roles exist, and goes first on destroy. Its cluster-resource manager is off."""
    rendering = evaluate({"flyte": {"projects": ["ml", "fraud"], "domains": ["dev", "prod"]}})
    expected = {"ml-dev", "ml-prod", "fraud-dev", "fraud-prod"}
    namespaces = {
        r.manifest()["metadata"]["name"]: r
        for r in rendering.of_type("Namespace")
        if r.manifest()["metadata"]["name"] in expected
    }
    assert set(namespaces) == expected
    deployment = rendering.find("Deployment", "flyte")
    roles = [r for r in rendering.of_type("Role") if r.name.endswith("-flyte")]
    assert {r.manifest()["metadata"]["namespace"] for r in roles} == expected
    for resource in [*namespaces.values(), *roles]:
        assert resource.urn in deployment.depends_on
    for namespace in namespaces.values():
        labels = namespace.manifest()["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    core = files({"flyte": {"projects": ["ml", "fraud"], "domains": ["dev", "prod"]}})
    assert core["000-core.yaml"]["flyte"]["admin"]["disableClusterResourceManager"] is True
    assert "cluster_resources" not in core["000-core.yaml"]
