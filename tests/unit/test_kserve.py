"""KServe: install order, mirrors reaching the charts, storage credentials for model pods."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from infra import versions
from infra.components import kserve
from mlops import render
from tests.support.rendering import SENTINELS, evaluate, secret_data, stack_rendering
from tests.unit import kserve_v0_20_runtimes


def charts(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in evaluate(values or {}).charts()}


def test_charts_are_pinned_and_come_from_the_upstream_repositories() -> None:
    found = charts()
    assert sorted(found) == [
        "cert-manager",
        "kserve-crd",
        "kserve-resources",
        "kserve-runtime-configs",
    ]
    assert found["cert-manager"]["chart"] == "cert-manager"
    assert found["cert-manager"]["repository"] == "https://charts.jetstack.io"
    assert found["cert-manager"]["version"] == versions.CERT_MANAGER_VERSION
    for name in ("kserve-crd", "kserve-resources", "kserve-runtime-configs"):
        assert found[name]["chart"] == f"oci://ghcr.io/kserve/charts/{name}"
        assert found[name]["repository"] is None
        assert found[name]["version"] == versions.KSERVE_VERSION
        assert found[name]["namespace"] == "kserve"


def test_resources_chart_waits_for_the_crds_and_cert_manager() -> None:
    rendering = evaluate({})
    releases = {r.name: r for r in rendering.resources if r.type == "kubernetes:helm.sh/v3:Release"}
    resources = releases["kserve-resources"].depends_on
    assert releases["kserve-crd"].urn in resources
    assert releases["cert-manager"].urn in resources
    assert releases["kserve-resources"].urn in releases["kserve-runtime-configs"].depends_on
    # Helm waits for every release's resources (the cert-manager webhook included).
    assert all(not r.inputs.get("skipAwait") for r in releases.values())
    model_namespace = rendering.find("Namespace", "mlops-models")
    assert releases["kserve-runtime-configs"].urn in model_namespace.depends_on


def dangling_dependencies(rendering: render.Rendering) -> list[tuple[str, str]]:
    """(resource, what it depends on or is parented to) where that is not in the program."""
    urns = {r.urn for r in rendering.resources}
    return [
        (r.name, needed)
        for r in rendering.resources
        for needed in (*r.depends_on, *([r.parent] if r.parent else []))
        if needed not in urns and "::pulumi:pulumi:Stack::" not in needed
    ]


def test_by_default_cert_manager_is_installed_first_in_its_own_namespace() -> None:
    rendering = evaluate({})
    assert rendering.config.kserve is not None
    assert rendering.config.kserve.cert_manager.install is True
    releases = {r.name: r for r in rendering.resources if r.type == render.HELM_RELEASE}
    assert releases["cert-manager"].inputs["namespace"] == "cert-manager"
    assert rendering.find("Namespace", "cert-manager").urn in releases["cert-manager"].depends_on
    assert releases["cert-manager"].urn in releases["kserve-resources"].depends_on
    assert dangling_dependencies(rendering) == []


def test_a_cluster_with_its_own_cert_manager_gets_the_kserve_charts_without_it() -> None:
    rendering = evaluate({"kserve": {"certManager": {"install": False}}})
    found = charts({"kserve": {"certManager": {"install": False}}})
    assert sorted(found) == ["kserve-crd", "kserve-resources", "kserve-runtime-configs"]
    assert all(found[name]["version"] == versions.KSERVE_VERSION for name in found)
    namespaces = {o["metadata"]["name"] for o in rendering.objects() if o["kind"] == "Namespace"}
    assert "cert-manager" not in namespaces
    assert "kserve" in namespaces
    releases = {r.name: r for r in rendering.resources if r.type == render.HELM_RELEASE}
    assert set(releases["kserve-resources"].depends_on) == {
        rendering.find("Namespace", "kserve").urn,
        releases["kserve-crd"].urn,
    }
    assert dangling_dependencies(rendering) == []
    assert not [r.name for r in rendering.resources if "cert-manager" in r.urn]
    # What models need is there as before.
    for kind, name in (("ServiceAccount", "kserve-models"), ("Secret", "kserve-s3")):
        assert rendering.find(kind, name).manifest()["metadata"]["namespace"] == "mlops-models"


def test_standard_mode_without_ingress_by_default() -> None:
    controller = charts()["kserve-resources"]["values"]["kserve"]["controller"]
    assert controller["deploymentMode"] == "Standard"
    assert controller["gateway"] == {"disableIngressCreation": True}


def test_an_ingress_class_turns_ingress_creation_on() -> None:
    values = charts({"kserve": {"ingressClass": "nginx"}})["kserve-resources"]["values"]
    assert values["kserve"]["controller"]["gateway"] == {
        "disableIngressCreation": False,
        "ingressGateway": {"className": "nginx"},
    }


def test_sklearn_and_mlserver_runtimes_are_on_and_the_rest_registered_off() -> None:
    runtimes = charts()["kserve-runtime-configs"]["values"]["kserve"]["servingruntime"]
    assert runtimes["enabled"] is True
    assert runtimes["sklearnserver"]["disabled"] is False
    assert runtimes["mlserver"] == {
        "disabled": False,
        "image": "docker.io/seldonio/mlserver",
        "tag": versions.MLSERVER_IMAGE.rsplit(":", 1)[1],
    }
    assert all(runtimes[name]["disabled"] is True for name in kserve.DISABLED_RUNTIMES)


def test_every_runtime_of_the_chart_but_sklearn_and_mlserver_is_switched_off() -> None:
    """Held against the chart's own runtime switches: a key the chart does not read would
    leave its runtime installed enabled (and unpinned, as vllm's `latest` is)."""
    assert versions.KSERVE_VERSION == kserve_v0_20_runtimes.CHART_VERSION, (
        "the chart moved: record its runtimes again in tests/unit/kserve_v0_20_runtimes.py"
    )
    runtimes = charts()["kserve-runtime-configs"]["values"]["kserve"]["servingruntime"]
    switches = kserve_v0_20_runtimes.RUNTIME_SWITCHES
    set_keys = {key for key, value in runtimes.items() if isinstance(value, dict)}
    assert set_keys == set(switches.values()), "a key the chart does not read, or one missed"
    enabled = {name for name, key in switches.items() if not runtimes[key]["disabled"]}
    assert enabled == {"kserve-sklearnserver", "kserve-mlserver"}


def test_mirrors_reach_every_image_and_chart() -> None:
    found = charts(
        {
            "kserve": {
                "chartRepository": "oci://mirror.example.com/charts",
                "imageRegistry": "mirror.example.com/hub",
                "certManager": {
                    "chartRepository": "https://charts.example.com/jetstack",
                    "imageRegistry": "mirror.example.com/quay",
                },
            }
        }
    )
    assert found["kserve-crd"]["chart"] == "oci://mirror.example.com/charts/kserve-crd"
    assert found["cert-manager"]["repository"] == "https://charts.example.com/jetstack"
    assert found["cert-manager"]["values"]["imageRegistry"] == "mirror.example.com/quay"
    values = found["kserve-resources"]["values"]["kserve"]
    assert values["controller"]["image"] == "mirror.example.com/hub/kserve/kserve-controller"
    assert values["controller"]["rbacProxyImage"] == (
        "mirror.example.com/hub/brancz/kube-rbac-proxy:v0.18.0"
    )
    assert values["storage"]["image"] == "mirror.example.com/hub/kserve/storage-initializer"
    assert values["agent"]["image"] == "mirror.example.com/hub/kserve/agent"
    assert values["router"]["image"] == "mirror.example.com/hub/kserve/router"
    runtimes = found["kserve-runtime-configs"]["values"]["kserve"]["servingruntime"]
    assert runtimes["sklearnserver"]["image"] == "mirror.example.com/hub/kserve/sklearnserver"
    assert runtimes["mlserver"]["image"] == "mirror.example.com/hub/seldonio/mlserver"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("kserve/agent", "m.io/kserve/agent"),
        ("docker.io/seldonio/mlserver", "m.io/seldonio/mlserver"),
        ("quay.io/brancz/kube-rbac-proxy:v0.18.0", "m.io/brancz/kube-rbac-proxy:v0.18.0"),
        ("localhost:5000/x/y", "m.io/x/y"),
    ],
)
def test_mirrored_replaces_only_the_registry_host(image: str, expected: str) -> None:
    assert kserve.mirrored(image, "m.io") == expected
    assert kserve.mirrored(image, None) == image


def test_storage_secret_annotations_match_the_object_store_outputs() -> None:
    rendering = stack_rendering("dev")
    outputs = rendering.outputs["objectStore"]
    secret = rendering.find("Secret", "kserve-s3").manifest()
    assert secret["metadata"]["namespace"] == "mlops-models"
    assert secret["metadata"]["annotations"] == {
        "serving.kserve.io/s3-endpoint": outputs["endpoint"].removeprefix("http://"),
        "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-verifyssl": "0",
        "serving.kserve.io/s3-region": outputs["region"],
    }
    data = secret_data(rendering, "kserve-s3")
    assert data == {
        "AWS_ACCESS_KEY_ID": SENTINELS["objectStoreAccessKey"],
        "AWS_SECRET_ACCESS_KEY": SENTINELS["objectStoreSecretKey"],
    }


def test_https_object_store_turns_https_on() -> None:
    rendering = evaluate(
        {"objectStore": {"external": {"endpoint": "https://s3.eu.example.com", "region": "eu-1"}}}
    )
    annotations = rendering.find("Secret", "kserve-s3").manifest()["metadata"]["annotations"]
    assert annotations["serving.kserve.io/s3-endpoint"] == "s3.eu.example.com"
    assert annotations["serving.kserve.io/s3-usehttps"] == "1"
    assert annotations["serving.kserve.io/s3-region"] == "eu-1"


def test_service_account_carries_the_storage_secret() -> None:
    account = evaluate({}).find("ServiceAccount", "kserve-models").manifest()
    assert account["secrets"] == [{"name": "kserve-s3"}]
    assert account["automountServiceAccountToken"] is False


def test_already_installed_kserve_gets_only_what_models_need() -> None:
    rendering = stack_rendering("ci")
    assert rendering.charts() == []
    assert {"Secret", "ServiceAccount", "ServingRuntime", "ConfigMap", "Role", "RoleBinding"} == {
        o["kind"]
        for o in rendering.objects()
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "kserve"
    }
    names = {o["metadata"]["name"] for o in rendering.objects() if o["kind"] == "Namespace"}
    assert {"cert-manager", "kserve"}.isdisjoint(names)
    assert {"mlops-ci", "mlops-ci-models"} <= names


def test_disabled_kserve_leaves_nothing() -> None:
    rendering = evaluate({"kserve": {"enabled": False}})
    assert rendering.charts() == []
    assert "kserve" not in rendering.outputs
    assert not [o for o in rendering.objects() if o["metadata"].get("namespace") == "mlops-models"]


def test_mlflow_runtime_follows_the_kserve_crd_and_serves_mlflow_3() -> None:
    from tests.support.kserve import validate

    runtime = evaluate({}).find("ServingRuntime", kserve.MLFLOW_RUNTIME).manifest()
    validate(runtime)
    assert runtime["metadata"]["namespace"] == "mlops-models"
    assert runtime["spec"]["supportedModelFormats"] == [
        {"name": "mlflow", "version": "3", "autoSelect": True, "priority": 1}
    ]
    container = runtime["spec"]["containers"][0]
    assert container["image"] == versions.SERVING_IMAGE
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLSERVER_MODEL_IMPLEMENTATION"] == "workloads.serving.runtime.MLflowTensorRuntime"
    assert env["MLSERVER_PARALLEL_WORKERS"] == "0"
    assert (env["MLSERVER_DEBUG"], env["MLSERVER_GZIP_ENABLED"]) == ("false", "false")
    assert container["securityContext"]["runAsNonRoot"] is True


def test_a_misspelt_runtime_field_breaks_the_crd_schema() -> None:
    """The CRD check above can fail."""
    import jsonschema

    from tests.support.kserve import validate

    runtime = evaluate({}).find("ServingRuntime", kserve.MLFLOW_RUNTIME).manifest()
    runtime["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(jsonschema.ValidationError):
        validate(runtime)


def test_training_tasks_may_only_get_create_and_patch_inference_services() -> None:
    rendering = evaluate({})
    role = rendering.find("Role", kserve.DEPLOYER_ROLE).manifest()
    assert role["metadata"]["namespace"] == "mlops-models"
    assert role["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": ["get", "create", "patch"],
        }
    ]
    binding = rendering.find("RoleBinding", kserve.DEPLOYER_ROLE).manifest()
    subjects = {(s["namespace"], s["name"]) for s in binding["subjects"]}
    assert subjects == {
        (f"ml-{domain}", "mlops-training") for domain in ("development", "staging", "production")
    }


def test_transformers_get_the_store_config_and_credentials_by_secret() -> None:
    rendering = evaluate({}, SENTINELS)
    config = rendering.find("ConfigMap", "feast-client").manifest()
    assert config["metadata"]["namespace"] == "mlops-models"
    served = yaml.safe_load(config["data"]["feature_store.yaml"])
    platform = yaml.safe_load(rendering.outputs["feast"]["featureStoreYaml"])
    # The platform's store, its registry cache refreshed off the request path.
    assert served["registry"].pop("cache_mode") == "thread"
    assert "cache_mode" not in platform["registry"]
    assert served == platform
    assert not any(s in str(config) for s in SENTINELS.values())
    data = secret_data(rendering, "feast-client")
    assert set(data) == set(kserve.FEAST_CLIENT_KEYS.values())
    assert data["redis-password"] == SENTINELS["redisPassword"]
    feast_database = secret_data(rendering, "postgres-feast")
    assert data["postgres-password"] == feast_database["password"]
    assert data["registry-url"].startswith(
        f"postgresql+psycopg://feast:{feast_database['password']}@"
    )


def test_the_workloads_name_what_the_platform_creates() -> None:
    from workloads.serving import inference_service as isvc

    assert isvc.RUNTIME == kserve.MLFLOW_RUNTIME
    assert isvc.SERVICE_ACCOUNT == kserve.SERVICE_ACCOUNT
    assert (isvc.FEAST_CONFIG_MAP, isvc.FEAST_SECRET) == (kserve.FEAST_CLIENT,) * 2
    assert isvc.FEAST_SECRET_ENV == kserve.FEAST_CLIENT_KEYS
    assert (isvc.PREDICTION_LOG_CONFIG_MAP, isvc.STORAGE_SECRET) == (
        kserve.PREDICTION_LOG,
        kserve.STORAGE_SECRET,
    )
    assert isvc.Target().image == versions.WORKLOADS_IMAGE
    assert isvc.Target().namespace == evaluate({}).outputs["kserve"]["modelNamespace"]
    assert kserve.MLFLOW_RUNTIME_PORTS["metrics"] == isvc.PREDICTOR_METRICS_PORT
    assert isvc.TRANSFORMER_UID == versions.WORKLOADS_UID


def test_the_platform_declares_every_series_the_drift_check_pushes() -> None:
    from workloads.monitoring.metrics import SERIES

    assert kserve.MODEL_MONITORING_METRICS == SERIES
