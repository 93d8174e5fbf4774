"""`mlops demo`'s decisions that need no cluster: the materialize window the seeded data spans,
the Jobs made from the deployed feast-apply Job, the transactions scored by default and how
the transformer's answer is read, and the refusals that come before anything is created."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from infra import config, versions
from mlops import cli, kube
from mlops.demo import target
from mlops.errors import StepFailed, UserError
from tests.support.rendering import raw_config, stack_rendering
from tests.support.tools import require_module

pd = require_module("pandas", "the workloads dependency group")
from mlops.demo import data, jobs, serving  # noqa: E402
from workloads.feature_repo.datagen import fraud_events  # noqa: E402

# What the API server adds to the template of a Job it accepted (1.27 and later: both forms).
CONTROLLER_ADDED = {
    "batch.kubernetes.io/controller-uid": "0b7f7a6c-9f4e-4d2b-8c1a-3e5d6f708192",
    "batch.kubernetes.io/job-name": "feast-apply",
    "controller-uid": "0b7f7a6c-9f4e-4d2b-8c1a-3e5d6f708192",
    "job-name": "feast-apply",
}


def _frame(*timestamps: str) -> pd.DataFrame:
    return pd.DataFrame({"event_timestamp": [pd.Timestamp(t) for t in timestamps]})


def test_the_materialize_window_spans_every_table_in_utc_whole_seconds() -> None:
    dataset = fraud_events.Dataset(
        transactions=_frame("2026-10-01T10:00:00.250+00:00", "2026-10-02T09:00:00+00:00"),
        # The latest row is a feature row, two hours east of UTC.
        customer_stats=_frame("2026-10-03T12:30:00+02:00"),
        merchant_stats=_frame("2026-10-02T00:00:00+00:00"),
    )
    assert data.materialize_window(dataset) == ("2026-10-01T10:00:00", "2026-10-03T10:30:01")


def test_the_seeded_data_lies_inside_its_materialize_window() -> None:
    dataset = data.seeded()
    start, end = (datetime.fromisoformat(t + "+00:00") for t in data.materialize_window(dataset))
    times = pd.concat([t["event_timestamp"] for t in dataset.tables().values()])
    assert start <= times.min() and times.max() < end
    # No wider than the data: the first row's second, one second past the last.
    assert (times.min() - start).total_seconds() < 1
    assert (end - times.max()).total_seconds() <= 1


def test_the_default_transactions_are_one_of_the_data_and_one_of_an_unknown_customer() -> None:
    events = data.seeded().transactions
    known, unknown = data.default_transactions(data.seeded())
    last = events.iloc[-1]
    assert known == data.Transaction(
        int(last["customer_id"]), int(last["merchant_id"]), float(last["amount"])
    )
    assert unknown.customer_id not in set(events["customer_id"])
    assert unknown.merchant_id in set(events["merchant_id"])


def test_the_seed_job_passes_the_shared_parameters_to_the_generator() -> None:
    command = jobs.seed_command()
    parsed = dict(zip(command[2::2], command[3::2], strict=True))
    assert command[:2] == ["python", "/app/workloads/feature_repo/datagen/fraud_events.py"]
    assert parsed == {
        "--seed": str(data.SEED),
        "--customers": str(data.SIZES.customers),
        "--merchants": str(data.SIZES.merchants),
        "--days": str(data.SIZES.days),
        # Expanded by the kubelet from the container's env, which reads the feast Secret.
        "--postgres-url": "$(FEAST_REGISTRY_URL)",
    }


def _deployed_template() -> dict[str, Any]:
    """The rendered feast-apply Job as the API server returns it once created."""
    job = stack_rendering("dev").find("Job", "feast-apply").manifest()
    job["spec"]["template"]["metadata"]["labels"].update(CONTROLLER_ADDED)
    job["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": "0b7f"}}
    return job


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for expression in selector.get("matchExpressions") or []:
        present = expression["key"] in labels
        if expression["operator"] == "Exists" and not present:
            return False
        if expression["operator"] == "DoesNotExist" and present:
            return False
        if (
            expression["operator"] == "In"
            and labels.get(expression["key"]) not in (expression["values"])
        ):
            return False
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _policies_selecting(namespace: str, labels: dict[str, str]) -> set[tuple[str, str]]:
    """Each NetworkPolicy rule of the namespace whose pod selector picks these labels."""
    found = set()
    for policy in stack_rendering("dev").of_type("NetworkPolicy"):
        manifest = policy.manifest()
        if manifest["metadata"]["namespace"] != namespace:
            continue
        spec, name = manifest["spec"], manifest["metadata"]["name"]
        selectors = [("podSelector", spec["podSelector"])]
        for direction, peers in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(spec.get(direction) or []):
                for peer in rule.get(peers) or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        selectors.append((f"{direction}[{i}]", peer["podSelector"]))
        found |= {(name, where) for where, selector in selectors if _selects(selector, labels)}
    return found


def test_a_demo_job_keeps_the_feast_apply_pod_and_runs_its_own_command() -> None:
    template = _deployed_template()
    job = jobs.job_from_template(template, "mlops-demo-seed", ["feast", "materialize"], 600)
    original = template["spec"]["template"]
    pod = job["spec"]["template"]
    [container] = pod["spec"]["containers"]
    [before] = original["spec"]["containers"]

    assert container["command"] == ["feast", "materialize"] and "args" not in container
    # Image, env (the Secrets' variables), mounts, working directory, resources and security
    # context as deployed.
    assert {k: v for k, v in container.items() if k != "command"} == {
        k: v for k, v in before.items() if k != "command"
    }
    assert {k: v for k, v in pod["spec"].items() if k not in ("containers", "restartPolicy")} == {
        k: v for k, v in original["spec"].items() if k not in ("containers", "restartPolicy")
    }
    assert pod["spec"]["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["metadata"]["namespace"] == template["metadata"]["namespace"]
    # The controller's labels of the old Job would not match the new one's selector.
    assert pod["metadata"]["labels"] == {
        k: v for k, v in original["metadata"]["labels"].items() if k not in CONTROLLER_ADDED
    }
    assert "selector" not in job["spec"]
    assert template == _deployed_template(), "the template itself is left as it was"


def test_the_network_lets_a_demo_job_reach_what_feast_apply_reaches() -> None:
    template = _deployed_template()
    job = jobs.job_from_template(template, "mlops-demo-seed", ["true"], 600)
    namespace = template["metadata"]["namespace"]
    apply_labels = {
        k: v
        for k, v in template["spec"]["template"]["metadata"]["labels"].items()
        if k not in CONTROLLER_ADDED
    }
    allowed = _policies_selecting(namespace, apply_labels)
    assert {"postgres", "redis"} <= {name for name, where in allowed if where != "podSelector"}
    assert _policies_selecting(namespace, job["spec"]["template"]["metadata"]["labels"]) == allowed


@pytest.mark.parametrize("k8s_version", versions.KUBERNETES_VERSIONS)
def test_a_demo_job_validates_strictly(k8s_version: str) -> None:
    job = jobs.job_from_template(_deployed_template(), "mlops-demo-materialize", ["true"], 900)
    kubernetes_validate.validate(copy.deepcopy(job), k8s_version, strict=True)


def test_a_stack_without_flyte_or_kserve_is_refused_naming_both() -> None:
    cfg = config.load(
        "lab", *raw_config({"flyte": {"enabled": False}, "kserve": {"enabled": False}})
    )
    with pytest.raises(UserError) as refused:
        target.require_components("lab", cfg)
    message = str(refused.value)
    assert "stack lab turns off flyte and kserve" in message
    assert "stacks/Pulumi.lab.yaml" in message and "mlops up lab" in message
    target.require_components("lab", config.load("lab", *raw_config({})))


KWOK_NODE = {"metadata": {"name": "kwok-0", "annotations": {"kwok.x-k8s.io/node": "fake"}}}
REAL_NODE = {"metadata": {"name": "node-0", "annotations": {"node.alpha.kubernetes.io/ttl": "0"}}}


def test_a_cluster_of_kwok_nodes_only_is_refused_and_one_real_node_is_enough() -> None:
    refusal = target.containers_refusal("kwok-mlops-local", [KWOK_NODE, KWOK_NODE])
    assert refusal is not None
    assert "kube context kwok-mlops-local" in refusal
    assert "kwok.x-k8s.io/node: fake" in refusal and "mlops up kind" in refusal
    assert target.containers_refusal("mixed", [KWOK_NODE, REAL_NODE]) is None
    assert target.containers_refusal("empty", []) is not None
    assert kube.runs_containers([{"metadata": {"name": "bare"}}])


def test_predictions_are_paired_with_their_transactions_in_order() -> None:
    sent = [data.Transaction(1000, 5000, 10.0), data.Transaction(1001, 5001, 20.0)]
    body = {
        "predictions": [
            {"fraud_probability": 0.25, "model_version": "3"},
            {"fraud_probability": 1, "model_version": "3"},
        ]
    }
    scored = serving.read_predictions(sent, body)
    assert [s.as_dict() for s in scored] == [
        {"customer_id": 1000, "merchant_id": 5000, "amount": 10.0, "fraud_probability": 0.25,
         "model_version": "3"},
        {"customer_id": 1001, "merchant_id": 5001, "amount": 20.0, "fraud_probability": 1.0,
         "model_version": "3"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"predictions": [{"fraud_probability": 0.1, "model_version": "1"}]},
        {"predictions": [{"fraud_probability": "0.1", "model_version": "1"}] * 2},
        {"predictions": [{"fraud_probability": 0.1}] * 2},
        {"error": "predictor unavailable"},
    ],
    ids=["too-few", "not-a-number", "no-version", "no-predictions"],
)
def test_an_answer_that_is_not_one_prediction_per_transaction_fails(body: Any) -> None:
    sent = [data.Transaction(1000, 5000, 10.0), data.Transaction(1001, 5001, 20.0)]
    with pytest.raises(StepFailed):
        serving.read_predictions(sent, body)


def _exit_of(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    return int(exited.value.code or 0)


def _said(capsys: pytest.CaptureFixture[str]) -> str:
    """Standard error as one line (the console wraps it to the terminal's width)."""
    return " ".join(capsys.readouterr().err.split())


def test_an_unknown_stack_is_one_message_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_of(["demo", "run", "nosuch"]) == 2
    err = _said(capsys)
    assert "no stack file" in err and "Pulumi.nosuch.yaml" in err and "known stacks" in err
    assert "Traceback" not in err


def test_a_stack_not_deployed_here_is_refused_before_anything_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
    for name in ("PULUMI_BACKEND_URL", "PULUMI_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert _exit_of(["demo", "seed", "dev"]) == 2
    assert "stack dev has not been deployed from this machine" in _said(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_partial_transaction_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_of(["demo", "score", "dev", "--customer", "1042"]) == 2
    assert "add --merchant and --amount" in _said(capsys)
