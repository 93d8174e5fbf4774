"""Alertmanager: where Prometheus sends its alerts, and where they are grouped, inhibited and
delivered to the receivers of stack config (a webhook, Slack, email).

Its config file is a ConfigMap that names no credential: each receiver reads its secret (the
webhook URL, the Slack URL, the SMTP password) from a file mounted from the Secret
`alertmanager-receivers` (`url_file`, `api_url_file`, `auth_password_file`), which Alertmanager
reads at every notification, so a rotated secret needs no restart. With no receiver set, alerts
go to the `null` receiver: grouped, inhibited, visible in the API, delivered nowhere.

One replica (gossip clustering off), a StatefulSet: its volume keeps silences and the
notification log across restarts, so silences stay and sent notifications are not sent again.
The `Monitoring` component builds it beside Prometheus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pydantic import SecretStr

from infra import kube, versions
from infra.config import AlertmanagerConfig, Receivers
from infra.configtypes import reveal
from infra.observability import (
    ScrapeTarget,
    Telemetry,
    Workload,
    component_alerts,
    statefulset_pods,
)

ALERTMANAGER = "alertmanager"
PORT = 9093
CONFIG_DIR = "/etc/alertmanager/config"
SECRETS_DIR = "/etc/alertmanager/secrets"
DATA_DIR = "/alertmanager"
# The Secret the receivers' credentials are mounted from, and its keys.
SECRET = "alertmanager-receivers"
WEBHOOK_URL = "webhook-url"
SLACK_API_URL = "slack-api-url"
SMTP_PASSWORD = "smtp-password"
RECEIVER = "platform"
NULL_RECEIVER = "null"
GROUP_BY = ["alertname", "namespace", "job"]
# The alert that says a scrape target is gone; its series carry `component` and `namespace`
# (prometheus.py's static job labels).
DOWN_ALERT = "ComponentDown"


def address(namespace: str) -> str:
    return f"{kube.service_host(ALERTMANAGER, namespace)}:{PORT}"


def url(namespace: str) -> str:
    return f"http://{address(namespace)}"


def telemetry(namespace: str, cfg: AlertmanagerConfig) -> tuple[Telemetry, ...]:
    return (
        Telemetry(
            ALERTMANAGER,
            targets=(ScrapeTarget(ALERTMANAGER, address(namespace)),),
            metrics=frozenset(
                {"alertmanager_notifications_total", "alertmanager_notifications_failed_total"}
            ),
            rules=("platform.yaml",),
            workloads=(Workload.of(ALERTMANAGER, statefulset_pods(ALERTMANAGER), cfg.resources),),
        ),
    )


def inhibit_rules(rule_files: Sequence[str]) -> list[dict[str, Any]]:
    """A component that is down silences its own symptoms: every alert whose rule sets a
    `component` label (its latency and error alerts) while ComponentDown fires for that
    component in the same namespace."""
    symptoms = sorted({alert for name in rule_files for alert in component_alerts(name)})
    if not symptoms:
        return []
    return [
        {
            "source_matchers": [f'alertname="{DOWN_ALERT}"'],
            "target_matchers": [f'alertname=~"{"|".join(symptoms)}"'],
            "equal": ["namespace", "component"],
        }
    ]


def _secret_file(key: str) -> str:
    return f"{SECRETS_DIR}/{key}"


def receiver_secrets(receivers: Receivers) -> dict[str, SecretStr]:
    """The Secret's keys and values: the credential of each receiver set."""
    found = {
        WEBHOOK_URL: receivers.webhook.url if receivers.webhook else None,
        SLACK_API_URL: receivers.slack.api_url if receivers.slack else None,
        SMTP_PASSWORD: receivers.email.password if receivers.email else None,
    }
    return {key: value for key, value in found.items() if value is not None}


def _receiver(receivers: Receivers) -> dict[str, Any]:
    receiver: dict[str, Any] = {"name": RECEIVER}
    if receivers.webhook:
        receiver["webhook_configs"] = [
            {
                "url_file": _secret_file(WEBHOOK_URL),
                "send_resolved": receivers.webhook.send_resolved,
            }
        ]
    if receivers.slack:
        receiver["slack_configs"] = [
            {
                "api_url_file": _secret_file(SLACK_API_URL),
                "channel": receivers.slack.channel,
                "send_resolved": receivers.slack.send_resolved,
            }
        ]
    if receivers.email:
        email = receivers.email
        receiver["email_configs"] = [
            {
                "to": ", ".join(email.to),
                "from": email.from_,
                "smarthost": email.smarthost,
                "auth_username": email.username,
                "auth_password_file": _secret_file(SMTP_PASSWORD),
                "require_tls": email.require_tls,
                "send_resolved": email.send_resolved,
            }
        ]
    return receiver


def alertmanager_config(cfg: AlertmanagerConfig, rule_files: Sequence[str]) -> dict[str, Any]:
    """alertmanager.yml: one route to the receivers set (or to `null`), the inhibitions."""
    delivering = bool(receiver_secrets(cfg.receivers))
    return {
        "route": {
            "receiver": RECEIVER if delivering else NULL_RECEIVER,
            "group_by": GROUP_BY,
            "group_wait": cfg.group_wait,
            "group_interval": cfg.group_interval,
            "repeat_interval": cfg.repeat_interval,
        },
        "inhibit_rules": inhibit_rules(rule_files),
        "receivers": [_receiver(cfg.receivers) if delivering else {"name": NULL_RECEIVER}],
    }


def build(
    cfg: AlertmanagerConfig,
    namespace: str,
    storage: kube.Storage,
    rule_files: Sequence[str],
    parent: pulumi.Resource,
) -> None:
    """Alertmanager with the routes and inhibitions of the rules Prometheus loads."""
    config_text = yaml.safe_dump(alertmanager_config(cfg, rule_files), sort_keys=False)
    secrets = receiver_secrets(cfg.receivers)
    needs: list[pulumi.Resource] = [
        k8s.core.v1.ConfigMap(
            "alertmanager-config",
            metadata=kube.metadata("alertmanager-config", namespace, ALERTMANAGER, "alerting"),
            data={"alertmanager.yml": config_text},
            opts=pulumi.ResourceOptions(parent=parent),
        )
    ]
    volumes: list[kube.Spec] = [
        {"name": "config", "configMap": {"name": "alertmanager-config"}},
    ]
    mounts: list[kube.Spec] = [
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]
    if secrets:
        data = {key: reveal(value) for key, value in secrets.items()}
        needs.append(kube.secret(SECRET, namespace, ALERTMANAGER, "alerting", data, parent))
        volumes.append({"name": "receivers", "secret": {"secretName": SECRET}})
        mounts.append({"name": "receivers", "mountPath": SECRETS_DIR, "readOnly": True})
    server = kube.container(
        ALERTMANAGER,
        versions.ALERTMANAGER_IMAGE,
        cfg.resources,
        ports={"http": PORT},
        probes=kube.Probes.server(
            kube.http_check("/-/ready", "http"), live=kube.http_check("/-/healthy", "http")
        ),
        args=[
            f"--config.file={CONFIG_DIR}/alertmanager.yml",
            f"--storage.path={DATA_DIR}",
            f"--web.listen-address=:{PORT}",
            # One replica: no gossip peers to find, so the cluster listener stays off.
            "--cluster.listen-address=",
        ],
        volumeMounts=mounts,
    )
    kube.service(ALERTMANAGER, namespace, ALERTMANAGER, "alerting", {"http": PORT}, parent)
    kube.stateful_set(
        ALERTMANAGER,
        namespace,
        "alerting",
        pod=kube.pod_spec(versions.ALERTMANAGER_UID, [server], volumes=volumes),
        size=cfg.storage_size,
        storage=storage,
        needs=needs,
        parent=parent,
        config_digest=kube.checksum(config_text),
        secret_digest=(
            kube.secret_digest(*(reveal(secrets[key]) for key in sorted(secrets)))
            if secrets
            else None
        ),
    )
