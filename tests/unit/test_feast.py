"""Feast: apply before serving, credentials by reference, store config from the stack."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import config, versions
from infra.components import feast
from tests.support.rendering import (
    SENTINELS,
    component_objects,
    env_of,
    evaluate,
    secret_data,
    stack_rendering,
)

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {
    "FEAST_REGISTRY_URL": {"secretKeyRef": {"name": "feast", "key": "registry-url"}},
    "FEAST_POSTGRES_PASSWORD": {"secretKeyRef": {"name": "postgres-feast", "key": "password"}},
    "FEAST_REDIS_PASSWORD": {"secretKeyRef": {"name": "redis", "key": "password"}},
}


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def store(values: dict[str, Any] | None = None) -> dict[str, Any]:
    text = evaluate(values or {}).find("ConfigMap", "feast").inputs["data"]["feature_store.yaml"]
    return yaml.safe_load(text)  # type: ignore[no-any-return]


def test_server_image_is_the_pinned_feast_package_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [
        d
        for d in pyproject["dependency-groups"]["workloads"]
        if isinstance(d, str) and d.startswith("feast")
    ]
    assert pins == [f"feast[duckdb,postgres,redis]=={versions.FEAST_VERSION}"]
    server = pod(evaluate({}).find("Deployment", "feast").manifest())["containers"][0]
    assert server["image"] == f"quay.io/feastdev/feature-server:{versions.FEAST_VERSION}"


def test_images_install_the_lock_files_groups_on_the_pinned_bases() -> None:
    """Each image target syncs its own dependency group from uv.lock (frozen), from the base
    images infra/versions.py pins, with the uv version pyproject.toml requires."""
    lines = (ROOT / "workloads" / "Dockerfile").read_text().splitlines()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"ARG PYTHON_IMAGE={versions.PYTHON_IMAGE}" in lines
    assert f"ARG UV_IMAGE={versions.UV_IMAGE}" in lines
    assert versions.UV_IMAGE.endswith(":" + pyproject["tool"]["uv"]["required-version"][2:])
    syncs = [line for line in lines if "uv sync" in line]
    groups = sorted(line.split("--group ")[1] for line in syncs)
    assert groups == ["serving", "workloads"]
    assert all("--frozen" in line and "--no-default-groups" in line for line in syncs)
    assert set(groups) <= set(pyproject["dependency-groups"])
    assert f"USER {versions.WORKLOADS_UID}" in lines
    assert {"FROM runtime AS serving", "FROM runtime AS workloads"} <= set(lines)
    for image in (versions.WORKLOADS_IMAGE, versions.SERVING_IMAGE):
        assert image.endswith(f":{pyproject['project']['version']}")


def test_apply_job_precedes_the_server_and_the_cronjob() -> None:
    rendering = evaluate({})
    apply = rendering.find("Job", "feast-apply")
    assert apply.delete_before_replace
    assert apply.urn in rendering.find("Deployment", "feast").depends_on
    assert apply.urn in rendering.find("CronJob", "feast-materialize").depends_on
    # The apply Job itself waits for the feast database and login, and for Redis.
    assert rendering.find("Job", "postgres-init").urn in apply.depends_on
    assert rendering.find("StatefulSet", "redis").urn in apply.depends_on
    container = pod(apply.manifest())["containers"][0]
    assert container["command"] == ["feast", "apply"]
    assert container["image"] == versions.WORKLOADS_IMAGE
    assert container["workingDir"] == feast.REPO_DIR


def test_server_listens_on_all_interfaces_with_metrics() -> None:
    server = pod(evaluate({}).find("Deployment", "feast").manifest())["containers"][0]
    assert server["command"] == ["feast"]
    assert server["args"][:2] == ["--chdir=/etc/feast", "serve"]
    assert {"--host=0.0.0.0", "--port=6566", "--metrics", "--workers=1"} <= set(server["args"])
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {
        "http": 6566,
        "metrics": 8000,
    }
    assert server["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_every_feast_container_gets_credentials_only_by_reference() -> None:
    rendering = evaluate({})
    for obj in component_objects(rendering, "feast"):
        if obj["kind"] not in ("Deployment", "Job", "CronJob"):
            continue
        env = env_of(pod(obj)["containers"][0])
        assert {k: env[k] for k in CREDENTIALS} == CREDENTIALS, obj["metadata"]["name"]
    text = rendering.find("ConfigMap", "feast").inputs["data"]["feature_store.yaml"]
    assert not any(s in text for s in SENTINELS.values())
    assert "${FEAST_REDIS_PASSWORD}" in text and "${FEAST_POSTGRES_PASSWORD}" in text


def test_registry_url_secret_uses_psycopg3_and_the_feast_login() -> None:
    password = SENTINELS["postgresFeastPassword"]
    assert secret_data(evaluate({"namespace": "ml"}), "feast")["registry-url"] == (
        f"postgresql+psycopg://feast:{password}@postgres.ml.svc.cluster.local:5432/feast"
        "?sslmode=disable"
    )


def test_store_config_comes_from_the_postgres_and_redis_outputs() -> None:
    generated = store({"namespace": "ml"})
    assert generated["registry"]["registry_type"] == "sql"
    assert generated["offline_store"] == {
        "type": "postgres",
        "host": "postgres.ml.svc.cluster.local",
        "port": 5432,
        "database": "feast",
        "db_schema": "public",
        "user": "feast",
        "password": "${FEAST_POSTGRES_PASSWORD}",
        "sslmode": "disable",
    }
    assert generated["online_store"] == {
        "type": "redis",
        "connection_string": "redis.ml.svc.cluster.local:6379,password=${FEAST_REDIS_PASSWORD}",
    }


def test_external_services_reach_the_store_config() -> None:
    generated = store(
        {
            "postgres": {"external": {"host": "db.example.com", "sslMode": "verify-full"}},
            "redis": {"external": {"host": "cache.example.com", "port": 6380, "tls": True}},
        }
    )
    assert generated["offline_store"]["host"] == "db.example.com"
    assert generated["offline_store"]["sslmode"] == "verify-full"
    assert generated["online_store"]["connection_string"] == (
        "cache.example.com:6380,password=${FEAST_REDIS_PASSWORD},ssl=true"
    )


def test_feast_reads_the_generated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo_config = pytest.importorskip("feast.repo_config", reason="workloads group")
    text = evaluate({}).find("ConfigMap", "feast").inputs["data"]["feature_store.yaml"]
    path = tmp_path / "feature_store.yaml"
    path.write_text(text)
    # A password of digits must stay a string after expansion.
    monkeypatch.setenv("FEAST_REGISTRY_URL", "postgresql+psycopg://feast:x@h:5432/feast")
    monkeypatch.setenv("FEAST_POSTGRES_PASSWORD", "123456789012")
    monkeypatch.setenv("FEAST_REDIS_PASSWORD", "secret-value")
    loaded = repo_config.load_repo_config(tmp_path, path)
    assert loaded.project == "fraud"
    assert loaded.offline_store.password == "123456789012"
    assert loaded.online_store.connection_string.endswith(",password=secret-value")
    assert loaded.registry.path.startswith("postgresql+psycopg://")


def test_config_change_rolls_the_server() -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = evaluate(values).find("Deployment", "feast").manifest()
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]  # type: ignore[no-any-return]

    assert checksum({}) != checksum({"feast": {"project": "payments"}})


def test_materialization_schedule_and_overlap_policy() -> None:
    cron = evaluate({"feast": {"materializeSchedule": "0 * * * *"}}).find(
        "CronJob", "feast-materialize"
    )
    spec = cron.manifest()["spec"]
    assert spec["schedule"] == "0 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["timeZone"] == "Etc/UTC"
    container = pod(cron.manifest())["containers"][0]
    assert container["command"] == ["/bin/sh", "-c", feast.MATERIALIZE]
    assert "feast materialize-incremental" in feast.MATERIALIZE


def test_replicas_follow_the_profile_with_a_disruption_budget() -> None:
    prod = stack_rendering("prod")
    assert prod.find("Deployment", "feast").manifest()["spec"]["replicas"] == 2
    assert prod.find("PodDisruptionBudget", "feast")
    dev = stack_rendering("dev")
    assert not [o for o in component_objects(dev, "feast") if o["kind"] == "PodDisruptionBudget"]


def test_outputs_carry_the_endpoint_and_the_store_config() -> None:
    outputs = stack_rendering("ci").outputs["feast"]
    assert outputs["endpoint"] == "http://feast.mlops-ci.svc.cluster.local:6566"
    assert outputs["project"] == "fraud"
    assert yaml.safe_load(outputs["featureStoreYaml"])["offline_store"]["type"] == "postgres"


def test_disabled_feast_leaves_no_object() -> None:
    rendering = evaluate({"feast": {"enabled": False}})
    assert component_objects(rendering, "feast") == []
    assert "feast" not in rendering.outputs


def test_comma_in_the_redis_password_is_refused_while_feast_is_on() -> None:
    secrets = {**SENTINELS, "redisPassword": "abc,def-123456"}
    with pytest.raises(config.ConfigError) as error:
        evaluate({}, secrets)
    assert "redisPassword = [secret]: must not contain ','" in str(error.value)
    assert "abc,def" not in str(error.value)
    evaluate({"feast": {"enabled": False}}, secrets)
