"""Monitoring: Prometheus (`prometheus.py`), Alertmanager (`alertmanager.py`), the Pushgateway
(`pushgateway.py`) and Grafana (`grafana.py`), configured from what every component declares
about itself (`infra/observability.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from infra import kube, network
from infra.components import alertmanager, grafana, prometheus, pushgateway
from infra.config import MonitoringConfig, Receivers
from infra.observability import Telemetry


@dataclass(frozen=True)
class MonitoringArgs:
    config: MonitoringConfig
    namespace: str
    # Prometheus's and Alertmanager's data volumes.
    storage: kube.Storage
    # The other components' declarations.
    telemetry: Sequence[Telemetry]
    # The components whose login Prometheus scrapes with: it starts once they set it.
    needs: Sequence[pulumi.Resource] = ()


class Monitoring(pulumi.ComponentResource):
    prometheus_url: str
    grafana_url: str
    alertmanager_url: str
    # Where batch jobs push their metrics (the drift workflow's tasks).
    pushgateway_url: str
    # Its own declarations: its servers and the kubelet series Prometheus collects.
    telemetry: tuple[Telemetry, ...]
    network: network.Network
    # The stack outputs, under the key "monitoring".
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Monitoring", name, None, opts)
        cfg, ns = args.config, args.namespace
        self.telemetry = (
            *prometheus.telemetry(ns, cfg),
            *alertmanager.telemetry(ns, cfg.alertmanager),
            *pushgateway.telemetry(ns, cfg.pushgateway),
            *grafana.telemetry(ns, cfg),
        )
        everything = (*args.telemetry, *self.telemetry)
        self.prometheus_url = prometheus.url(ns)
        self.grafana_url = grafana.url(ns)
        self.alertmanager_url = alertmanager.url(ns)
        self.pushgateway_url = pushgateway.url(ns)
        rule_files = prometheus.rule_files(everything)
        self.network = monitoring_network(cfg, ns)
        prometheus.build(
            cfg, ns, args.storage, everything, alertmanager.address(ns), args.needs, self
        )
        alertmanager.build(cfg.alertmanager, ns, args.storage, rule_files, self)
        pushgateway.build(cfg.pushgateway, ns, self)
        grafana.build(cfg, ns, self.prometheus_url, everything, self)
        external = {
            key: ingress.urls[0]
            for key, ingress in [
                ("prometheusExternalUrl", cfg.prometheus_ingress),
                ("grafanaExternalUrl", cfg.grafana.ingress),
            ]
            if ingress
        }
        self.outputs = {
            "monitoring": {
                "prometheusUrl": self.prometheus_url,
                "grafanaUrl": self.grafana_url,
                "alertmanagerUrl": self.alertmanager_url,
                "pushgatewayUrl": self.pushgateway_url,
                **external,
            }
        }
        self.register_outputs(self.outputs)


def listener(component: str, namespace: str, port: int) -> network.Listener:
    pods = network.component_pods(component, namespace, kube.selector(component))
    return network.Listener(pods, {"http": port}, (kube.service_host(component, namespace),))


def receivers(receivers: Receivers) -> tuple[network.Address, ...]:
    """Where Alertmanager delivers: outside the cluster, on the receivers' ports."""
    found = []
    if receivers.webhook:
        port = network.url_address(receivers.webhook.url.get_secret_value()).port
        found.append(network.outside("the webhook receiver", port))
    if receivers.slack:
        port = network.url_address(receivers.slack.api_url.get_secret_value()).port
        found.append(network.outside("Slack", port))
    if receivers.email:
        host, _, number = receivers.email.smarthost.rpartition(":")
        found.append(network.outside(host, int(number)))
    return tuple(found)


def monitoring_network(cfg: MonitoringConfig, namespace: str) -> network.Network:
    """Prometheus scrapes every declared target (the Platform resolves them), calls the API
    server and alerts Alertmanager; Grafana queries Prometheus; Alertmanager delivers."""
    servers = {
        name: listener(name, namespace, port)
        for name, port in [
            (prometheus.PROMETHEUS, prometheus.PORT),
            (alertmanager.ALERTMANAGER, alertmanager.PORT),
            (pushgateway.PUSHGATEWAY, pushgateway.PORT),
            (grafana.GRAFANA, grafana.PORT),
        ]
    }
    scraper = servers[prometheus.PROMETHEUS].pods
    exposed = [
        servers[name].at("http")
        for name, ingress in [
            (prometheus.PROMETHEUS, cfg.prometheus_ingress),
            (grafana.GRAFANA, cfg.grafana.ingress),
        ]
        if ingress
    ]
    alerting = servers[alertmanager.ALERTMANAGER].pods
    return network.Network(
        "monitoring",
        pods=tuple(server.pods for server in servers.values()),
        listeners=tuple(servers.values()),
        edges=(
            network.Edge(scraper, servers[alertmanager.ALERTMANAGER].at("http")),
            network.Edge(servers[grafana.GRAFANA].pods, servers[prometheus.PROMETHEUS].at("http")),
            *(network.Edge(alerting, address) for address in receivers(cfg.alertmanager.receivers)),
        ),
        api_server=(scraper,),
        scraper=scraper,
        exposed=tuple(exposed),
    )
