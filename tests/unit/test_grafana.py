"""Grafana: provisioned from code, its admin password by reference, anonymous access off."""

from __future__ import annotations

import json

import yaml

from infra.components import grafana
from tests.support.rendering import env_of, stack_rendering


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
    assert uids == {"mlops-overview", "mlops-serving", "mlops-feature-store", "mlops-training"}
