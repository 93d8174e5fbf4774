"""The monitoring loop, run for real on the golden path's platform: the champion served with
its predictions logged to S3, the drift check (`pyflyte run` of workloads/monitoring) reading
them against the champion's training reference, its figures pushed to the pinned Pushgateway,
scraped by the pinned Prometheus evaluating the platform's rules, and FeatureDriftHigh
delivered by the pinned Alertmanager (the rendered alertmanager.yml) to a webhook this test
runs; retraining launched by the check through the training workflow and its gates.

Only what needs a cluster changes: loopback addresses, a second for the scrape, evaluation
and grouping intervals, and the local launcher (`pyflyte run`) in place of FlyteRemote.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlops import render
from tests.support.golden import VENV_BIN, Stack, serving
from tests.support.kserve import fetch_like_storage_initializer
from tests.support.monitoring import (
    Prometheus,
    Receiver,
    loopback_alertmanager_config,
    loopback_prometheus_config,
    running_alertmanager,
    running_prometheus,
    running_pushgateway,
    webhook_receiver,
    webhook_secret,
    webhook_stack_rendering,
)
from tests.support.servers import free_port
from tests.support.tools import require_module

mlflow = require_module("mlflow", "the workloads dependency group")
boto3 = require_module("boto3", "the workloads dependency group")
from mlops.demo.data import RUN_AT, SEED, Transaction, seeded, transactions_of  # noqa: E402
from mlops.demo.serving import predict  # noqa: E402
from workloads.feature_repo.datagen import fraud_events  # noqa: E402
from workloads.model_inputs import MODEL_NAME  # noqa: E402
from workloads.monitoring import log_store, retraining  # noqa: E402
from workloads.training import registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Seeded traffic: transactions of the data, scored in batches.
TRAFFIC_ROWS, BATCH = 800, 20
# The drifted traffic: amounts tripled, and only the three busiest merchants.
AMOUNT_FACTOR, MERCHANTS = 3.0, 3
# Gates no challenger can pass, and gates every challenger passes.
STRICT = {"min_roc_auc": 0.85, "min_pr_auc": 0.5, "min_improvement": 1.0}
LENIENT = {"min_roc_auc": 0.0, "min_pr_auc": 0.0, "min_improvement": -1.0}


@dataclass
class Loop:
    stack: Stack
    url: str
    env: dict[str, str]
    champion: str
    prometheus: Prometheus
    receiver: Receiver
    log: log_store.LogLocation

    def score(self, rows: list[Transaction]) -> datetime:
        return score(self.url, rows)

    def logged(self) -> float:
        """Records written to the log so far, from the transformer's /metrics."""
        return counted(self.url, "prediction_log_records_total")

    def wait_logged(self, count: float, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.logged() < count:
            assert time.monotonic() < deadline, f"{self.logged()} of {count} records logged"
            time.sleep(0.2)

    def check(self, run_at: datetime, *args: str) -> subprocess.Popen[str]:
        """`pyflyte run` of the drift check at `run_at` (to the second), started."""
        command = [
            str(VENV_BIN / "pyflyte"),
            "run",
            "workloads/monitoring/workflow.py",
            "drift_check",
            f"--run_at={run_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S}",
            *args,
        ]
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def after(moment: datetime) -> datetime:
    """The next whole second after `moment`: a window ending then holds it."""
    return (moment + timedelta(seconds=1)).replace(microsecond=0)


def score(url: str, rows: list[Transaction]) -> datetime:
    """Scores the rows in batches, each with a request id, as `mlops demo score` sends them;
    the time before the first."""
    started = datetime.now(UTC)
    for i in range(0, len(rows), BATCH):
        predict(url, rows[i : i + BATCH], request_id=f"req-{i}", timeout=30)
    return started


def finished(process: subprocess.Popen[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The drift check's outputs (the DriftCheck and the Retraining) once it succeeded."""
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stdout[-3000:] + stderr[-5000:]
    outputs = retraining.printed_outputs(stdout)
    assert outputs, stdout[-3000:]
    return outputs["o0"], outputs["o1"]


def transactions() -> list[Transaction]:
    """Transactions of the reference data's last week, in a seeded order."""
    events = seeded().transactions
    recent = events[events["event_timestamp"] >= fraud_events.END - timedelta(days=7)]
    return transactions_of(recent.sample(TRAFFIC_ROWS, random_state=SEED))


def drifted(rows: list[Transaction]) -> list[Transaction]:
    events = seeded().transactions
    busiest = events["merchant_id"].value_counts().index[:MERCHANTS].tolist()
    return [
        replace(row, amount=row.amount * AMOUNT_FACTOR, merchant_id=int(busiest[i % MERCHANTS]))
        for i, row in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def monitoring_rendering() -> render.Rendering:
    return webhook_stack_rendering()


@pytest.fixture(scope="module")
def loop(
    stack: Stack,
    first: tuple[dict[str, Any], dict[str, Any]],
    monitoring_rendering: render.Rendering,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Loop]:
    work = tmp_path_factory.mktemp("monitoring")
    client = stack.client()
    champion = client.get_model_version_by_alias(MODEL_NAME, registry.CHAMPION)
    manifest = first[1]
    model_dir = work / "mnt-models"
    fetch_like_storage_initializer(
        stack.rendering, manifest["spec"]["predictor"]["model"]["storageUri"], stack.s3, model_dir
    )
    log_uri = f"s3://predictions/test-{uuid.uuid4().hex[:8]}"
    s3_env = {
        "MLOPS_PREDICTION_LOG_URI": log_uri,
        "AWS_ENDPOINT_URL": stack.s3.endpoint,
        "AWS_ACCESS_KEY_ID": stack.s3.access_key,
        "AWS_SECRET_ACCESS_KEY": stack.s3.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    logging = {**s3_env, "MLOPS_PREDICTION_LOG_FLUSH_SECONDS": "0.5"}
    with (
        webhook_receiver() as receiver,
        running_pushgateway(work) as gateway,
        running_alertmanager(
            loopback_alertmanager_config(monitoring_rendering),
            webhook_secret(monitoring_rendering, receiver),
            work,
        ) as alertmanager_url,
        running_prometheus(
            loopback_prometheus_config(
                monitoring_rendering,
                {"pushgateway": gateway.removeprefix("http://")},
                alertmanager_url,
            ),
            {"model_monitoring.yaml": (ROOT / "infra/alerts/model_monitoring.yaml").read_text()},
            work=work,
        ) as prometheus,
        serving(stack, manifest, model_dir, work / "serving", logging) as url,
    ):
        env = {
            **stack.env(),
            **s3_env,
            "MLOPS_PUSHGATEWAY_URL": gateway,
            "MLOPS_RETRAINING_LAUNCHER": "local",
        }
        yield Loop(
            stack,
            url,
            env,
            champion.version,
            prometheus,
            receiver,
            log_store.LogLocation.parse(log_uri),
        )


def test_reference_like_traffic_is_no_drift_and_launches_nothing(loop: Loop) -> None:
    rows = transactions()
    start = loop.score(rows)
    loop.wait_logged(len(rows))
    s3 = boto3.client(
        "s3",
        endpoint_url=loop.stack.s3.endpoint,
        aws_access_key_id=loop.stack.s3.access_key,
        aws_secret_access_key=loop.stack.s3.secret_key,
        region_name="us-east-1",
    )
    logged = log_store.read_window(
        loop.log, MODEL_NAME, start, datetime.now(UTC) + timedelta(seconds=1), s3
    )
    assert len(logged) == len(rows)
    assert set(logged["model_version"]) == {loop.champion}
    assert logged["request_id"].str.startswith("req-").all()
    fields = ["customer_id", "merchant_id", "amount"]
    assert logged[fields].to_dict("records") == [row.instance() for row in rows]

    end = after(datetime.now(UTC))
    hours = (end - start).total_seconds() / 3600 + 1e-4
    check, retraining = finished(loop.check(end, f"--window_hours={hours}"))
    print(f"reference-like traffic: {check['summary']}")
    assert check["verdict"] == "no drift", check
    assert check["rows"] == len(rows) and check["model_version"] == loop.champion
    assert retraining == {"launched": False, "reason": "no drift", "execution": "", "outcome": ""}
    shares = loop.prometheus.wait_for(
        f'model_drifted_features_share{{model_name="{MODEL_NAME}"}}', timeout=30
    )
    assert float(shares[0]["value"][1]) == pytest.approx(check["drifted_share"])
    assert not [
        a for a in loop.prometheus.alerts() if a["labels"]["alertname"] == "FeatureDriftHigh"
    ]
    # The report is in MLflow, with the figures.
    run = loop.stack.client().get_run(check["mlflow_run_id"])
    assert run.data.tags["verdict"] == "no drift"
    assert {a.path for a in loop.stack.client().list_artifacts(run.info.run_id, "drift")} == {
        "drift/drift_report.html"
    }


def test_drifted_traffic_alerts_through_alertmanager_and_retrains_through_the_gates(
    loop: Loop,
) -> None:
    client = loop.stack.client()
    versions_before = {v.version for v in client.search_model_versions(f"name = '{MODEL_NAME}'")}
    rows = drifted(transactions())
    start = loop.score(rows)
    loop.wait_logged(2 * len(rows))
    end = after(datetime.now(UTC))
    hours = (end - start).total_seconds() / 3600 + 1e-4
    # Retrained on the window the data has, with gates no challenger passes.
    process = loop.check(
        end,
        f"--window_hours={hours}",
        f"--training_run_at={(RUN_AT - timedelta(days=1)).isoformat()}",
        f"--gates={json.dumps(STRICT)}",
    )
    alert = loop.receiver.wait_for("FeatureDriftHigh", timeout=600)
    alerted = (datetime.now(UTC) - start).total_seconds()
    check, retraining = finished(process)
    print(f"drifted traffic: {check['summary']}; FeatureDriftHigh delivered {alerted:.1f} s after")
    assert check["verdict"] == "drift" and check["drifted_share"] >= check["threshold"], check
    assert alert["labels"]["model_name"] == MODEL_NAME
    assert alert["labels"]["model_version"] == loop.champion
    assert alert["labels"]["severity"] == "warning"
    features = loop.prometheus.query(
        f'model_feature_drifted{{model_name="{MODEL_NAME}", feature="amount"}} == 1'
    )
    assert features, "the amount column's drift is not in Prometheus"

    # Launched and finished; the challenger failed the gates, so the champion stays.
    assert retraining["launched"] and retraining["outcome"] == "not_promoted", retraining
    assert client.get_model_version_by_alias(MODEL_NAME, registry.CHAMPION).version == loop.champion
    [challenger] = {
        v.version for v in client.search_model_versions(f"name = '{MODEL_NAME}'")
    } - versions_before
    rejected = client.get_model_version(MODEL_NAME, challenger)
    assert rejected.tags["decision"] == "not promoted"
    assert "does not beat champion" in rejected.tags["decision_reason"], rejected.tags
    tags = client.get_registered_model(MODEL_NAME).tags
    assert tags["retraining.outcome"] == "not_promoted"
    assert tags["retraining.execution"] == retraining["execution"]
    outcome = loop.prometheus.wait_for(
        f'model_retraining_last_outcome{{model_name="{MODEL_NAME}", outcome="not_promoted"}} == 1',
        timeout=30,
    )
    assert outcome

    # The same drift within the cool-down launches nothing.
    check, again = finished(loop.check(end, f"--window_hours={hours}"))
    assert check["verdict"] == "drift"
    assert not again["launched"] and again["reason"].startswith("cool-down"), again

    # An hour later, without a cool-down, a challenger that passes the gates becomes the
    # champion.
    check, passed = finished(
        loop.check(
            end + timedelta(hours=1),
            f"--window_hours={hours + 1}",
            "--cooldown_hours=0",
            f"--training_run_at={(RUN_AT - timedelta(days=2)).isoformat()}",
            f"--gates={json.dumps(LENIENT)}",
        )
    )
    assert passed["launched"] and passed["outcome"] == "promoted", passed
    champion = client.get_model_version_by_alias(MODEL_NAME, registry.CHAMPION)
    assert champion.version not in versions_before | {challenger}
    assert champion.tags["decision"] == "promoted"


def test_a_window_with_too_few_rows_is_not_enough_data(loop: Loop) -> None:
    # An hour before any traffic: nothing logged.
    check, retraining = finished(
        loop.check(datetime.now(UTC) - timedelta(hours=3), "--window_hours=1")
    )
    assert check["verdict"] == "not enough data" and check["rows"] == 0, check
    assert not retraining["launched"] and retraining["reason"] == "no drift", retraining
    enough = loop.prometheus.wait_for(
        f'model_drift_enough_data{{model_name="{MODEL_NAME}"}} == 0', timeout=30
    )
    assert enough


def test_an_unreachable_log_store_never_fails_a_prediction(
    stack: Stack, first: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    """The log's store is a closed port: every request is answered, every record is counted
    as dropped; the prediction log never blocks or fails a request."""
    _, manifest = first
    model_dir = tmp_path / "mnt-models"
    fetch_like_storage_initializer(
        stack.rendering, manifest["spec"]["predictor"]["model"]["storageUri"], stack.s3, model_dir
    )
    unreachable = {
        "MLOPS_PREDICTION_LOG_URI": "s3://predictions/unreachable",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "unused",
        "AWS_SECRET_ACCESS_KEY": "unused",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLOPS_PREDICTION_LOG_FLUSH_SECONDS": "0.2",
    }
    rows = transactions()[:100]
    with serving(stack, manifest, model_dir, tmp_path, unreachable) as url:
        score(url, rows)
        deadline = time.monotonic() + 120
        while (
            dropped := counted(url, "prediction_log_dropped_records_total", 'reason="sink_error"')
        ) < len(rows):
            assert time.monotonic() < deadline, f"{dropped} of {len(rows)} drops counted"
            time.sleep(0.5)
    assert dropped == len(rows)


def counted(url: str, counter: str, having: str = "") -> float:
    """The sum of a counter's series on the transformer's /metrics (those whose labels
    contain `having`)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{counter}{{") and having in line
    )
