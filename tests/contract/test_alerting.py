"""Alert delivery with the real servers: the pinned Prometheus evaluates the platform's rules and
sends to the pinned Alertmanager running the rendered alertmanager.yml, which delivers to a
webhook this test runs, and inhibits a component's symptoms while the component is down. The
pinned Pushgateway relays a pushed group to Prometheus with its labels.

Only what needs a cluster changes: the in-cluster addresses become loopback ones, the mounted
Secret's files move into a temporary directory, the intervals shrink to a second, and the
rules' holds (`for:`) drop to zero so the alerts fire at the first evaluation."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from mlops import render
from tests.support.monitoring import (
    Prometheus,
    loopback_alertmanager_config,
    loopback_prometheus_config,
    rules_firing_at_once,
    running_alertmanager,
    running_prometheus,
    running_pushgateway,
    webhook_receiver,
    webhook_secret,
    webhook_stack_rendering,
)
from tests.support.rendering import declared_metrics
from tests.support.servers import exposed_series, free_port


@pytest.fixture(scope="module")
def rendering() -> render.Rendering:
    """A stack with the webhook receiver on: `monitoring.alertmanager.receivers.webhook`."""
    return webhook_stack_rendering()


def test_a_firing_rule_reaches_the_webhook_and_a_down_component_inhibits_its_symptoms(
    rendering: render.Rendering, tmp_path: Path
) -> None:
    """Feast's scrape target is a closed port, so the real ComponentDown fires for feast; the
    Pushgateway answers, so it does not fire for it. FeatureServerErrors (feast's symptom) fires
    too and is inhibited; MlflowServerErrors (mlflow is not down) is delivered."""
    closed = f"127.0.0.1:{free_port()}"
    # The symptoms fire one evaluation after ComponentDown, as their longer holds order them in
    # a cluster, so Alertmanager has the inhibiting alert before it flushes their groups.
    after_down = 'vector(1) and on () count(ALERTS{alertname="ComponentDown", alertstate="firing"})'
    alerts = {
        "ComponentDown": None,
        "FeatureServerErrors": after_down,
        "MlflowServerErrors": after_down,
    }
    with (
        webhook_receiver() as receiver,
        running_pushgateway(work=tmp_path) as gateway,
        running_alertmanager(
            loopback_alertmanager_config(rendering), webhook_secret(rendering, receiver), tmp_path
        ) as alertmanager_url,
    ):
        jobs = {"feast": closed, "pushgateway": gateway}
        config = loopback_prometheus_config(rendering, jobs, alertmanager_url)
        with running_prometheus(
            config, rules_firing_at_once(rendering, alerts), work=tmp_path
        ) as prometheus:
            down = receiver.wait_for("ComponentDown", timeout=90)
            assert {k: down["labels"][k] for k in ("job", "component", "namespace")} == {
                "job": "feast",
                "component": "feast",
                "namespace": "mlops",
            }
            assert down["labels"]["severity"] == "critical"
            # Prometheus's external label names the platform the alert comes from.
            assert down["labels"]["platform"] == "mlops"
            assert down["annotations"]["summary"] == "feast is down"
            other = receiver.wait_for("MlflowServerErrors", timeout=60)
            assert other["labels"]["component"] == "mlflow"
            _assert_inhibited(alertmanager_url, "FeatureServerErrors", prometheus)
            assert not receiver.alerts("FeatureServerErrors")
            downs = {a["labels"]["job"] for a in receiver.alerts("ComponentDown")}
            assert downs == {"feast"}
            # What the dashboards and rules may read of Alertmanager, it exposes.
            with urllib.request.urlopen(f"{alertmanager_url}/metrics", timeout=10) as response:
                exposed = exposed_series(response.read().decode())
            declared = declared_metrics(rendering, "alertmanager")
            assert declared <= exposed, declared - exposed


def _assert_inhibited(alertmanager_url: str, alertname: str, prometheus: Prometheus) -> None:
    """Alertmanager holds the alert, inhibited; a few group intervals pass without it being
    delivered."""
    firing = {a["labels"]["alertname"] for a in prometheus.alerts() if a["state"] == "firing"}
    assert alertname in firing
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"{alertmanager_url}/api/v2/alerts", timeout=10) as response:
            held = [a for a in json.load(response) if a["labels"]["alertname"] == alertname]
        if held and held[0]["status"]["inhibitedBy"]:
            break
        assert time.monotonic() < deadline, held
        time.sleep(0.5)
    assert held[0]["status"]["state"] == "suppressed"
    time.sleep(3)


def test_a_pushed_group_is_scraped_with_its_labels_and_gone_once_deleted(
    rendering: render.Rendering, tmp_path: Path
) -> None:
    """The Pushgateway scrape job as rendered (`honor_labels`): the pushed job and grouping
    labels survive the scrape instead of becoming exported_job and the like."""
    with running_pushgateway(work=tmp_path) as gateway:
        config = loopback_prometheus_config(rendering, {"pushgateway": gateway})
        with running_prometheus(config, work=tmp_path) as prometheus:
            group = f"{gateway}/metrics/job/drift_check/feature_view/transactions"
            body = b'mlops_test_drift_share{feature="amount"} 0.42\n'
            request = urllib.request.Request(group, data=body, method="PUT")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
            [series] = prometheus.wait_for('mlops_test_drift_share{feature="amount"}')
            labels = series["metric"]
            assert labels["job"] == "drift_check"
            assert labels["feature_view"] == "transactions"
            assert "exported_job" not in labels
            assert series["value"][1] == "0.42"
            pushed = prometheus.wait_for('push_time_seconds{job="drift_check"}')
            assert pushed[0]["metric"]["feature_view"] == "transactions"
            with urllib.request.urlopen(f"{gateway}/metrics", timeout=10) as response:
                exposed = exposed_series(response.read().decode())
            declared = declared_metrics(rendering, "pushgateway")
            assert declared <= exposed, declared - exposed
            up = prometheus.query('up{job="pushgateway"}')
            assert up[0]["value"][1] == "1" and up[0]["metric"]["component"] == "pushgateway"

            delete = urllib.request.Request(group, method="DELETE")
            with urllib.request.urlopen(delete, timeout=10) as response:
                assert response.status == 202
            deadline = time.monotonic() + 30
            while prometheus.query('mlops_test_drift_share{job="drift_check"}'):
                assert time.monotonic() < deadline, "the deleted group is still scraped"
                time.sleep(0.5)
            with urllib.request.urlopen(f"{gateway}/metrics", timeout=10) as response:
                assert b"mlops_test_drift_share" not in response.read()
