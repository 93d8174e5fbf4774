"""Alertmanager: Prometheus sends to it, its receivers come from stack config with their
credentials in a Secret, and a component that is down inhibits its own symptoms."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import config, versions
from infra.components import alertmanager
from infra.config import ConfigError
from infra.observability import ALERTS_DIR
from tests.support.rendering import (
    ALL_RECEIVERS,
    RECEIVER_SECRETS,
    SENTINELS,
    component_objects,
    evaluate,
    pod_container,
    secret_data,
    stack_rendering,
)
from tests.support.tools import amtool


def config_of(rendering: Any) -> dict[str, Any]:
    text = rendering.find("ConfigMap", "alertmanager-config").inputs["data"]["alertmanager.yml"]
    return yaml.safe_load(text)  # type: ignore[no-any-return]


def all_receivers() -> Any:
    return evaluate(ALL_RECEIVERS, RECEIVER_SECRETS)


def _check_config(
    text: str, tmp_path: Path, secrets: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """amtool check-config on the rendered file, the Secret's files relocated."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(exist_ok=True)
    for key, value in secrets.items():
        (secrets_dir / key).write_text(value)
    path = tmp_path / "alertmanager.yml"
    path.write_text(text.replace(alertmanager.SECRETS_DIR, str(secrets_dir)))
    return subprocess.run(
        [amtool(), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("stack_name", ["dev", "ci", "staging", "prod"])
def test_every_stacks_rendered_config_passes_amtool(stack_name: str, tmp_path: Path) -> None:
    rendering = stack_rendering(stack_name)
    text = rendering.find("ConfigMap", "alertmanager-config").inputs["data"]["alertmanager.yml"]
    result = _check_config(text, tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_config_with_every_receiver_passes_amtool_and_a_broken_one_does_not(
    tmp_path: Path,
) -> None:
    rendering = all_receivers()
    text = rendering.find("ConfigMap", "alertmanager-config").inputs["data"]["alertmanager.yml"]
    result = _check_config(text, tmp_path, secret_data(rendering, alertmanager.SECRET))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Found:" in result.stdout and "- 1 receivers" in result.stdout
    broken = _check_config(text.replace("url_file:", "url_fyle:"), tmp_path, {})
    assert broken.returncode != 0


def test_amtool_is_the_pinned_alertmanager_version() -> None:
    result = subprocess.run([amtool(), "--version"], capture_output=True, text=True, timeout=30)
    assert f"version {versions.ALERTMANAGER_VERSION} " in result.stdout + result.stderr


def test_without_receivers_alerts_go_to_the_null_receiver_and_no_secret_exists() -> None:
    rendering = stack_rendering("dev")
    found = config_of(rendering)
    assert found["route"]["receiver"] == alertmanager.NULL_RECEIVER
    assert found["receivers"] == [{"name": alertmanager.NULL_RECEIVER}]
    assert not [o for o in component_objects(rendering, "alertmanager") if o["kind"] == "Secret"]


def test_receivers_read_their_credentials_from_the_mounted_secret() -> None:
    rendering = all_receivers()
    [receiver] = config_of(rendering)["receivers"]
    assert config_of(rendering)["route"]["receiver"] == receiver["name"] == "platform"
    secrets_dir = alertmanager.SECRETS_DIR
    assert receiver["webhook_configs"] == [
        {"url_file": f"{secrets_dir}/webhook-url", "send_resolved": True}
    ]
    assert receiver["slack_configs"] == [
        {
            "api_url_file": f"{secrets_dir}/slack-api-url",
            "channel": "#mlops-alerts",
            "send_resolved": True,
        }
    ]
    [email] = receiver["email_configs"]
    assert email["to"] == "oncall@example.com, ml@example.com"
    assert email["auth_password_file"] == f"{secrets_dir}/smtp-password"
    assert email["require_tls"] is True
    assert secret_data(rendering, alertmanager.SECRET) == {
        "webhook-url": RECEIVER_SECRETS["alertmanagerWebhookUrl"],
        "slack-api-url": RECEIVER_SECRETS["alertmanagerSlackApiUrl"],
        "smtp-password": SENTINELS["alertmanagerSmtpPassword"],
    }
    mounts = pod_container(rendering, "StatefulSet", "alertmanager")["volumeMounts"]
    assert {"name": "receivers", "mountPath": secrets_dir, "readOnly": True} in mounts


def test_no_receiver_secret_is_in_any_configmap_or_the_pod_spec() -> None:
    rendering = all_receivers()
    secrets = [RECEIVER_SECRETS[k] for k in config.SECRET_KEYS if k.startswith("alertmanager")]
    for obj in rendering.objects():
        if obj["kind"] == "Secret":
            continue
        text = yaml.safe_dump(obj)
        for value in secrets:
            assert value not in text, f"{obj['kind']}/{obj['metadata']['name']}"


def test_routing_defaults_and_overrides() -> None:
    route = config_of(stack_rendering("prod"))["route"]
    assert route["group_by"] == ["alertname", "namespace", "job"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "30s",
        "5m",
        "4h",
    )
    timing = {"groupWait": "10s", "groupInterval": "1m", "repeatInterval": "12h"}
    route = config_of(evaluate({"monitoring": {"alertmanager": timing}}))["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "10s",
        "1m",
        "12h",
    )


def _rules() -> dict[str, dict[str, Any]]:
    """Every alert rule of infra/alerts/, by alertname."""
    return {
        rule["alert"]: rule
        for path in ALERTS_DIR.glob("*.yaml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }


def _alternatives(pattern: str, text: str) -> set[str]:
    """The `a|b|c` alternatives a regex matcher in `text` lists."""
    found = re.search(pattern, text)
    assert found is not None, f"{pattern} not in {text}"
    return set(found.group(1).split("|"))


def _watched_jobs() -> set[str]:
    return _alternatives(r'job=~"([^"]+)"', _rules()["ComponentDown"]["expr"])


def _inhibited(rendering: Any) -> set[str]:
    [rule] = config_of(rendering)["inhibit_rules"]
    [matcher] = rule["target_matchers"]
    return _alternatives(r'^alertname=~"(.+)"$', matcher)


def test_a_component_down_inhibits_its_latency_and_error_alerts() -> None:
    rendering = stack_rendering("dev")
    [rule] = config_of(rendering)["inhibit_rules"]
    assert rule["source_matchers"] == ['alertname="ComponentDown"']
    assert rule["equal"] == ["namespace", "component"]
    assert _inhibited(rendering) == {"FeatureServerErrors", "MlflowServerErrors"}


def test_inhibition_matches_labels_the_alerts_really_carry() -> None:
    """ComponentDown carries `component` and `namespace` from the scrape job's static labels;
    each inhibited alert names a component ComponentDown watches, in its rule's labels, and
    keeps `namespace` in its expression's result."""
    rendering = stack_rendering("dev")
    rules = _rules()
    prometheus_config = yaml.safe_load(
        rendering.find("ConfigMap", "prometheus-config").inputs["data"]["prometheus.yaml"]
    )
    static_labels = {
        job["job_name"]: job["static_configs"][0]["labels"]
        for job in prometheus_config["scrape_configs"]
        if "static_configs" in job
    }
    for alert in _inhibited(rendering):
        component = rules[alert]["labels"]["component"]
        assert component in _watched_jobs(), alert
        assert static_labels[component] == {
            "component": component,
            "namespace": rendering.config.namespace,
        }
        assert re.search(r"by \(namespace\)", rules[alert]["expr"]), alert


def test_component_down_watches_every_static_scrape_job() -> None:
    """Every component Prometheus scrapes by address, Alertmanager and the Pushgateway
    included, is covered by ComponentDown."""
    watched = _watched_jobs()
    for name in ("dev", "prod"):
        jobs = {target.job for t in stack_rendering(name).telemetry for target in t.targets}
        assert jobs <= watched, jobs - watched
    assert {"alertmanager", "pushgateway"} <= watched


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"slack": {}},
            "mlops-platform:monitoring.alertmanager.receivers.slack.channel is not set",
        ),
        (
            {"slack": {"channel": "Alerts Room"}},
            "mlops-platform:monitoring.alertmanager.receivers.slack.channel = 'Alerts Room': "
            "must be a Slack channel such as #alerts",
        ),
        (
            {
                "email": {
                    "to": "oncall@example.com",
                    "from": "a@example.com",
                    "smarthost": "smtp.example.com:587",
                    "username": "am",
                }
            },
            "mlops-platform:monitoring.alertmanager.receivers.email.to = 'oncall@example.com': "
            "must be a non-empty list of distinct email addresses",
        ),
        (
            {
                "email": {
                    "to": ["oncall@example.com"],
                    "from": "a@example.com",
                    "smarthost": "smtp.example.com",
                    "username": "am",
                }
            },
            "mlops-platform:monitoring.alertmanager.receivers.email.smarthost = "
            "'smtp.example.com': must be host:port such as smtp.example.com:587",
        ),
        (
            {"pagerduty": {}},
            "mlops-platform:monitoring.alertmanager.receivers.pagerduty = {}: unknown key; "
            "known keys: email, slack, webhook",
        ),
    ],
)
def test_bad_receiver_config_names_the_key_the_value_and_what_is_allowed(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        evaluate({"monitoring": {"alertmanager": {"receivers": values}}}, RECEIVER_SECRETS)
    assert message in str(error.value)


def test_a_receiver_without_its_secret_names_the_command_that_sets_it() -> None:
    secrets = {k: v for k, v in RECEIVER_SECRETS.items() if k != "alertmanagerWebhookUrl"}
    with pytest.raises(ConfigError) as error:
        evaluate({"monitoring": {"alertmanager": {"receivers": {"webhook": {}}}}}, secrets)
    assert (
        "mlops-platform:alertmanagerWebhookUrl is not set (required while "
        "monitoring.alertmanager.receivers.webhook is set)" in str(error.value)
    )
    assert "mlops secrets set test alertmanagerWebhookUrl" in str(error.value)


def test_a_webhook_secret_that_is_not_a_url_is_refused_without_echoing_it() -> None:
    secrets = {**RECEIVER_SECRETS, "alertmanagerWebhookUrl": "not-a-url-but-long-enough"}
    with pytest.raises(ConfigError) as error:
        evaluate({"monitoring": {"alertmanager": {"receivers": {"webhook": {}}}}}, secrets)
    assert "mlops-platform:alertmanagerWebhookUrl = [secret]: must be an http(s) URL" in str(
        error.value
    )
    assert "not-a-url-but-long-enough" not in str(error.value)


def test_disabled_monitoring_leaves_no_alertmanager_or_pushgateway() -> None:
    rendering = evaluate({"monitoring": {"enabled": False}})
    assert component_objects(rendering, "alertmanager") == []
    assert component_objects(rendering, "pushgateway") == []
