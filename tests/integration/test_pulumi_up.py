"""The lifecycle of the ci stack on the local control plane, through the `mlops` command a user
runs: its status and outputs, a preview with no changes, one config change, a rotated secret,
bad input, and `mlops down` leaving nothing (last of all).

The deploy itself is the session fixture `deployed` (conftest.py: `mlops up ci`, then the shell
`mlops env ci` gives); the platform checks (test_platform.py) run on it before these tests.
Local mode only: in live mode (MLOPS_VERIFY_STACK) these skip, since they change and destroy the
stack.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import LOCAL_STACK, Deployment

pytestmark = pytest.mark.lifecycle
NAMESPACE = "mlops-ci"


def test_status_shows_every_component_ready_and_where_its_ui_is(deployed: Deployment) -> None:
    status = deployed.mlops("status", LOCAL_STACK)
    assert status.returncode == 0, status.stdout + status.stderr
    for component in ("postgres", "redis", "seaweedfs", "mlflow", "flyte", "feast", "grafana"):
        assert component in status.stdout, status.stdout
    assert "http://localhost:5000" in status.stdout
    assert "localhost:8089" in status.stdout
    assert f"mlops connect {LOCAL_STACK}" in status.stdout


def test_stack_outputs_name_the_in_cluster_services(deployed: Deployment) -> None:
    """Plain `pulumi` in the shell `mlops env` sets finds the stack, its backend and secrets."""
    result = deployed.pulumi("stack", "output", "--json")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)
    assert outputs["postgres"]["host"] == f"postgres.{NAMESPACE}.svc.cluster.local"
    assert outputs["postgres"]["databases"]["mlflow"]["url"] == "[secret]"
    assert outputs["redis"]["host"] == f"redis.{NAMESPACE}.svc.cluster.local"
    assert outputs["objectStore"]["buckets"] == {
        "mlflow": "mlflow",
        "flyte": "flyte",
        "feast": "feast",
        "models": "models",
        "predictions": "predictions",
        "backups": "backups",
    }
    assert outputs["objectStore"]["secretKey"] == "[secret]"
    assert outputs["mlflow"]["trackingUri"] == f"http://mlflow.{NAMESPACE}.svc.cluster.local:5000"
    assert outputs["flyte"]["endpoint"] == f"flyte-grpc.{NAMESPACE}.svc.cluster.local:8089"
    assert outputs["feast"]["endpoint"] == f"http://feast.{NAMESPACE}.svc.cluster.local:6566"
    assert "${FEAST_REDIS_PASSWORD}" in outputs["feast"]["featureStoreYaml"]


def test_a_second_preview_changes_nothing(deployed: Deployment) -> None:
    preview = deployed.mlops("preview", LOCAL_STACK, "--expect-no-changes")
    assert preview.returncode == 0, (preview.stdout + preview.stderr)[-3000:]


def test_one_config_change_changes_exactly_one_resource(deployed: Deployment) -> None:
    changed = deployed.pulumi("config", "set", "--path", "redis.resources.limits.cpu", "750m")
    assert changed.returncode == 0, changed.stderr
    preview = deployed.mlops("preview", LOCAL_STACK, "--json")
    assert preview.returncode == 0, preview.stderr
    steps = [s for s in json.loads(preview.stdout)["steps"] if s["op"] != "same"]
    assert [(s["op"], s["urn"].split("::")[-1]) for s in steps] == [("update", "redis")]
    assert "StatefulSet" in steps[0]["urn"]
    up = deployed.mlops("up", LOCAL_STACK, "--yes", timeout=1200)
    assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
    redis = deployed.get("statefulset", "redis", "-n", NAMESPACE)
    assert redis["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == (
        "750m"
    )
    again = deployed.mlops("preview", LOCAL_STACK, "--expect-no-changes")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]


# A step of a replaced resource's replacement, shown as one "replace".
REPLACEMENT_STEPS = {"replace", "create-replacement", "delete-replaced"}


def test_a_rotated_password_reruns_its_init_job_and_rolls_its_readers(
    deployed: Deployment,
) -> None:
    """The feast database password: its Secrets (the login, the registry URL, the task and
    transformer copies), the init Job that applies it, and the pods and Job that read it. The
    kubernetes provider replaces a Secret whose data changes (enableSecretMutable is off)."""
    before = deployed.get("deployment", "feast", "-n", NAMESPACE)
    on_argv = deployed.mlops(
        "secrets", "rotate", LOCAL_STACK, "postgresFeastPassword", "rotated-Feast-password-7f3a9c"
    )
    assert on_argv.returncode == 2
    assert "never taken from the command line" in on_argv.stderr
    rotated = deployed.mlops(
        "secrets",
        "rotate",
        LOCAL_STACK,
        "postgresFeastPassword",
        "--no-apply",
        input="rotated-Feast-password-7f3a9c",
    )
    assert rotated.returncode == 0, rotated.stderr
    preview = deployed.mlops("preview", LOCAL_STACK, "--json")
    assert preview.returncode == 0, preview.stderr
    steps = {
        (
            "replace" if s["op"] in REPLACEMENT_STEPS else s["op"],
            s["urn"].split("::")[-2].split("$")[-1],
            s["urn"].split("::")[-1],
        )
        for s in json.loads(preview.stdout)["steps"]
        if s["op"] != "same"
    }
    assert steps == {
        ("replace", "kubernetes:core/v1:Secret", "postgres-feast"),
        ("replace", "kubernetes:core/v1:Secret", "feast"),
        ("replace", "kubernetes:core/v1:Secret", "feast-client"),
        # The tasks' copy in each project namespace (read by each task pod as it starts).
        ("replace", "kubernetes:core/v1:Secret", "ml-development-mlops-workloads"),
        ("replace", "kubernetes:core/v1:Secret", "ml-staging-mlops-workloads"),
        ("replace", "kubernetes:core/v1:Secret", "ml-production-mlops-workloads"),
        ("replace", "kubernetes:batch/v1:Job", "postgres-init"),
        ("replace", "kubernetes:batch/v1:Job", "feast-apply"),
        ("update", "kubernetes:apps/v1:Deployment", "feast"),
    }
    up = deployed.mlops("up", LOCAL_STACK, "--yes", timeout=1200)
    assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
    after = deployed.get("deployment", "feast", "-n", NAMESPACE)
    digest = "checksum/secrets"
    assert (
        after["spec"]["template"]["metadata"]["annotations"][digest]
        != before["spec"]["template"]["metadata"]["annotations"][digest]
    )
    assert "rotated-Feast-password-7f3a9c" not in json.dumps(after)
    again = deployed.mlops("preview", LOCAL_STACK, "--expect-no-changes")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]


def test_bad_config_fails_preview_with_one_clear_message(deployed: Deployment) -> None:
    deployment = deployed
    init = deployment.run("pulumi", "stack", "init", "bad", "--non-interactive")
    assert init.returncode == 0, init.stderr
    missing = deployment.pulumi("preview", stack="bad")
    output = missing.stdout + missing.stderr
    assert missing.returncode != 0
    assert (
        "mlops-platform:postgresPassword is not set (required while postgres is enabled); "
        "generate it: mlops secrets bootstrap bad" in output
    )
    assert "Traceback" not in output
    assert deployment.pulumi("config", "set", "profile", "huge", stack="bad").returncode == 0
    bad = deployment.pulumi("preview", stack="bad")
    output = bad.stdout + bad.stderr
    assert bad.returncode != 0
    assert "mlops-platform:profile = 'huge': must be one of small, standard, ha" in output
    assert "Traceback" not in output
    assert (
        deployment.run("pulumi", "stack", "rm", "bad", "--yes", "--non-interactive").returncode == 0
    )


def test_a_pinned_stack_refuses_another_context(deployed: Deployment) -> None:
    other = deployed.mlops("up", LOCAL_STACK, "--yes", "--context", "kind-elsewhere")
    assert other.returncode == 2
    assert (
        f"stack {LOCAL_STACK} is pinned to kube context 'kwok-mlops-local', not 'kind-elsewhere'"
        in other.stderr
    )
    assert "Traceback" not in other.stderr


def test_destroy_leaves_nothing_of_ours(deployed: Deployment) -> None:
    destroy = deployed.mlops("down", LOCAL_STACK, "--yes", timeout=1200)
    assert destroy.returncode == 0, (destroy.stdout + destroy.stderr)[-3000:]
    assert "nothing labelled app.kubernetes.io/part-of=mlops-platform remains" in destroy.stderr
    selector = "app.kubernetes.io/part-of=mlops-platform"
    deadline = time.monotonic() + 180
    while True:
        left = [
            f"{kind}/{item['metadata']['name']}"
            for kind in (
                "namespaces",
                "clusterroles",
                "clusterrolebindings",
                "persistentvolumeclaims",
                "pods",
                "secrets",
                "configmaps",
                "deployments",
                "services",
                # KServe's: the platform's runtime, and what the deploy step and the
                # controller created for a model (the model's labels reach its objects).
                "servingruntimes",
                "inferenceservices",
            )
            for item in deployed.get(kind, "-A", "-l", selector)["items"]
        ]
        if not left:
            break
        assert time.monotonic() < deadline, f"left after destroy: {left}"
        time.sleep(3)
