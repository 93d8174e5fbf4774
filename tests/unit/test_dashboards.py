"""Grafana dashboards (infra/dashboards): valid JSON models laid out on the grid, one per enabled
component, querying only series the platform's Prometheus has, in PromQL promtool accepts."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.dashboards import DashboardContext, build_all, expressions
from infra.sizes import quantity
from mlops import render
from tests.support.promql import metric_names
from tests.support.rendering import STACKS, evaluate, pod_specs, stack_rendering
from tests.support.tools import promtool

UIDS = {
    "platform-overview.json": "mlops-overview",
    "model-serving.json": "mlops-serving",
    "model-monitoring.json": "mlops-model-monitoring",
    "feature-store.json": "mlops-feature-store",
    "training.json": "mlops-training",
}
SPECIAL_CASES = {
    "no-serving": {"kserve": {"enabled": False}},
    "no-feast-no-flyte": {"feast": {"enabled": False}, "flyte": {"enabled": False}},
}


def _rendering(case: str) -> render.Rendering:
    """A stack, or one of the special cases."""
    return evaluate(SPECIAL_CASES[case]) if case in SPECIAL_CASES else stack_rendering(case)


def _context(case: str) -> DashboardContext:
    r = _rendering(case)
    return DashboardContext(r.config.namespace, r.telemetry)


CASES = (*STACKS, "no-serving", "no-feast-no-flyte")


@cache
def _dashboards(case: str) -> dict[str, dict[str, Any]]:
    return build_all(_context(case))


def _all_dashboards() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for case in CASES:
        for name, board in _dashboards(case).items():
            yield case, name, board


def _visible_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    panels = list(board["panels"])
    for panel in board["panels"]:
        panels.extend(panel.get("panels", []))
    return panels


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.parametrize("case", CASES)
def test_every_dashboard_is_a_valid_json_model(case: str) -> None:
    for name, board in _dashboards(case).items():
        assert json.loads(json.dumps(board)) == board, name
        assert board["uid"] == UIDS[name]
        assert board["title"]
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 39
        assert board["tags"][0] == "mlops-platform"
        assert board["panels"], name
        ids = [p["id"] for p in _visible_panels(board) if "id" in p]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        for panel in _visible_panels(board):
            where = f"{name}: {panel.get('title')!r}"
            assert panel["type"] and panel["title"], where
            pos = panel["gridPos"]
            assert all(isinstance(pos[k], int) for k in ("h", "w", "x", "y")), where
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, where
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, where
            targets = panel["targets"]
            assert targets and all(t["expr"].strip() for t in targets), where
            refs = [t["refId"] for t in targets]
            assert len(refs) == len(set(refs)), f"{where}: refIds repeat"
            assert panel["fieldConfig"]["defaults"]["unit"], f"{where}: no unit"


@pytest.mark.parametrize("case", CASES)
def test_no_panels_overlap(case: str) -> None:
    for name, board in _dashboards(case).items():
        panels = _visible_panels(board)
        for i, a in enumerate(panels):
            for b in panels[i + 1 :]:
                assert not _overlap(a["gridPos"], b["gridPos"]), (
                    f"{name}: {a['title']!r} overlaps {b['title']!r}"
                )


def test_dashboards_follow_the_enabled_components() -> None:
    assert set(_dashboards("dev")) == set(UIDS)
    serving = {"model-serving.json", "model-monitoring.json"}
    assert set(_dashboards("no-serving")) == set(UIDS) - serving
    assert set(_dashboards("no-feast-no-flyte")) == {"platform-overview.json", *serving}


def test_uids_are_the_same_in_every_stack() -> None:
    for _, name, board in _all_dashboards():
        assert board["uid"] == UIDS[name]


def test_metric_names_are_found_past_labels_ranges_and_functions() -> None:
    expr = (
        'sum by (pod, le) (rate(made_up_total{job="x", path=~"a|b{5}"}[5m] offset 1h)) '
        "/ on (pod) group_left (le) ignoring_not:a_keyword * 1e3 > bool 0.5 "
        'or max without (quantile) (other_seconds{quantile="0.9"})[1h:1m]'
    )
    assert metric_names(expr) == {"made_up_total", "ignoring_not:a_keyword", "other_seconds"}
    known = {"other_seconds", "ignoring_not:a_keyword"}
    assert metric_names(expr) - known == {"made_up_total"}


@pytest.mark.parametrize("case", CASES)
def test_dashboards_query_only_known_series(case: str) -> None:
    context = _context(case)
    known = {"up"} | {m for t in context.telemetry for m in t.metrics}
    for name, board in _dashboards(case).items():
        for expr in expressions(board):
            # A name in a matcher would escape the check.
            assert "__name__" not in expr, expr
            unknown = metric_names(expr) - known
            assert not unknown, f"{name}: {sorted(unknown)} in {expr}"


def test_expressions_pass_promtool(tmp_path: Path) -> None:
    tool = promtool()
    unique = sorted({expr for _, _, board in _all_dashboards() for expr in expressions(board)})
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(unique)]
    rule_file = tmp_path / "dashboards.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [tool, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def _query(name: str, title: str, legend: str | None = None) -> str:
    """The dev stack's query of a panel (the one with `legend` when it has several)."""
    board = _dashboards("dev")[name]
    (panel,) = [p for p in board["panels"] if p["title"] == title]
    (target,) = [t for t in panel["targets"] if legend in (None, t["legendFormat"])]
    return target["expr"]  # type: ignore[no-any-return]


def _case(
    series: dict[str, str], expr: str, expected: dict[str, float], at: str = "60m"
) -> dict[str, Any]:
    """A promtool unit test: input series (notation -> values), one query and its result."""
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "promql_expr_test": [
            {
                "expr": expr,
                "eval_time": at,
                "exp_samples": [{"labels": k, "value": v} for k, v in expected.items()],
            }
        ],
    }


def test_queries_compute_what_their_panels_claim(tmp_path: Path) -> None:
    """The queries whose correctness is not plain to see, on made-up series (dev stack)."""
    tool = promtool()
    pod, other_pod = "mlflow-7d9f8b6c4-x2x7q", "mlflow-7d9f8b6c4-k8s9z"
    started = (
        'container_start_time_seconds{{namespace="mlops", pod="{}", container="mlflow", id="{}"}}'
    )
    restarts = _query("platform-overview.json", "Container restarts in the last hour", "mlflow")
    cpu = _usage_queries("dev", "CPU usage / request")["mlflow"]
    errors = "Error ratio (MLServer)"
    http_errors = _query("model-serving.json", errors, "{{inferenceservice}} HTTP 5xx")
    model_failures = _query("model-serving.json", errors, "{{inferenceservice}} inference failures")
    success_ratio = _query("training.json", "Success ratio (6 h)")
    isvc = (
        'job="inference", namespace="mlops-models", pod="fraud-predictor-0", '
        'inferenceservice="fraud"'
    )
    runs = 'job="flyte", project="fraud", domain="development", wf="training.train"'
    tests = [
        # A restarted container is a new series (new id): one restart.
        _case(
            {started.format(pod, "a"): "100x30", started.format(pod, "b"): "_x30 1900x30"},
            restarts,
            {"{}": 1},
        ),
        # A rollout replaces the pod: no restart.
        _case(
            {started.format(pod, "a"): "100x30", started.format(other_pod, "b"): "_x30 1900x30"},
            restarts,
            {"{}": 0},
        ),
        # 3 CPU-seconds a minute is 0.05 cores: half of mlflow's 0.1-core request.
        _case(
            {
                f'container_cpu_usage_seconds_total{{namespace="mlops", pod="{pod}", '
                'container="mlflow"}': "0+3x60"
            },
            cpu,
            {f'{{pod="{pod}"}}': 0.5},
        ),
        # No request has failed yet, so there is no 5xx series: the ratio is 0, not missing.
        _case(
            {
                f'rest_server_requests_total{{{isvc}, path="/v2/models/fraud/infer", '
                'status_code="200"}': "0+10x60"
            },
            http_errors,
            {'{inferenceservice="fraud"}': 0},
        ),
        # Every inference failed, so there is no success series: the ratio is 1.
        _case(
            {f"model_infer_request_failure_total{{{isvc}}}": "0+10x60"},
            model_failures,
            {'{inferenceservice="fraud"}': 1},
        ),
        # Runs only succeeded, so there is no failure series: the ratio is 1.
        _case(
            {f"flyte:propeller:all:workflow:success_duration_ms_count{{{runs}}}": "0+1x360"},
            success_ratio,
            {'{domain="development", project="fraud"}': 1},
            at="6h",
        ),
    ]
    test_file = tmp_path / "queries_test.yaml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": tests})
    )
    result = subprocess.run(
        [tool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_overview_has_an_up_panel_per_scraped_component(stack: str) -> None:
    context = _context(stack)
    overview = _dashboards(stack)["platform-overview.json"]
    titles = {p["title"]: p for p in overview["panels"]}
    for telemetry in context.telemetry:
        if not telemetry.targets:
            continue
        panel = titles[f"{telemetry.component} up"]
        (target,) = panel["targets"]
        assert target["expr"] == f'min(up{{job="{telemetry.targets[0].job}"}})'


def _usage_queries(stack: str, title: str) -> dict[str, str]:
    """The overview's usage query of each workload, by the container it selects."""
    overview = _dashboards(stack)["platform-overview.json"]
    (panel,) = [p for p in overview["panels"] if p["title"] == title]
    queries = {}
    for target in panel["targets"]:
        container = re.search(r'container="([^"]+)"', target["expr"])
        assert container, target["expr"]
        queries[container.group(1)] = target["expr"]
    return queries


@pytest.mark.parametrize("stack", STACKS)
def test_usage_panels_divide_by_each_workloads_request(stack: str) -> None:
    workloads = [w for t in _context(stack).telemetry for w in t.workloads]
    cpu = _usage_queries(stack, "CPU usage / request")
    memory = _usage_queries(stack, "Memory working set / request")
    assert set(cpu) == set(memory) == {w.name for w in workloads}
    for w in workloads:
        assert f'pod=~"{w.pods}"' in cpu[w.name]
        assert float(cpu[w.name].rsplit("/", 1)[1]) == pytest.approx(w.cpu_request)
        assert float(memory[w.name].rsplit("/", 1)[1]) == pytest.approx(w.memory_request)


def test_dev_mlflow_usage_is_against_its_requests() -> None:
    assert _usage_queries("dev", "CPU usage / request")["mlflow"].endswith(") / 0.1")
    assert _usage_queries("dev", "Memory working set / request")["mlflow"].endswith(") / 536870912")


@pytest.mark.parametrize("stack", STACKS)
def test_workload_requests_are_their_main_containers(stack: str) -> None:
    """The usage panels select each workload's container by the workload's name and compare it
    with the declared requests: the pods must have that container with those requests."""
    rendering = stack_rendering(stack)
    containers = {
        c["name"]: c["resources"]["requests"]
        for owner, spec in pod_specs(rendering)
        if owner.split("/")[0] in ("Deployment", "StatefulSet")
        for c in spec["containers"]
    }
    for w in (w for t in rendering.telemetry for w in t.workloads):
        assert w.name in containers, f"no Deployment or StatefulSet container named {w.name}"
        assert quantity(containers[w.name]["cpu"]) == pytest.approx(w.cpu_request)
        assert quantity(containers[w.name]["memory"]) == pytest.approx(w.memory_request)


def test_freshness_panel_marks_the_staleness_threshold() -> None:
    board = _dashboards("dev")["feature-store.json"]
    (panel,) = [p for p in board["panels"] if p["title"] == "Feature freshness"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 3600} in steps
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"


def test_model_monitoring_shows_every_retraining_outcome_the_check_pushes() -> None:
    from infra.dashboards import model_monitoring
    from workloads.monitoring.metrics import OUTCOMES

    assert set(model_monitoring.OUTCOME_CODES) == set(OUTCOMES)
    codes = {str(code) for code in model_monitoring.OUTCOME_CODES.values()}
    assert codes | {"0"} == set(model_monitoring.OUTCOMES)
