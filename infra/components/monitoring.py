"""Monitoring: Prometheus (`prometheus.py`) and Grafana (`grafana.py`), configured from what
every component declares about itself (`infra/observability.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from infra import kube
from infra.components import grafana, prometheus
from infra.config import MonitoringConfig
from infra.observability import Telemetry


@dataclass(frozen=True)
class MonitoringArgs:
    config: MonitoringConfig
    namespace: str
    # Prometheus's data volume.
    storage: kube.Storage
    # The other components' declarations.
    telemetry: Sequence[Telemetry]


class Monitoring(pulumi.ComponentResource):
    prometheus_url: str
    grafana_url: str
    # Its own declarations: Prometheus, Grafana and the kubelet series Prometheus collects.
    telemetry: tuple[Telemetry, ...]
    # The stack outputs, under the key "monitoring".
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Monitoring", name, None, opts)
        cfg, ns = args.config, args.namespace
        self.telemetry = (*prometheus.telemetry(ns, cfg), *grafana.telemetry(ns, cfg))
        everything = (*args.telemetry, *self.telemetry)
        self.prometheus_url = prometheus.url(ns)
        self.grafana_url = grafana.url(ns)
        prometheus.build(cfg, ns, args.storage, everything, self)
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
                **external,
            }
        }
        self.register_outputs(self.outputs)
