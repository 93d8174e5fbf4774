"""What every platform dashboard shares: the context it is built from, the datasource, PromQL
helpers and panel builders with the platform's defaults.

Expressions are plain PromQL (fixed `[5m]` windows, no Grafana variables), so promtool checks
them as they are written here.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from infra.kube import PART_OF
from infra.observability import Telemetry, alert_names, threshold

with warnings.catch_warnings():
    # The SDK warns, on import, that a v2 dashboard schema exists; file provisioning, which the
    # monitoring component uses, reads the classic JSON model built here.
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import prometheus, stat, timeseries
    from grafana_foundation_sdk.builders.common import (
        GraphThresholdsStyleConfig,
        ReduceDataOptions,
        VizLegendOptions,
        VizTooltipOptions,
    )
    from grafana_foundation_sdk.builders.dashboard import Dashboard, Row, ThresholdsConfig
    from grafana_foundation_sdk.cog import builder as cogbuilder
    from grafana_foundation_sdk.cog import variants as cogvariants
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import dashboard as schema
    from grafana_foundation_sdk.models.common import (
        BigValueColorMode,
        BigValueGraphMode,
        DataSourceRef,
        GraphThresholdsStyleMode,
        LegendDisplayMode,
        LegendPlacement,
        SortOrder,
        TooltipDisplayMode,
    )
    from grafana_foundation_sdk.models.dashboard import (
        Threshold,
        ThresholdsMode,
        ValueMap,
        ValueMapping,
        ValueMappingResult,
    )

Panel = cogbuilder.Builder[schema.Panel]
Target = cogbuilder.Builder[cogvariants.Dataquery]

# The Prometheus datasource Grafana is provisioned with.
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
RATE_WINDOW = "5m"
# cAdvisor reports a pod-level cgroup (no container) and the pause container besides the real ones.
REAL_CONTAINERS = ('container!=""', 'container!="POD"')


@dataclass(frozen=True)
class DashboardContext:
    namespace: str  # the platform namespace, e.g. "mlops"
    telemetry: tuple[Telemetry, ...]  # the declarations of every enabled component

    def component(self, name: str) -> Telemetry | None:
        return next((t for t in self.telemetry if t.component == name), None)

    def require(self, name: str) -> Telemetry:
        found = self.component(name)
        if found is None:
            raise KeyError(f"component {name} is not enabled: it declared no telemetry")
        return found

    def threshold(self, alert: str) -> float:
        """Where an alert of an enabled component's rule files fires."""
        for rule_file in sorted({name for t in self.telemetry for name in t.rules}):
            if alert in alert_names(rule_file):
                return threshold(rule_file, alert)
        raise KeyError(f"no enabled component's rules define the alert {alert}")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


# PromQL


def equals(label: str, value: str) -> str:
    # A JSON string is a valid PromQL string literal: the same escapes, double quotes.
    return f"{label}={json.dumps(value)}"


def matches(label: str, pattern: str) -> str:
    return f"{label}=~{json.dumps(pattern)}"


def selector(metric: str, *matchers: str) -> str:
    return f"{metric}{{{', '.join(matchers)}}}"


def job(telemetry: Telemetry) -> str:
    """The matcher for a component's scrape jobs (job names are unique within the platform's
    Prometheus, so no namespace is needed)."""
    jobs = sorted({target.job for target in telemetry.targets})
    if not jobs:
        raise ValueError(f"component {telemetry.component} has no scrape target")
    return equals("job", jobs[0]) if len(jobs) == 1 else matches("job", "|".join(jobs))


def rate(series: str, window: str = RATE_WINDOW) -> str:
    return f"rate({series}[{window}])"


def quantile(q: float, buckets: str, by: Sequence[str] = ()) -> str:
    """A quantile of a histogram's `_bucket` series over the rate window, kept per `by`."""
    return f"histogram_quantile({q}, sum by ({', '.join([*by, 'le'])}) ({rate(buckets)}))"


def or_zero(vector: str, peer: str) -> str:
    """`vector`, or 0 for each series of `peer` (same labels) it lacks: a counter whose labels
    have not been seen yet has no series at all."""
    return f"({vector} or 0 * {peer})"


def number(value: float) -> str:
    """A float as a PromQL literal; integral values without a fraction (536870912)."""
    return f"{value:.0f}" if value.is_integer() else repr(value)


# Panels


def _ref_id(index: int) -> str:
    """Grafana's query letters: A … Z, then AA, AB …"""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _targets(queries: Sequence[Query], instant: bool = False) -> list[Target]:
    targets: list[Target] = []
    for i, q in enumerate(queries):
        target = prometheus.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(_ref_id(i))
        targets.append(target.instant() if instant else target.range())
    return targets


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def graph(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    width: int = 12,
    height: int = 8,
    lines: Sequence[tuple[float, str]] = (),
    min_value: float | None = None,
) -> timeseries.Panel:
    """A time series panel; `lines` are (value, colour) threshold lines drawn across it."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(height)
        .targets(_targets(queries))
        .legend(
            VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
        )
        .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )
    if min_value is not None:
        panel = panel.min(min_value)
    if lines:
        panel = panel.thresholds(_thresholds([(None, "green"), *lines])).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED)
        )
    return panel


def single_stat(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    steps: Sequence[tuple[float | None, str]],
    *,
    width: int,
    height: int = 4,
    texts: dict[str, tuple[str, str]] | None = None,
) -> stat.Panel:
    """A stat panel showing each query's latest value, coloured by `steps` (the first has no
    value: it is the base colour); `texts` shows values as words: value -> (text, colour)."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(height)
        # Only the latest value is shown: one evaluation instead of one per graph step.
        .targets(_targets(queries, instant=True))
        .thresholds(_thresholds(steps))
        .graph_mode(BigValueGraphMode.NONE)
        .color_mode(BigValueColorMode.BACKGROUND)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if texts:
        options = {v: ValueMappingResult(text=t, color=c) for v, (t, c) in texts.items()}
        value_maps: list[ValueMapping] = [ValueMap(options=options)]
        panel = panel.mappings(value_maps)
    return panel


def row(title: str) -> Row:
    return Row(title)


def dashboard(
    uid: str, title: str, description: str, tags: Iterable[str], since: str = "now-6h"
) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([PART_OF, *tags])
        .refresh("1m")
        .time(since, "now")
        .timezone("browser")
        .readonly()
    )


def model(built: Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model, its panels numbered in order (Grafana links panels by id)."""
    encoded: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(built.build()))
    for panel_id, panel in enumerate(encoded.get("panels", []), start=1):
        panel["id"] = panel_id
    return encoded
