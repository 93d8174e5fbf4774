"""Prometheus: configured from the components' declarations, secrets by reference."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import versions
from infra.components import prometheus
from tests.support.rendering import (
    INGRESSES,
    component_objects,
    evaluate,
    ingress_of,
    pod_container,
    stack_rendering,
)
from tests.support.tools import promtool

ROOT = Path(__file__).resolve().parents[2]


def config_of(rendering: Any) -> dict[str, Any]:
    text = rendering.find("ConfigMap", "prometheus-config").inputs["data"]["prometheus.yaml"]
    return yaml.safe_load(text)  # type: ignore[no-any-return]


def jobs(rendering: Any) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in config_of(rendering)["scrape_configs"]}


def test_every_declared_target_is_scraped_as_declared(stack: Any) -> None:
    found = jobs(stack)
    declared = [(t, target) for t in stack.telemetry for target in t.targets]
    assert declared
    for telemetry, target in declared:
        job = found[target.job]
        assert job["metrics_path"] == target.path
        assert job["static_configs"] == [
            {
                "targets": [target.address],
                "labels": {"component": telemetry.component, "namespace": stack.config.namespace},
            }
        ]


def test_scrape_addresses_are_the_components_own_ports() -> None:
    found = jobs(stack_rendering("dev"))
    assert found["postgres"]["static_configs"][0]["targets"] == [
        "postgres.mlops.svc.cluster.local:9187"
    ]
    assert found["flyte"]["static_configs"][0]["targets"] == [
        "flyte-http.mlops.svc.cluster.local:10254"
    ]
    assert found["feast"]["static_configs"][0]["targets"] == ["feast.mlops.svc.cluster.local:8000"]


def test_mlflow_metrics_are_scraped_with_the_admin_password_from_its_secret() -> None:
    rendering = stack_rendering("dev")
    auth = jobs(rendering)["mlflow"]["basic_auth"]
    assert auth == {
        "username": "admin",
        "password_file": "/etc/prometheus/secrets/mlflow/admin-password",
    }
    pod = rendering.find("StatefulSet", "prometheus").manifest()["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "secret-mlflow")
    assert volume["secret"] == {
        "secretName": "mlflow",
        "items": [{"key": "admin-password", "path": "admin-password"}],
    }
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "secret-mlflow")
    assert mount["mountPath"] == "/etc/prometheus/secrets/mlflow"


def test_external_services_are_not_scraped() -> None:
    rendering = evaluate(
        {
            "postgres": {"external": {"host": "db.example.com"}},
            "redis": {"external": {"host": "cache.example.com"}},
        }
    )
    assert "postgres" not in jobs(rendering) and "redis" not in jobs(rendering)


def test_predictors_are_discovered_in_the_model_namespace_only() -> None:
    inference = jobs(stack_rendering("dev"))["inference"]
    assert inference["kubernetes_sd_configs"] == [
        {"role": "pod", "namespaces": {"names": ["mlops-models"]}}
    ]
    keep = [r for r in inference["relabel_configs"] if r.get("action") == "keep"]
    assert keep[0]["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    assert "inference" not in jobs(evaluate({"kserve": {"enabled": False}}))


def test_rule_files_are_the_alerts_the_components_name() -> None:
    rendering = stack_rendering("dev")
    files = rendering.find("ConfigMap", "prometheus-rules").inputs["data"]
    assert sorted(files) == sorted(p.name for p in (ROOT / "infra" / "alerts").glob("*.yaml"))
    for name, text in files.items():
        assert text == (ROOT / "infra" / "alerts" / name).read_text()
    assert config_of(rendering)["rule_files"] == [
        f"/etc/prometheus/rules/{n}" for n in sorted(files)
    ]
    without = evaluate({"kserve": {"enabled": False}, "feast": {"enabled": False}})
    left = without.find("ConfigMap", "prometheus-rules").inputs["data"]
    assert "serving.yaml" not in left and "feature_store.yaml" not in left


@pytest.mark.parametrize(
    ("stack_name", "retention", "size", "retained"),
    [("dev", "3d", "5Gi", "4352MB"), ("prod", "30d", "100Gi", "87040MB")],
)
def test_retention_and_volume_follow_the_profile(
    stack_name: str, retention: str, size: str, retained: str
) -> None:
    rendering = stack_rendering(stack_name)
    statefulset = rendering.find("StatefulSet", "prometheus").manifest()
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--storage.tsdb.retention.time={retention}" in args
    assert f"--storage.tsdb.retention.size={retained}" in args
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == size


def test_retention_size_leaves_room_on_the_volume() -> None:
    assert prometheus.retention_size("10Gi") == "8704MB"


def test_images_are_the_pinned_ones() -> None:
    rendering = stack_rendering("dev")
    prometheus = rendering.find("StatefulSet", "prometheus").manifest()
    grafana = rendering.find("Deployment", "grafana").manifest()
    assert prometheus["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"quay.io/prometheus/prometheus:v{versions.PROMETHEUS_VERSION}"
    )
    assert grafana["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"docker.io/grafana/grafana:{versions.GRAFANA_VERSION}"
    )


def test_prometheus_service_account_can_discover_but_only_reads() -> None:
    rendering = stack_rendering("dev")
    role = rendering.find("ClusterRole", "mlops-prometheus").manifest()
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    discovery = rendering.find("Role", "mlops-prometheus-discovery").manifest()
    assert discovery["metadata"]["namespace"] == "mlops-models"


def test_disabled_monitoring_leaves_no_object() -> None:
    rendering = evaluate({"monitoring": {"enabled": False}})
    assert component_objects(rendering, "prometheus") == []
    assert component_objects(rendering, "grafana") == []
    assert "monitoring" not in rendering.outputs


@pytest.mark.parametrize("stack_name", ["dev", "prod", "ci"])
def test_rendered_prometheus_config_passes_promtool(stack_name: str, tmp_path: Path) -> None:
    """`promtool check config` on the rendered file, with the pod's mounted paths (rules,
    secrets, service account) relocated into a temporary directory."""
    binary = promtool()
    rendering = stack_rendering(stack_name)
    text = rendering.find("ConfigMap", "prometheus-config").inputs["data"]["prometheus.yaml"]
    for mounted in ("/etc/prometheus", prometheus.SERVICE_ACCOUNT_DIR):
        text = text.replace(mounted, str(tmp_path / mounted.strip("/")))
    rules = tmp_path / prometheus.RULES_DIR.strip("/")
    rules.mkdir(parents=True)
    for name, body in rendering.find("ConfigMap", "prometheus-rules").inputs["data"].items():
        (rules / name).write_text(body)
    account = tmp_path / prometheus.SERVICE_ACCOUNT_DIR.strip("/")
    account.mkdir(parents=True)
    (account / "token").write_text("token")
    secret = tmp_path / prometheus.SECRETS_DIR.strip("/") / "mlflow"
    secret.mkdir(parents=True)
    (secret / "admin-password").write_text("password")
    path = tmp_path / "prometheus.yaml"
    path.write_text(text)
    result = subprocess.run(
        [binary, "check", "config", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    shutil.rmtree(rules)
    broken = subprocess.run(
        [binary, "check", "config", str(path)], capture_output=True, text=True, timeout=120
    )
    assert broken.returncode != 0


def test_ingress_routes_to_prometheus_and_sets_its_external_url() -> None:
    rendering = evaluate(INGRESSES)
    ingress = ingress_of(rendering, "prometheus")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "prometheus.example.com"
    assert rule["http"]["paths"][0]["backend"] == {
        "service": {"name": "prometheus", "port": {"number": prometheus.PORT}}
    }
    args = pod_container(rendering, "StatefulSet", "prometheus")["args"]
    assert "--web.external-url=http://prometheus.example.com/" in args
    outputs = rendering.outputs["monitoring"]
    assert outputs["prometheusExternalUrl"] == "http://prometheus.example.com"
    assert outputs["prometheusUrl"] == "http://prometheus.mlops.svc.cluster.local:9090"


def test_no_external_url_without_an_ingress() -> None:
    args = pod_container(stack_rendering("dev"), "StatefulSet", "prometheus")["args"]
    assert not [a for a in args if a.startswith("--web.external-url")]
    assert "prometheusExternalUrl" not in stack_rendering("dev").outputs["monitoring"]
