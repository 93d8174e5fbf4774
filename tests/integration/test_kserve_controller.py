"""KServe's controller reconciling the golden path's InferenceService on the local control plane.

The deploy step's own code (workloads/training/kube.py) applies the InferenceService the
training workflow builds (workloads/serving/inference_service.py) for the ci stack's model
namespace and image, through KServe's real admission webhooks, and waits until the controller
(scripts/kserve-controller.sh, the pinned release) reports it Ready once kwok marks its pods
ready. Then what it reconciled is checked against the platform's ServingRuntime, Secret and
ServiceAccount; two bad InferenceServices fail the deploy step with KServe's own message; and
deleting the InferenceService removes everything it owned. Local mode only (it deploys models).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from infra import versions
from infra.components import kserve as platform_kserve
from mlops import stackfile
from tests.integration.conftest import LOCAL_STACK, TIMINGS, Deployment
from tests.support.tools import require_module

require_module("kubernetes", "the workloads dependency group")

from workloads.serving import inference_service as isvc  # noqa: E402
from workloads.training import kube  # noqa: E402

pytestmark = pytest.mark.lifecycle
MODEL = "fraud-detector"
VERSION = "7"
# The storage initializer's arguments: the model's URI, then where the predictor reads it.
MODEL_DIR = "/mnt/models"
# The label KServe puts on every pod, Deployment and Service of an InferenceService.
ISVC_LABEL = platform_kserve.INFERENCE_SERVICE_LABEL
READY_TIMEOUT = 180.0
CONFIG = stackfile.read(LOCAL_STACK).config()


@dataclass(frozen=True)
class Reconciled:
    namespace: str
    manifest: dict[str, Any]
    status: dict[str, Any]
    seconds_to_ready: float


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container's env by name: a literal value, or its `valueFrom`."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def one(items: list[dict[str, Any]], what: str) -> dict[str, Any]:
    assert len(items) == 1, f"{what}: {[i['metadata']['name'] for i in items]}"
    return items[0]


@pytest.fixture(scope="module")
def models(deployed: Deployment, monkeypatch_module: pytest.MonkeyPatch) -> str:
    """The model namespace, with the deploy step's environment pointing at the ci stack's
    cluster, model namespace and workloads image (what the platform gives Flyte's tasks)."""
    assert CONFIG.kserve is not None
    monkeypatch_module.setenv("KUBECONFIG", deployed.env["KUBECONFIG"])
    monkeypatch_module.setenv("MLOPS_MODEL_NAMESPACE", CONFIG.kserve.model_namespace)
    monkeypatch_module.setenv("MLOPS_WORKLOADS_IMAGE", CONFIG.images.workloads)
    return CONFIG.kserve.model_namespace


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def storage_uri(deployed: Deployment) -> str:
    outputs = json.loads(deployed.pulumi("stack", "output", "--json").stdout)
    return f"s3://{outputs['objectStore']['buckets']['models']}/1/models/m-0123/artifacts"


@pytest.fixture(scope="module")
def reconciled(models: str, storage_uri: str) -> Reconciled:
    """The golden path's InferenceService, deployed by the deploy step's code and Ready."""
    manifest = isvc.inference_service(MODEL, VERSION, storage_uri, isvc.Target.from_env())
    started = time.monotonic()
    status = kube.deploy_inference_service(manifest, timeout=READY_TIMEOUT)
    seconds = time.monotonic() - started
    TIMINGS.append(("kserve: InferenceService applied -> Ready (controller + kwok)", seconds))
    return Reconciled(models, manifest, status, seconds)


def get(deployed: Deployment, *args: str) -> dict[str, Any]:
    return deployed.get(*args)


def test_the_controller_makes_the_golden_path_inference_service_ready(
    reconciled: Reconciled,
) -> None:
    status = reconciled.status["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True"
    assert conditions["PredictorReady"] == "True"
    assert conditions["TransformerReady"] == "True"
    assert status["modelStatus"]["transitionStatus"] == "UpToDate"
    # The runtime the platform installs serves it: the builder names it, the controller agrees.
    assert status["servingRuntimeName"] == platform_kserve.MLFLOW_RUNTIME


def test_the_predictor_runs_the_platforms_runtime(
    deployed: Deployment, reconciled: Reconciled
) -> None:
    ns = reconciled.namespace
    runtime = get(deployed, "servingruntime", platform_kserve.MLFLOW_RUNTIME, "-n", ns)
    (served,) = runtime["spec"]["containers"]
    deployment = get(deployed, "deployment", f"{MODEL}-predictor", "-n", ns)
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == served["image"] == CONFIG.images.serving
    assert container["command"] == served["command"]
    assert container["ports"] == served["ports"]
    assert container["securityContext"] == served["securityContext"]
    env = env_of(container)
    for name, value in env_of(served).items():
        # KServe fills {{.Name}} with the InferenceService's name.
        assert env[name] == value.replace("{{.Name}}", MODEL), name
    # The model's own env and resources win over the runtime's.
    assert env["MLSERVER_MODEL_VERSION"] == VERSION
    model = reconciled.manifest["spec"]["predictor"]["model"]
    assert container["resources"] == model["resources"]
    assert pod["spec"]["serviceAccountName"] == platform_kserve.SERVICE_ACCOUNT
    # The runtime's annotations (where Prometheus scrapes) reach the pod template.
    for key, value in runtime["spec"]["annotations"].items():
        assert pod["metadata"]["annotations"][key] == value, key
    assert pod["metadata"]["labels"][ISVC_LABEL] == MODEL
    # The storage initializer is not in the Deployment: the pod webhook injects it.
    source = pod["metadata"]["annotations"][
        "internal.serving.kserve.io/storage-initializer-sourceuri"
    ]
    assert source == model["storageUri"]


def predictor_pod(deployed: Deployment, ns: str) -> dict[str, Any]:
    pods = get(deployed, "pods", "-n", ns, "-l", f"{ISVC_LABEL}={MODEL},component=predictor")[
        "items"
    ]
    return one(pods, "predictor pods")


def test_the_storage_initializer_reads_the_model_with_the_platforms_credentials(
    deployed: Deployment, reconciled: Reconciled
) -> None:
    ns = reconciled.namespace
    pod = predictor_pod(deployed, ns)
    (init,) = pod["spec"]["initContainers"]
    assert init["name"] == "storage-initializer"
    assert init["image"] == versions.KSERVE_STORAGE_INITIALIZER_IMAGE
    storage_uri = reconciled.manifest["spec"]["predictor"]["model"]["storageUri"]
    assert init["args"] == [storage_uri, MODEL_DIR]
    secret = get(deployed, "secret", platform_kserve.STORAGE_SECRET, "-n", ns)
    annotations = secret["metadata"]["annotations"]
    env = env_of(init)
    # The credentials come from the Secret the platform's ServiceAccount names, by reference.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        reference = {"secretKeyRef": {"name": platform_kserve.STORAGE_SECRET, "key": key}}
        assert env[key] == reference, key
    endpoint = annotations["serving.kserve.io/s3-endpoint"]
    assert env["S3_ENDPOINT"] == endpoint
    assert env["AWS_ENDPOINT_URL"] == f"http://{endpoint}"
    assert env["S3_USE_HTTPS"] == annotations["serving.kserve.io/s3-usehttps"]
    assert env["S3_VERIFY_SSL"] == annotations["serving.kserve.io/s3-verifyssl"]
    assert env["AWS_DEFAULT_REGION"] == annotations["serving.kserve.io/s3-region"]
    # The model reaches the predictor through a shared volume at MODEL_DIR, read-only there.
    (mount,) = [m for m in init["volumeMounts"] if m["mountPath"] == MODEL_DIR]
    (served,) = [c for c in pod["spec"]["containers"] if c["name"] == "kserve-container"]
    (read,) = [m for m in served["volumeMounts"] if m["mountPath"] == MODEL_DIR]
    assert read["name"] == mount["name"] and read["readOnly"] is True
    # No credential value is written into the pod.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        result = deployed.run(
            deployed.kubectl,
            "get",
            "secret",
            platform_kserve.STORAGE_SECRET,
            "-n",
            ns,
            "-o",
            f"go-template={{{{index .data {json.dumps(key)} | base64decode}}}}",
        )
        assert result.returncode == 0 and len(result.stdout) >= 8, result.stderr
        assert result.stdout not in json.dumps(pod), key


def test_the_transformer_is_wired_to_the_predictor(
    deployed: Deployment, reconciled: Reconciled
) -> None:
    ns = reconciled.namespace
    deployment = get(deployed, "deployment", f"{MODEL}-transformer", "-n", ns)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == CONFIG.images.workloads
    # The builder's own argument first, then the ones KServe adds (each flag, then its value).
    args = container["args"]
    built = reconciled.manifest["spec"]["transformer"]["containers"][0]["args"]
    assert args[: len(built)] == built
    added = dict(zip(args[len(built) :: 2], args[len(built) + 1 :: 2], strict=True))
    assert added["--model_name"] == MODEL
    assert added["--predictor_host"] == f"{MODEL}-predictor.{ns}"
    assert added["--http_port"] == str(isvc.TRANSFORMER_PORT)
    # Its Service answers on the port the transformer listens on; the predictor's on MLServer's.
    services = {
        s["metadata"]["name"]: s
        for s in get(deployed, "services", "-n", ns, "-l", f"{ISVC_LABEL}={MODEL}")["items"]
    }
    assert set(services) >= {f"{MODEL}-predictor", f"{MODEL}-transformer"}
    predictor_port = services[f"{MODEL}-predictor"]["spec"]["ports"][0]
    assert predictor_port["targetPort"] == platform_kserve.MLFLOW_RUNTIME_PORTS["http"]
    transformer_port = services[f"{MODEL}-transformer"]["spec"]["ports"][0]
    assert transformer_port["targetPort"] == isvc.TRANSFORMER_PORT


def test_a_name_the_webhook_refuses_fails_the_deploy_step_with_its_message(
    models: str, storage_uri: str
) -> None:
    # MLflow allows dots in a registered model's name; an InferenceService name must not.
    manifest = isvc.inference_service("fraud.v2", VERSION, storage_uri, isvc.Target.from_env())
    started = time.monotonic()
    with pytest.raises(kube.DeployError) as refused:
        kube.deploy_inference_service(manifest, timeout=READY_TIMEOUT)
    message = str(refused.value)
    print(f"\ndeploy step: {message}")
    assert time.monotonic() - started < 30
    assert message == (
        f"InferenceService {models}/fraud.v2 was refused: admission webhook "
        '"inferenceservice.kserve-webhook-server.validator" denied the request: the '
        'InferenceService "fraud.v2" is invalid: a InferenceService name must consist of lower '
        "case alphanumeric characters or '-', and must start with alphabetical character. "
        '(e.g. "my-name" or "abc-123", regex used for validation is '
        "'[a-z]([-a-z0-9]*[a-z0-9])?')"
    )


def test_a_model_format_no_runtime_serves_fails_the_deploy_step_with_the_controllers_reason(
    deployed: Deployment, models: str, storage_uri: str
) -> None:
    # A model logged by MLflow 2: the platform's runtime serves MLflow 3 models only.
    manifest = isvc.inference_service("fraud-mlflow2", VERSION, storage_uri, isvc.Target.from_env())
    manifest["spec"]["predictor"]["model"]["modelFormat"]["version"] = "2"
    started = time.monotonic()
    with pytest.raises(kube.DeployError) as failed:
        kube.deploy_inference_service(manifest, timeout=READY_TIMEOUT)
    message = str(failed.value)
    print(f"\ndeploy step: {message}")
    assert time.monotonic() - started < 60
    assert message == (
        f"InferenceService {models}/fraud-mlflow2 cannot run: NoSupportingRuntime: Specified "
        "runtime does not support specified framework/version"
    )
    found = get(deployed, "deployments", "-n", models, "-l", f"{ISVC_LABEL}=fraud-mlflow2")
    assert found["items"] == []
    deleted = deployed.run(
        deployed.kubectl, "delete", "inferenceservice", "fraud-mlflow2", "-n", models, "--wait"
    )
    assert deleted.returncode == 0, deleted.stderr


def test_deleting_the_inference_service_removes_everything_it_owned(
    deployed: Deployment, reconciled: Reconciled
) -> None:
    ns = reconciled.namespace
    deleted = deployed.run(
        deployed.kubectl, "delete", "inferenceservice", MODEL, "-n", ns, "--wait", timeout=120
    )
    assert deleted.returncode == 0, deleted.stderr
    deadline = time.monotonic() + 90
    while True:
        left = [
            f"{kind}/{item['metadata']['name']}"
            for kind in ("deployments", "replicasets", "pods", "services", "inferenceservices")
            for item in get(deployed, kind, "-n", ns, "-l", f"{ISVC_LABEL}={MODEL}")["items"]
        ] + [
            f"inferenceservice/{item['metadata']['name']}"
            for item in get(deployed, "inferenceservices", "-n", ns)["items"]
        ]
        if not left:
            break
        assert time.monotonic() < deadline, f"left after deleting the InferenceService: {left}"
        time.sleep(2)
