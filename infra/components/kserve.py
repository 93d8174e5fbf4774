"""KServe in Standard (raw Deployment) mode, after cert-manager, and what model deployments need.

Install order, each step an explicit dependency of the next: cert-manager (its CRDs with it;
Helm waits until the webhook answers), KServe's CRD chart, KServe's resources chart (its
webhook certificate is a cert-manager Certificate), then the serving runtimes chart (sklearn
and MLServer for MLflow models; the others are registered disabled). On a cluster that already
runs cert-manager (`certManager.install: false`) the KServe charts are installed without it.
Chart repositories and every image registry can point at mirrors.

Whether it installs or finds KServe already there, the component creates the model namespace,
an S3 credentials Secret annotated for KServe's storage initializer (from the object storage
outputs) and a ServiceAccount that carries it: an InferenceService with
`serviceAccountName: <service_account>` can read `s3://<models bucket>/...` storage URIs.
With a private registry's login, the ServiceAccount and the `mlops-mlflow` ServingRuntime also
name the namespace's pull Secret, so predictor and transformer pods can pull project images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from infra import kube, network, sizes, versions
from infra.components.feast import FeatureStoreClient
from infra.components.object_store import S3Endpoint
from infra.config import KserveConfig
from infra.observability import PodDiscovery, Telemetry, histogram

COMPONENT = "kserve"
NAMESPACE = "kserve"
CERT_MANAGER_NAMESPACE = "cert-manager"
STORAGE_SECRET = "kserve-s3"
SERVICE_ACCOUNT = "kserve-models"
# The Prometheus job of the predictors (pod discovery in the model namespace).
INFERENCE_JOB = "inference"
# The pod label KServe puts on an InferenceService's pods, naming it.
INFERENCE_SERVICE_LABEL = "serving.kserve.io/inferenceservice"
# The pod label KServe puts on an InferenceService's pods, naming their part.
COMPONENT_LABEL = "component"
# Where the platform's runtime (MLFLOW_RUNTIME) and the fraud transformer listen.
PREDICTOR_PORTS = {"http": 8080, "metrics": 8082}
TRANSFORMER_PORTS = {"http": 8080}
# Runtimes registered enabled; the chart's others are registered with `disabled: true`.
RUNTIMES = ("sklearnserver", "mlserver")
# The chart's other runtime switches (kserve-runtime-configs v0.20.0 values, servingruntime.*).
# `huggingfaceserver` switches the multinode runtime too: the chart reads no other key for it.
DISABLED_RUNTIMES = (
    "autogluonserver",
    "huggingfaceserver",
    "lgbserver",
    "paddleserver",
    "pmmlserver",
    "predictiveserver",
    "tensorflow",
    "torchserve",
    "tritonserver",
    "vllmserver",
    "xgbserver",
)
# What the predictors expose (kserve/kserve python/kserve/kserve/metrics.py; MLServer's
# mlserver/metrics and rest server): KServe Python runtimes time requests without a status,
# MLServer counts them by status code.
INFERENCE_METRICS = (
    histogram("request_predict_seconds")
    | histogram("request_preprocess_seconds")
    | histogram("request_postprocess_seconds")
    | histogram("rest_server_request_duration_seconds")
    # The fraud transformer's, each with a status label.
    | histogram("transformer_request_duration_seconds")
    | histogram("transformer_feature_fetch_duration_seconds")
    | histogram("transformer_predictor_duration_seconds")
    | {
        "rest_server_requests_total",
        "model_infer_request_success_total",
        "model_infer_request_failure_total",
    }
    # The transformer's prediction log (workloads/monitoring/prediction_log.py).
    | {"prediction_log_records_total", "prediction_log_dropped_records_total"}
    | histogram("prediction_log_write_duration_seconds")
)
# What the drift check pushes through the Pushgateway (workloads/monitoring/metrics.py).
MODEL_MONITORING_METRICS = frozenset(
    {
        "model_feature_drift_score",
        "model_feature_drifted",
        "model_drifted_features_share",
        "model_drift_threshold",
        "model_drift_window_rows",
        "model_drift_enough_data",
        "model_prediction_quantile",
        "model_prediction_positive_share",
        "model_drift_check_last_run_timestamp_seconds",
        "model_drift_check_last_success_timestamp_seconds",
        "model_drift_check_failed",
        "model_drift_check_interval_seconds",
        "model_retraining_last_launch_timestamp_seconds",
        "model_retraining_last_outcome",
    }
)
# workloads/serving/inference_service.py reads the prediction log's settings from this
# ConfigMap in the model namespace.
PREDICTION_LOG = "prediction-log"
# The platform's runtime for MLflow 3 models (KServe's own MLServer runtime matches formats 1 and
# 2 only): MLServer's MLflow runtime on this project's serving image, whose model libraries are
# training's (uv.lock). workloads/serving/inference_service.py names it.
MLFLOW_RUNTIME = "mlops-mlflow"
MLFLOW_RUNTIME_PORTS = {"http": 8080, "grpc": 9000, "metrics": 8082}
# The serving image's MLServer runtime (workloads/serving/runtime.py): one [n, k] FP64 tensor
# in, the model's pyfunc predict_fn out; no DataFrame and no schema enforcement per request.
MLFLOW_RUNTIME_IMPLEMENTATION = "workloads.serving.runtime.MLflowTensorRuntime"
# What the fraud model's predictor measured (workloads/serving/inference_service.py, Target),
# for InferenceServices that name the runtime without resources of their own.
MLFLOW_RUNTIME_RESOURCES = sizes.Resources.of("450m", "512Mi", "1", "1Gi")
# workloads/serving/inference_service.py reads these names in the model namespace.
FEAST_CLIENT = "feast-client"
FEAST_CLIENT_KEYS = {
    "FEAST_REGISTRY_URL": "registry-url",
    "FEAST_POSTGRES_PASSWORD": "postgres-password",
    "FEAST_REDIS_PASSWORD": "redis-password",
}
DEPLOYER_ROLE = "inference-deployer"
# What a training task may do in the model namespace: create or update an InferenceService.
DEPLOYER_RULES = [
    {
        "apiGroups": ["serving.kserve.io"],
        "resources": ["inferenceservices"],
        "verbs": ["get", "create", "patch"],
    }
]
CONTROLLER_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
CERT_MANAGER_RESOURCES = {
    "requests": {"cpu": "10m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}


@dataclass(frozen=True)
class KserveArgs:
    config: KserveConfig
    storage: S3Endpoint
    # The project's model server image, run by the `mlops-mlflow` ServingRuntime.
    serving_image: str
    # The store config and credentials the transformer reads features with (None: no Feast).
    feature_store: FeatureStoreClient | None = None
    # ServiceAccounts (namespace, name) allowed to deploy models: Flyte's training tasks.
    deployers: tuple[tuple[str, str], ...] = ()
    # The registry login for the project images (None: they are public or on the nodes).
    image_pull: kube.ImagePull | None = None
    # Where transformers log predictions: MLOPS_PREDICTION_LOG_URI and the S3 endpoint
    # variables (None: not logged). The credentials are the storage Secret's.
    prediction_log: dict[str, str] | None = None


def mirrored(image: str, registry: str | None) -> str:
    """An image reference with its registry host replaced by a mirror's (None: unchanged).

    `kserve/sklearnserver` is a Docker Hub path: its registry is docker.io.
    """
    if registry is None:
        return image
    first, _, rest = image.partition("/")
    has_host = "." in first or ":" in first or first == "localhost"
    return f"{registry}/{rest if has_host and rest else image}"


def s3_annotations(endpoint: str, region: str) -> dict[str, str]:
    """What KServe's storage initializer reads from the Secret (pkg/credentials/s3)."""
    url = urlsplit(endpoint)
    https = url.scheme == "https"
    return {
        "serving.kserve.io/s3-endpoint": url.netloc,
        "serving.kserve.io/s3-usehttps": "1" if https else "0",
        "serving.kserve.io/s3-verifyssl": "1" if https else "0",
        "serving.kserve.io/s3-region": region,
    }


def mlflow_runtime(
    namespace: str, image: str, image_pull: kube.ImagePull | None = None
) -> dict[str, Any]:
    """The ServingRuntime of MLflow 3 models. KServe fills `{{.Name}}` with the
    InferenceService's name, mounts the model at /mnt/models and copies `imagePullSecrets`
    into the predictor's pod."""
    ports = MLFLOW_RUNTIME_PORTS
    env = {
        "MLSERVER_MODEL_IMPLEMENTATION": MLFLOW_RUNTIME_IMPLEMENTATION,
        "MLSERVER_MODEL_NAME": "{{.Name}}",
        "MLSERVER_MODEL_URI": "/mnt/models",
        "MLSERVER_HTTP_PORT": str(ports["http"]),
        "MLSERVER_GRPC_PORT": str(ports["grpc"]),
        "MLSERVER_METRICS_PORT": str(ports["metrics"]),
        # Parallel inference workers die at start with uvloop 0.23 (no current event loop);
        # one process also keeps a small model's latency lowest.
        "MLSERVER_PARALLEL_WORKERS": "0",
        "MLSERVER_LOAD_MODELS_AT_STARTUP": "true",
        # Debug (the default) writes an access-log line per request and logs at DEBUG.
        "MLSERVER_DEBUG": "false",
        # Its callers sit in the same cluster: compressing answers only costs both sides CPU.
        "MLSERVER_GZIP_ENABLED": "false",
        # Tree ensembles predict a few rows at a time: OpenMP threads that spin between
        # requests only take CPU from the transformer next to them.
        "OMP_NUM_THREADS": "1",
        "HOME": "/tmp",
    }
    container = {
        "name": "kserve-container",
        "image": image,
        "command": ["mlserver", "start", "/mnt/models"],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"containerPort": ports["http"], "name": "http", "protocol": "TCP"}],
        "resources": kube.resources(MLFLOW_RUNTIME_RESOURCES),
        "securityContext": {
            **kube.container_security_context(read_only_root=False),
            "runAsUser": versions.WORKLOADS_UID,
        },
    }
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {
            "name": MLFLOW_RUNTIME,
            "namespace": namespace,
            "annotations": {"serving.kserve.io/server-type": "mlserver"},
        },
        "spec": {
            "annotations": {
                "prometheus.kserve.io/port": str(ports["metrics"]),
                "prometheus.kserve.io/path": "/metrics",
            },
            "supportedModelFormats": [
                {"name": "mlflow", "version": "3", "autoSelect": True, "priority": 1}
            ],
            "protocolVersions": ["v2"],
            "containers": [container],
            **kube.image_pull_fields(image_pull),
        },
    }


def inference_pods(namespace: str, part: str) -> network.Pods:
    """An InferenceService part's pods (predictor or transformer), as KServe labels them."""
    return network.Pods(
        f"inference-{part}",
        namespace,
        {
            "matchLabels": {COMPONENT_LABEL: part},
            "matchExpressions": [{"key": INFERENCE_SERVICE_LABEL, "operator": "Exists"}],
        },
    )


def inference_network(args: KserveArgs) -> network.Network:
    """The InferenceService pods of the model namespace: the storage initializer in the
    predictor reads the model from S3; the transformer calls the predictor, reads features
    and logs predictions; Prometheus discovers both; an ingress class exposes both."""
    ns = args.config.model_namespace
    predictor = network.Listener(inference_pods(ns, "predictor"), PREDICTOR_PORTS)
    transformer = network.Listener(inference_pods(ns, "transformer"), TRANSFORMER_PORTS)
    reads = (
        *(args.feature_store.addresses if args.feature_store else ()),
        *((args.storage.address,) if args.prediction_log is not None else ()),
    )
    served = (predictor.at("http"), transformer.at("http"))
    return network.Network(
        COMPONENT,
        pods=(predictor.pods, transformer.pods),
        listeners=(predictor, transformer),
        edges=(
            network.Edge(predictor.pods, args.storage.address),
            network.Edge(transformer.pods, predictor.at("http")),
            *(network.Edge(transformer.pods, address) for address in reads),
        ),
        discovered=(predictor.at("metrics"), transformer.at("http")),
        exposed=served if args.config.ingress_class is not None else (),
    )


def cert_manager_values(cfg: KserveConfig) -> dict[str, Any]:
    values: dict[str, Any] = {
        "crds": {"enabled": True},
        "resources": CERT_MANAGER_RESOURCES,
        "webhook": {"resources": CERT_MANAGER_RESOURCES},
        "cainjector": {"resources": CERT_MANAGER_RESOURCES},
        "startupapicheck": {"resources": CERT_MANAGER_RESOURCES},
    }
    if cfg.cert_manager.image_registry is not None:
        # Since v1.20 every image is <imageRegistry>/<imageNamespace>/<name>.
        values["imageRegistry"] = cfg.cert_manager.image_registry
    return values


def resources_values(cfg: KserveConfig) -> dict[str, Any]:
    registry = cfg.image_registry
    gateway: dict[str, Any] = {"disableIngressCreation": cfg.ingress_class is None}
    if cfg.ingress_class is not None:
        gateway["ingressGateway"] = {"className": cfg.ingress_class}
    controller: dict[str, Any] = {
        "deploymentMode": "Standard",
        "gateway": gateway,
        "resources": CONTROLLER_RESOURCES,
        "rbacProxyImage": mirrored(versions.KSERVE_RBAC_PROXY_IMAGE, registry),
    }
    values: dict[str, Any] = {"controller": controller}
    if registry is not None:
        controller["image"] = mirrored("kserve/kserve-controller", registry)
        values["storage"] = {"image": mirrored("kserve/storage-initializer", registry)}
        values["agent"] = {"image": mirrored("kserve/agent", registry)}
        values["router"] = {"image": mirrored("kserve/router", registry)}
    return {"kserve": values}


def runtime_values(cfg: KserveConfig) -> dict[str, Any]:
    registry = cfg.image_registry
    mlserver, _, mlserver_tag = versions.MLSERVER_IMAGE.rpartition(":")
    runtimes: dict[str, Any] = {
        "enabled": True,
        "sklearnserver": {"disabled": False},
        "mlserver": {
            "disabled": False,
            "image": mirrored(mlserver, registry),
            "tag": mlserver_tag,
        },
        **{name: {"disabled": True} for name in DISABLED_RUNTIMES},
    }
    if registry is not None:
        runtimes["sklearnserver"]["image"] = mirrored("kserve/sklearnserver", registry)
    return {"kserve": {"servingruntime": runtimes, "llmisvcConfigs": {"enabled": False}}}


class Kserve(pulumi.ComponentResource):
    model_namespace: str
    service_account: str
    storage_secret: str
    telemetry: Telemetry
    network: network.Network
    # The stack outputs, under the key "kserve".
    outputs: dict[str, Any]

    def __init__(
        self, name: str, args: KserveArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:components:Kserve", name, None, opts)
        cfg = args.config
        self.model_namespace = cfg.model_namespace
        self.service_account = SERVICE_ACCOUNT
        self.storage_secret = STORAGE_SECRET
        installed: list[pulumi.Resource] = self._install(cfg) if cfg.install else []
        self._model_namespace(args, installed)
        self.network = inference_network(args)
        self.telemetry = Telemetry(
            COMPONENT,
            discovery=(
                PodDiscovery(
                    INFERENCE_JOB, self.model_namespace, INFERENCE_SERVICE_LABEL, "inferenceservice"
                ),
            ),
            metrics=frozenset(INFERENCE_METRICS | MODEL_MONITORING_METRICS),
            rules=("serving.yaml", "model_monitoring.yaml"),
        )
        self.outputs = {
            "kserve": {
                "modelNamespace": self.model_namespace,
                "serviceAccount": SERVICE_ACCOUNT,
                "storageSecret": STORAGE_SECRET,
            }
        }
        self.register_outputs(self.outputs)

    def _release(
        self,
        name: str,
        repository: str,
        version: str,
        namespace: str,
        values: dict[str, Any],
        needs: list[pulumi.Resource],
    ) -> k8s.helm.v3.Release:
        """A Helm release that waits for its resources, from an OCI or an HTTP repository."""
        oci = repository.startswith("oci://")
        return k8s.helm.v3.Release(
            name,
            name=name,
            chart=f"{repository.rstrip('/')}/{name}" if oci else name,
            repository_opts=None if oci else k8s.helm.v3.RepositoryOptsArgs(repo=repository),
            version=version,
            namespace=namespace,
            values=values,
            skip_await=False,
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=needs),
        )

    def _install(self, cfg: KserveConfig) -> list[pulumi.Resource]:
        child = pulumi.ResourceOptions(parent=self)
        # The operators' own pods are not all restricted-ready: baseline, warned as restricted.
        cert_manager: list[pulumi.Resource] = []
        if cfg.cert_manager.install:
            cert_ns = kube.namespace(CERT_MANAGER_NAMESPACE, child, enforce="baseline")
            cert_manager.append(
                self._release(
                    "cert-manager",
                    cfg.cert_manager.chart_repository,
                    versions.CERT_MANAGER_VERSION,
                    CERT_MANAGER_NAMESPACE,
                    cert_manager_values(cfg),
                    [cert_ns],
                )
            )
        kserve_ns = kube.namespace(NAMESPACE, child, enforce="baseline")
        crds = self._release(
            "kserve-crd",
            cfg.chart_repository,
            versions.KSERVE_VERSION,
            NAMESPACE,
            {},
            [kserve_ns],
        )
        resources = self._release(
            "kserve-resources",
            cfg.chart_repository,
            versions.KSERVE_VERSION,
            NAMESPACE,
            resources_values(cfg),
            [kserve_ns, crds, *cert_manager],
        )
        runtimes = self._release(
            "kserve-runtime-configs",
            cfg.chart_repository,
            versions.KSERVE_VERSION,
            NAMESPACE,
            runtime_values(cfg),
            [resources],
        )
        return [resources, runtimes]

    def _model_namespace(self, args: KserveArgs, installed: list[pulumi.Resource]) -> None:
        ns, storage = self.model_namespace, args.storage
        # KServe injects its storage initializer into predictor pods: baseline, warned as
        # restricted.
        namespace = kube.namespace(
            ns, pulumi.ResourceOptions(parent=self, depends_on=installed), enforce="baseline"
        )
        after = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        k8s.core.v1.Secret(
            STORAGE_SECRET,
            metadata=kube.metadata(
                STORAGE_SECRET,
                ns,
                COMPONENT,
                "model-storage",
                annotations=s3_annotations(storage.url, storage.region),
            ),
            type="Opaque",
            string_data={
                "AWS_ACCESS_KEY_ID": storage.access_key,
                "AWS_SECRET_ACCESS_KEY": storage.secret_key,
            },
            opts=after,
        )
        if args.image_pull is not None:
            kube.image_pull_secret(ns, COMPONENT, args.image_pull, after)
        runtime = mlflow_runtime(ns, args.serving_image, args.image_pull)
        k8s.apiextensions.CustomResource(
            MLFLOW_RUNTIME,
            api_version=runtime["apiVersion"],
            kind=runtime["kind"],
            metadata=kube.metadata(
                MLFLOW_RUNTIME,
                ns,
                COMPONENT,
                "model-serving",
                annotations=runtime["metadata"]["annotations"],
            ),
            spec=runtime["spec"],
            opts=after,
        )
        k8s.core.v1.ServiceAccount(
            SERVICE_ACCOUNT,
            metadata=kube.metadata(SERVICE_ACCOUNT, ns, COMPONENT, "model-storage"),
            secrets=[{"name": STORAGE_SECRET}],
            image_pull_secrets=kube.image_pull_fields(args.image_pull).get("imagePullSecrets"),
            automount_service_account_token=False,
            opts=after,
        )
        if args.feature_store is not None:
            self._feature_store_client(ns, args.feature_store, after)
        if args.prediction_log is not None:
            k8s.core.v1.ConfigMap(
                PREDICTION_LOG,
                metadata=kube.metadata(PREDICTION_LOG, ns, COMPONENT, "prediction-log"),
                data=args.prediction_log,
                opts=after,
            )
        if args.deployers:
            self._deployers(ns, args.deployers, after)

    def _feature_store_client(
        self, ns: str, client: FeatureStoreClient, opts: pulumi.ResourceOptions
    ) -> None:
        """The store config and its credentials, for the transformers in the model namespace."""
        k8s.core.v1.ConfigMap(
            f"{FEAST_CLIENT}-config",
            metadata=kube.metadata(FEAST_CLIENT, ns, COMPONENT, "feature-client"),
            data={"feature_store.yaml": client.serving_config},
            opts=opts,
        )
        kube.secret(
            FEAST_CLIENT,
            ns,
            COMPONENT,
            "feature-client",
            {key: client.secrets[variable] for variable, key in FEAST_CLIENT_KEYS.items()},
            self,
        )

    def _deployers(
        self, ns: str, deployers: tuple[tuple[str, str], ...], opts: pulumi.ResourceOptions
    ) -> None:
        k8s.rbac.v1.Role(
            DEPLOYER_ROLE,
            metadata=kube.metadata(DEPLOYER_ROLE, ns, COMPONENT, "model-deployment"),
            rules=DEPLOYER_RULES,
            opts=opts,
        )
        k8s.rbac.v1.RoleBinding(
            DEPLOYER_ROLE,
            metadata=kube.metadata(DEPLOYER_ROLE, ns, COMPONENT, "model-deployment"),
            role_ref={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": DEPLOYER_ROLE,
            },
            subjects=[
                {"kind": "ServiceAccount", "name": name, "namespace": namespace}
                for namespace, name in deployers
            ],
            opts=opts,
        )
