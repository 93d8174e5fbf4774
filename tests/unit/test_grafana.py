"""Grafana: provisioned from code, its admin password by reference, anonymous access off."""

from __future__ import annotations

import json

import yaml

from infra.components import grafana
from tests.support.rendering import (
    INGRESSES,
    env_of,
    evaluate,
    ingress_of,
    pod_container,
    stack_rendering,
)


def test_grafana_admin_password_by_reference_and_anonymous_access_off() -> None:
    grafana = stack_rendering("dev").find("Deployment", "grafana").manifest()
    env = env_of(grafana["spec"]["template"]["spec"]["containers"][0])
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == {
        "secretKeyRef": {"name": "grafana", "key": "admin-password"}
    }
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_grafana_provisions_prometheus_and_the_dashboards() -> None:
    rendering = stack_rendering("dev")
    provisioning = rendering.find("ConfigMap", "grafana-provisioning").inputs["data"]
    datasource = yaml.safe_load(provisioning["datasources.yaml"])["datasources"][0]
    assert datasource["url"] == rendering.outputs["monitoring"]["prometheusUrl"]
    assert datasource["uid"] == "prometheus"
    provider = yaml.safe_load(provisioning["dashboards.yaml"])["providers"][0]
    assert provider["options"]["path"] == grafana.DASHBOARDS_DIR
    boards = rendering.find("ConfigMap", "grafana-dashboards").inputs["data"]
    uids = {json.loads(text)["uid"] for text in boards.values()}
    assert uids == {
        "mlops-overview",
        "mlops-serving",
        "mlops-model-monitoring",
        "mlops-feature-store",
        "mlops-training",
    }


def test_no_public_address_without_an_ingress() -> None:
    env = env_of(pod_container(stack_rendering("dev"), "Deployment", "grafana"))
    assert "GF_SERVER_ROOT_URL" not in env and "GF_SERVER_DOMAIN" not in env


def test_ingress_sets_grafanas_root_url_from_its_first_host() -> None:
    rendering = evaluate(
        {
            "monitoring": {
                "grafana": {
                    "ingress": {
                        "hosts": ["grafana.example.com", "dashboards.example.com"],
                        "tls": {"clusterIssuer": "letsencrypt"},
                    }
                }
            }
        }
    )
    env = env_of(pod_container(rendering, "Deployment", "grafana"))
    assert env["GF_SERVER_ROOT_URL"] == "https://grafana.example.com/"
    assert env["GF_SERVER_DOMAIN"] == "grafana.example.com"
    ingress = ingress_of(rendering, "grafana")
    assert [r["host"] for r in ingress["spec"]["rules"]] == [
        "grafana.example.com",
        "dashboards.example.com",
    ]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"] == {
        "service": {"name": "grafana", "port": {"number": grafana.PORT}}
    }
    assert rendering.outputs["monitoring"]["grafanaExternalUrl"] == "https://grafana.example.com"


def test_plain_http_ingress_gives_an_http_root_url() -> None:
    env = env_of(pod_container(evaluate(INGRESSES), "Deployment", "grafana"))
    assert env["GF_SERVER_ROOT_URL"] == "http://grafana.example.com/"
