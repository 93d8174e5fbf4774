"""A real `pulumi up` of the ci stack against a local control plane, then no-op, change, destroy.

The Pulumi CLI, the kubernetes provider, etcd, the Kubernetes control plane and kwok are built
from the Go module proxy by scripts/toolchain.sh; scripts/local-cluster.sh runs them on
127.0.0.1. kwok plays the kubelet: pods are marked Running and Ready and Job pods Succeeded, but
no container runs, so what containers do is proven by the contract tests, not here.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.kserve import module_dir

ROOT = Path(__file__).resolve().parents[2]
STACK = "ci"
NAMESPACE = "mlops-ci"
TIMINGS: list[tuple[str, float]] = []


def environment_after(*commands: str) -> dict[str, str]:
    """The environment a shell has after `eval "$(<command>)"` of each command."""
    script = "".join(f'out="$({c})" || exit 1; eval "$out"; ' for c in commands) + "env -0"
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        message = f"no Pulumi toolchain: {result.stderr.strip()} (build it: scripts/toolchain.sh)"
        if os.environ.get("MLOPS_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)


@dataclass
class Deployment:
    project: Path
    env: dict[str, str]
    kubectl: str

    def run(self, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pulumi(
        self, *args: str, timeout: int = 900, stack: str = STACK
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = self.run("pulumi", *args, "--stack", stack, "--non-interactive", timeout=timeout)
        if args[0] in ("up", "preview", "destroy"):
            outcome = "ok" if result.returncode == 0 else "failed"
            TIMINGS.append((f"pulumi {' '.join(args)} ({outcome})", time.monotonic() - started))
        return result

    def get(self, *args: str) -> dict[str, Any]:
        result = self.run(self.kubectl, "get", *args, "-o", "json", timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    environment_after("./scripts/toolchain.sh env")
    cluster = subprocess.run(
        [str(ROOT / "scripts/local-cluster.sh"), "up"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert cluster.returncode == 0, cluster.stderr[-3000:]
    tools = environment_after("./scripts/local-cluster.sh env")
    # The ci stack finds KServe already installed: its serving CRDs are there, as on a cluster
    # with KServe (from the kserve Go module of the pinned version).
    crds = module_dir() / "config" / "crd" / "full"
    for name in (
        "serving.kserve.io_servingruntimes.yaml",
        "serving.kserve.io_inferenceservices.yaml",
    ):
        applied = subprocess.run(
            [
                f"{tools['MLOPS_TOOLCHAIN_DIR']}/bin/kubectl",
                "apply",
                "--server-side",
                "-f",
                str(crds / name),
            ],
            env={**os.environ, **tools},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert applied.returncode == 0, applied.stderr[-3000:]

    # A copy of the project, so stack init and secrets do not touch the repository's files;
    # its own .venv holds only the Pulumi program's dependencies.
    project = tmp_path_factory.mktemp("project")
    for name in ("Pulumi.yaml", "pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "infra", project / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts", project / "scripts")
    (project / "stacks").mkdir()
    shutil.copy(ROOT / "stacks" / f"Pulumi.{STACK}.yaml", project / "stacks")
    env = {
        **tools,
        "PULUMI_BACKEND_URL": f"file://{tmp_path_factory.mktemp('state')}",
        "PULUMI_CONFIG_PASSPHRASE": "integration-test-passphrase",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "UV_PROJECT_ENVIRONMENT": str(project / ".venv"),
    }
    deployment = Deployment(project, env, f"{tools['MLOPS_TOOLCHAIN_DIR']}/bin/kubectl")
    setup = deployment.run("uv", "sync", "--locked", "--no-dev", "--quiet", timeout=600)
    assert setup.returncode == 0, setup.stderr
    init = deployment.run(
        "pulumi", "stack", "init", STACK, "--secrets-provider", "passphrase", "--non-interactive"
    )
    assert init.returncode == 0, init.stderr
    secrets = deployment.run("./scripts/bootstrap-secrets.sh", STACK)
    assert secrets.returncode == 0, secrets.stderr
    try:
        yield deployment
    finally:
        deployment.pulumi("destroy", "--yes", "--skip-preview")
        subprocess.run(
            [str(ROOT / "scripts/local-cluster.sh"), "down"],
            capture_output=True,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="module")
def deployed(deployment: Deployment) -> Deployment:
    up = deployment.pulumi("up", "--yes", "--skip-preview", timeout=1800)
    assert up.returncode == 0, (up.stdout + up.stderr)[-5000:]
    return deployment


def test_stack_outputs_name_the_in_cluster_services(deployed: Deployment) -> None:
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
    }
    assert outputs["objectStore"]["secretKey"] == "[secret]"
    assert outputs["mlflow"]["trackingUri"] == f"http://mlflow.{NAMESPACE}.svc.cluster.local:5000"
    assert outputs["flyte"]["endpoint"] == f"flyte-grpc.{NAMESPACE}.svc.cluster.local:8089"
    assert outputs["feast"]["endpoint"] == f"http://feast.{NAMESPACE}.svc.cluster.local:6566"
    assert "${FEAST_REDIS_PASSWORD}" in outputs["feast"]["featureStoreYaml"]


def test_workloads_are_ready_and_jobs_complete(deployed: Deployment) -> None:
    statefulsets = deployed.get("statefulsets", "-n", NAMESPACE)["items"]
    assert sorted(s["metadata"]["name"] for s in statefulsets) == [
        "postgres",
        "prometheus",
        "redis",
        "seaweedfs",
    ]
    assert all(s["status"].get("readyReplicas") == 1 for s in statefulsets)
    deployments = deployed.get("deployments", "-n", NAMESPACE)["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == [
        "feast",
        "flyte",
        "grafana",
        "mlflow",
    ]
    assert all(d["status"].get("readyReplicas") == d["spec"]["replicas"] for d in deployments)
    items = deployed.get("jobs", "-n", NAMESPACE)["items"]

    def scheduled(job: dict[str, Any]) -> bool:
        return any(o["kind"] == "CronJob" for o in job["metadata"].get("ownerReferences", []))

    # The materialization CronJob may already have started a run: those Jobs are its own.
    assert all(
        j["metadata"]["name"].startswith("feast-materialize-") for j in items if scheduled(j)
    )
    jobs = [j for j in items if not scheduled(j)]
    assert sorted(j["metadata"]["name"] for j in jobs) == [
        "feast-apply",
        "mlflow-db-upgrade",
        "postgres-init",
        "seaweedfs-buckets",
    ]
    assert all(j["status"].get("succeeded") == 1 for j in jobs)
    cronjobs = deployed.get("cronjobs", "-n", NAMESPACE)["items"]
    assert [c["metadata"]["name"] for c in cronjobs] == ["feast-materialize"]


def test_namespace_enforces_restricted_and_secrets_stay_out_of_configmaps(
    deployed: Deployment,
) -> None:
    namespace = deployed.get("namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    secret = deployed.get("secret", "redis", "-n", NAMESPACE)
    password = secret["data"]["password"]
    configmaps = json.dumps(deployed.get("configmaps", "-n", NAMESPACE))
    assert base64.b64decode(password).decode() not in configmaps


def test_model_namespace_gets_the_storage_credentials(deployed: Deployment) -> None:
    models = f"{NAMESPACE}-models"
    account = deployed.get("serviceaccount", "kserve-models", "-n", models)
    assert account["secrets"] == [{"name": "kserve-s3"}]
    secret = deployed.get("secret", "kserve-s3", "-n", models)
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == (
        f"seaweedfs.{NAMESPACE}.svc.cluster.local:8333"
    )
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_a_second_preview_changes_nothing(deployed: Deployment) -> None:
    preview = deployed.pulumi("preview", "--expect-no-changes")
    assert preview.returncode == 0, (preview.stdout + preview.stderr)[-3000:]


def test_one_config_change_changes_exactly_one_resource(deployed: Deployment) -> None:
    changed = deployed.pulumi("config", "set", "--path", "redis.resources.limits.cpu", "750m")
    assert changed.returncode == 0, changed.stderr
    preview = deployed.pulumi("preview", "--json")
    assert preview.returncode == 0, preview.stderr
    steps = [s for s in json.loads(preview.stdout)["steps"] if s["op"] != "same"]
    assert [(s["op"], s["urn"].split("::")[-1]) for s in steps] == [("update", "redis")]
    assert "StatefulSet" in steps[0]["urn"]
    up = deployed.pulumi("up", "--yes", "--skip-preview", timeout=1200)
    assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
    redis = deployed.get("statefulset", "redis", "-n", NAMESPACE)
    assert redis["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == (
        "750m"
    )
    again = deployed.pulumi("preview", "--expect-no-changes")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]


def test_bad_config_fails_preview_with_one_clear_message(deployment: Deployment) -> None:
    init = deployment.run("pulumi", "stack", "init", "bad", "--non-interactive")
    assert init.returncode == 0, init.stderr
    missing = deployment.pulumi("preview", stack="bad")
    output = missing.stdout + missing.stderr
    assert missing.returncode != 0
    assert (
        "mlops-platform:postgresPassword is not set (required while postgres is enabled); "
        "run ./scripts/bootstrap-secrets.sh bad" in output
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


def test_destroy_leaves_nothing_of_ours(deployed: Deployment) -> None:
    destroy = deployed.pulumi("destroy", "--yes", "--skip-preview", timeout=1200)
    assert destroy.returncode == 0, (destroy.stdout + destroy.stderr)[-3000:]
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
            )
            for item in deployed.get(kind, "-A", "-l", selector)["items"]
        ]
        if not left:
            break
        assert time.monotonic() < deadline, f"left after destroy: {left}"
        time.sleep(3)
