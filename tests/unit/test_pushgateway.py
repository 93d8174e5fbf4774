"""The Pushgateway: scraped with the labels batch jobs push, its address in the Flyte task
settings, its last pushes kept across container restarts."""

from __future__ import annotations

from typing import Any

import yaml

from infra import versions
from infra.components import pushgateway
from tests.support.rendering import evaluate, pod_container, stack_rendering


def _prometheus_jobs(rendering: Any) -> dict[str, dict[str, Any]]:
    text = rendering.find("ConfigMap", "prometheus-config").inputs["data"]["prometheus.yaml"]
    return {job["job_name"]: job for job in yaml.safe_load(text)["scrape_configs"]}


def test_prometheus_keeps_the_labels_pushed_to_the_gateway_and_only_there() -> None:
    jobs = _prometheus_jobs(stack_rendering("dev"))
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"][0]["targets"] == [
        "pushgateway.mlops.svc.cluster.local:9091"
    ]
    assert [name for name, job in jobs.items() if job.get("honor_labels")] == ["pushgateway"]


def test_its_url_is_a_stack_output_and_a_flyte_task_setting() -> None:
    rendering = stack_rendering("dev")
    url = "http://pushgateway.mlops.svc.cluster.local:9091"
    assert rendering.outputs["monitoring"]["pushgatewayUrl"] == url
    settings = rendering.find("ConfigMap", "mlops-workloads").inputs["data"]
    assert settings["MLOPS_PUSHGATEWAY_URL"] == url


def test_without_monitoring_the_tasks_get_no_pushgateway_url() -> None:
    rendering = evaluate({"monitoring": {"enabled": False}})
    settings = rendering.find("ConfigMap", "mlops-workloads").inputs["data"]
    assert "MLOPS_PUSHGATEWAY_URL" not in settings
    assert "monitoring" not in rendering.outputs


def test_one_pod_persists_its_pushes_in_an_empty_dir() -> None:
    rendering = stack_rendering("prod")
    deployment = rendering.find("Deployment", "pushgateway").manifest()
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}]
    container = pod["containers"][0]
    assert f"--persistence.file={pushgateway.PERSISTENCE_FILE}" in container["args"]
    assert container["image"] == versions.PUSHGATEWAY_IMAGE
    assert pod["securityContext"]["runAsUser"] == versions.PUSHGATEWAY_UID
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_resources_follow_the_profile() -> None:
    small = pod_container(stack_rendering("dev"), "Deployment", "pushgateway")["resources"]
    large = pod_container(stack_rendering("prod"), "Deployment", "pushgateway")["resources"]
    assert small["requests"] == {"cpu": "10m", "memory": "32Mi"}
    assert large["requests"] == {"cpu": "50m", "memory": "64Mi"}
