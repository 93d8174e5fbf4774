"""Telemetry declarations: the thresholds dashboards draw are the alert rules' own."""

from __future__ import annotations

import json

import pytest

from infra.observability import alert_names, threshold
from tests.support.rendering import stack_rendering


def test_an_alerts_threshold_is_read_from_its_rule() -> None:
    assert threshold("storage.yaml", "VolumeFillingUp") == 0.85
    assert threshold("feature_store.yaml", "FeatureMaterializationStale") == 3600
    assert "InferenceErrorBudgetBurn" in alert_names("serving.yaml")


def test_an_alert_comparing_against_two_numbers_has_no_single_threshold() -> None:
    # RedisMemoryNearLimit compares usage with 0.9 and the limit with 0.
    with pytest.raises(ValueError, match="not one threshold"):
        threshold("storage.yaml", "RedisMemoryNearLimit")


def _threshold_lines(board: dict[str, object], title: str) -> list[float]:
    (panel,) = [p for p in board["panels"] if p["title"] == title]  # type: ignore[attr-defined]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [s["value"] for s in steps if s["value"] is not None]


def test_dashboards_draw_the_lines_where_the_alerts_fire() -> None:
    data = stack_rendering("dev").find("ConfigMap", "grafana-dashboards").inputs["data"]
    boards = {name: json.loads(text) for name, text in data.items()}
    assert _threshold_lines(boards["platform-overview.json"], "Volume usage") == [
        threshold("storage.yaml", "VolumeFillingUp"),
        threshold("storage.yaml", "VolumeAlmostFull"),
    ]
    assert _threshold_lines(boards["model-serving.json"], "Error ratio (MLServer)") == [
        threshold("serving.yaml", "InferenceErrorBudgetBurn")
    ]
    assert _threshold_lines(boards["feature-store.json"], "Feature freshness") == [
        threshold("feature_store.yaml", "FeatureMaterializationStale")
    ]
    # The alert fires above a share of failures; the panel shows the share of successes.
    assert _threshold_lines(boards["training.json"], "Success ratio (6 h)") == [
        1 - threshold("training.yaml", "TrainingWorkflowsFailing")
    ]


def test_kserve_declares_its_predictor_discovery_in_the_model_namespace() -> None:
    telemetry = {t.component: t for t in stack_rendering("prod").telemetry}
    (discovery,) = telemetry["kserve"].discovery
    assert (discovery.job, discovery.namespace) == ("inference", "mlops-models")
    assert discovery.label == "serving.kserve.io/inferenceservice"
    assert all(not t.discovery for name, t in telemetry.items() if name != "kserve")
