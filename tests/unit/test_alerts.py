"""Alert rules (infra/alerts): promtool accepts them, their unit tests pass, every alert is
tested firing and quiet, and every alert carries what a notification shows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import versions
from tests.support import tools
from tests.support.promql import metric_names
from tests.support.rendering import stack_rendering

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "infra" / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.yaml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.yaml"))
# What Prometheus 2.42 accepts, so the rules load on older servers too.
GROUP_KEYS = {"name", "interval", "limit", "rules"}
ALERT_KEYS = {"alert", "expr", "for", "labels", "annotations"}
SEVERITIES = {"warning", "critical"}


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def _alerts(rule_file: Path) -> list[dict[str, Any]]:
    return [r for g in _load(rule_file)["groups"] for r in g["rules"] if "alert" in r]


def _test_file(rule_file: Path) -> Path:
    return ALERTS / "tests" / f"{rule_file.stem}_test.yaml"


def _cases(test_file: Path) -> list[dict[str, Any]]:
    return [case for test in _load(test_file)["tests"] for case in test["alert_rule_test"]]


@pytest.fixture(scope="module")
def promtool() -> Path:
    """promtool of the pinned Prometheus version (scripts/prometheus.sh)."""
    return Path(tools.promtool())


def _run(promtool: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_is_the_pinned_prometheus_version(promtool: Path) -> None:
    result = _run(promtool, "--version")
    assert result.returncode == 0, result.stderr
    assert f"promtool, version {versions.PROMETHEUS_VERSION} " in result.stdout


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.stem)
def test_promtool_accepts_the_rule_file(promtool: Path, rule_file: Path) -> None:
    result = _run(promtool, "check", "rules", "--lint-fatal", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.stem)
def test_promtool_unit_tests_pass(promtool: Path, test_file: Path) -> None:
    result = _run(promtool, "test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_rule_file_has_one_test_file_that_loads_it() -> None:
    assert RULE_FILES
    assert sorted(_test_file(f) for f in RULE_FILES) == TEST_FILES
    for rule_file in RULE_FILES:
        assert _load(_test_file(rule_file))["rule_files"] == [f"../{rule_file.name}"]


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.stem)
def test_every_alert_is_tested_firing_and_quiet(rule_file: Path) -> None:
    names = {a["alert"] for a in _alerts(rule_file)}
    cases = _cases(_test_file(rule_file))
    # A case naming no alert of the file passes vacuously when it expects nothing.
    assert {c["alertname"] for c in cases} <= names
    for name in names:
        expected = [c.get("exp_alerts") or [] for c in cases if c["alertname"] == name]
        assert any(expected), f"{name}: no test case where it fires"
        assert not all(expected), f"{name}: no test case where it stays quiet"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.stem)
def test_every_alert_carries_severity_summary_and_description(rule_file: Path) -> None:
    alerts = _alerts(rule_file)
    assert alerts
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        assert "for" in alert, f"{name}: no explicit hold (for:)"
        annotations = alert["annotations"]
        assert annotations["summary"].strip(), name
        assert "{{" in annotations["description"], f"{name}: description is not templated"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.stem)
def test_rules_use_only_keys_prometheus_2_42_accepts(rule_file: Path) -> None:
    groups = _load(rule_file)["groups"]
    assert groups
    for group in groups:
        assert set(group) <= GROUP_KEYS, group["name"]
        for rule in group["rules"]:
            assert "alert" in rule, f"{group['name']}: only alerting rules belong here"
            assert set(rule) <= ALERT_KEYS, rule["alert"]


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.stem)
def test_rules_query_only_what_the_components_watched_declare(rule_file: Path) -> None:
    """Every series an alert reads is one a component that names the rule file exposes, and
    every job it selects is a declared scrape job, so a rename cannot silently blind it."""
    telemetry = stack_rendering("dev").telemetry
    watched = [t for t in telemetry if rule_file.name in t.rules]
    assert watched, f"no component names {rule_file.name}"
    series = {"up"} | {m for t in watched for m in t.metrics}
    jobs = {target.job for t in telemetry for target in t.targets}
    jobs |= {d.job for t in telemetry for d in t.discovery}
    for alert in _alerts(rule_file):
        unknown = metric_names(alert["expr"]) - series
        assert not unknown, f"{alert['alert']}: {sorted(unknown)}"
        for job in re.findall(r'job="([^"]+)"', alert["expr"]):
            assert job in jobs, f"{alert['alert']}: job {job} is not declared"
