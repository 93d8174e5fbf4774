"""The composition root: builds each enabled component and hands each the endpoints it needs."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import pulumi

from infra import kube, network
from infra.components import monitoring, pushgateway
from infra.components.backup import Backup, BackupArgs, BackupTarget
from infra.components.feast import Feast, FeastArgs
from infra.components.flyte import Flyte, FlyteArgs, TaskEnvironment, training_accounts
from infra.components.kserve import Kserve, KserveArgs
from infra.components.mlflow import Mlflow, MlflowArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.object_store import ObjectStore, ObjectStoreArgs, S3Endpoint
from infra.components.postgres import Postgres, PostgresArgs
from infra.components.redis import Redis, RedisArgs
from infra.config import NEEDS, PlatformConfig
from infra.configtypes import reveal
from infra.observability import Telemetry


class Part(Protocol):
    """What the Platform reads of every component: its declarations and its stack outputs."""

    @property
    def telemetry(self) -> Telemetry | tuple[Telemetry, ...]: ...

    @property
    def network(self) -> network.Network: ...

    @property
    def outputs(self) -> dict[str, Any]: ...


T = TypeVar("T")
P = TypeVar("P", bound=Part)


def _provided(provider: T | None, service: str) -> T:
    """A provider the service stands on; `config.load` refuses a service without it."""
    if provider is None:
        raise RuntimeError(f"{service} needs {' and '.join(NEEDS[service])}")
    return provider


def task_environment(
    config: PlatformConfig, mlflow: Mlflow | None, feast: Feast | None, store: S3Endpoint
) -> TaskEnvironment | None:
    """What the reference training and drift-check tasks need in Flyte's project namespaces:
    MLflow, the feature store, where to deploy, the prediction log (with S3 credentials) and
    the drift check's settings; None unless MLflow, Feast and KServe are enabled."""
    if mlflow is None or feast is None or config.mlflow is None or config.kserve is None:
        return None
    drift = config.kserve.drift_check
    return TaskEnvironment(
        settings={
            "MLFLOW_TRACKING_URI": mlflow.tracking_uri,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLOPS_MLFLOW_ARTIFACTS": mlflow.artifacts_destination,
            "MLOPS_MODEL_NAMESPACE": config.kserve.model_namespace,
            "MLOPS_WORKLOADS_IMAGE": config.images.workloads,
            "FEAST_FS_YAML_FILE_PATH": "/etc/feast/feature_store.yaml",
            **prediction_log_settings(store),
            "MLOPS_DRIFT_THRESHOLD": str(drift.threshold),
            "MLOPS_DRIFT_COLUMN_THRESHOLD": str(drift.column_threshold),
            "MLOPS_DRIFT_WINDOW_HOURS": str(drift.window_hours),
            "MLOPS_DRIFT_MIN_ROWS": str(drift.min_rows),
            "MLOPS_RETRAINING_COOLDOWN_HOURS": str(drift.cooldown_hours),
            # Monitoring is built last (it watches everything); its Pushgateway's address is
            # known from the namespace alone.
            **(
                {"MLOPS_PUSHGATEWAY_URL": pushgateway.url(config.namespace)}
                if config.monitoring
                else {}
            ),
        },
        feature_store_yaml=feast.store_config,
        reaches=(
            mlflow.address,
            feast.address,
            *feast.client.addresses,
            store.address,
            *((pushgateway_address(config.namespace),) if config.monitoring else ()),
        ),
        secrets={
            "MLFLOW_TRACKING_PASSWORD": reveal(config.mlflow.admin_password),
            "AWS_ACCESS_KEY_ID": store.access_key,
            "AWS_SECRET_ACCESS_KEY": store.secret_key,
            **feast.client.secrets,
        },
    )


def pushgateway_address(namespace: str) -> network.Address:
    """Where batch jobs push their metrics; Monitoring, built last, declares the listener."""
    return monitoring.listener(pushgateway.PUSHGATEWAY, namespace, pushgateway.PORT).at("http")


def prediction_log_settings(store: S3Endpoint) -> dict[str, str]:
    """Where served predictions are logged (workloads/monitoring/prediction_log.py), for the
    transformer that writes them and the drift check that reads them."""
    return {
        "MLOPS_PREDICTION_LOG_URI": f"s3://{store.buckets['predictions']}/log",
        "AWS_ENDPOINT_URL": store.url,
        "AWS_DEFAULT_REGION": store.region,
    }


def image_pull(config: PlatformConfig) -> kube.ImagePull | None:
    """The private registry's login, for the components that run project images."""
    login = config.images.pull_secret
    if login is None:
        return None
    return kube.ImagePull(login.registry, login.username, reveal(login.password))


def backup_args(
    config: PlatformConfig,
    postgres: Postgres | None,
    redis: Redis | None,
    store: ObjectStore | None,
    pull: kube.ImagePull | None,
) -> BackupArgs:
    """What the backups need: the stores to dump and the target, the platform's `backups`
    bucket unless `backups.external` names another S3 service."""
    cfg = config.backups
    if cfg is None:
        raise RuntimeError("backups are disabled")
    external = cfg.external
    if external is not None:
        target = BackupTarget(
            external.endpoint,
            external.region,
            external.bucket,
            reveal(external.access_key),
            reveal(external.secret_key),
            network.url_address(external.endpoint),
        )
    else:
        if store is None:
            raise RuntimeError("backups need objectStore or backups.external")
        s3 = store.endpoint
        target = BackupTarget(
            s3.url, s3.region, s3.buckets["backups"], s3.access_key, s3.secret_key, s3.address
        )
    return BackupArgs(
        cfg,
        config.namespace,
        target,
        databases=postgres.databases if postgres else {},
        redis=redis.endpoint if redis else None,
        redis_in_cluster=config.redis is not None and config.redis.external is None,
        workloads_image=config.images.workloads,
        pushgateway_url=pushgateway.url(config.namespace) if config.monitoring else None,
        pushgateway=pushgateway_address(config.namespace) if config.monitoring else None,
        image_pull=pull,
        owns_image_pull=config.feast is None,
        needs=[part for part in (postgres, redis, store) if part is not None],
    )


class Platform(pulumi.ComponentResource):
    parts: list[Part]
    # Who may talk to whom: what the NetworkPolicies allow.
    graph: network.Graph
    # The project images the stack runs, by workloads/Dockerfile target: a stack output.
    images: dict[str, str]

    def __init__(
        self, name: str, config: PlatformConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:Platform", name, None, opts)
        ns = config.namespace
        pull = image_pull(config)
        self.images = {"workloads": config.images.workloads, "serving": config.images.serving}
        storage = kube.Storage(config.storage_class, config.data_protection)
        # Deleting a namespace deletes its volumes' claims: protect it with the data.
        namespace = kube.namespace(
            ns, pulumi.ResourceOptions(parent=self, protect=config.data_protection)
        )
        child = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        self.parts = []
        postgres = redis = store = None
        if config.postgres:
            postgres = self._add(
                Postgres("postgres", PostgresArgs(config.postgres, ns, storage), child)
            )
        if config.redis:
            redis = self._add(Redis("redis", RedisArgs(config.redis, ns, storage), child))
        if config.object_store:
            store = self._add(
                ObjectStore(
                    "object-store", ObjectStoreArgs(config.object_store, ns, storage), child
                )
            )
        mlflow = feast = None
        if config.mlflow:
            database_server, object_store = (
                _provided(postgres, "mlflow"),
                _provided(store, "mlflow"),
            )
            mlflow_args = MlflowArgs(
                config.mlflow,
                ns,
                database_server.databases["mlflow"],
                object_store.endpoint,
                needs=[database_server, object_store],
            )
            mlflow = self._add(Mlflow("mlflow", mlflow_args, child))
        if config.feast:
            database_server, cache = _provided(postgres, "feast"), _provided(redis, "feast")
            feast_args = FeastArgs(
                config.feast,
                ns,
                database_server.databases["feast"],
                cache.endpoint,
                config.images.workloads,
                needs=[database_server, cache],
                image_pull=pull,
            )
            feast = self._add(Feast("feast", feast_args, child))
        if config.flyte:
            database_server, object_store = _provided(postgres, "flyte"), _provided(store, "flyte")
            s3 = object_store.endpoint
            tasks = task_environment(config, mlflow, feast, s3)
            flyte_args = FlyteArgs(
                config.flyte,
                ns,
                database_server.databases["flyte"],
                s3,
                tasks,
                image_pull=pull,
                needs=[database_server, object_store],
            )
            self._add(Flyte("flyte", flyte_args, child))
        after: dict[str, list[pulumi.Resource]] = {ns: [namespace]}
        if config.kserve:
            s3 = _provided(store, "kserve").endpoint
            kserve_args = KserveArgs(
                config.kserve,
                s3,
                config.images.serving,
                feature_store=feast.client if feast else None,
                deployers=training_accounts(config.flyte) if config.flyte else (),
                image_pull=pull,
                prediction_log=prediction_log_settings(s3),
            )
            kserve = self._add(Kserve("kserve", kserve_args, pulumi.ResourceOptions(parent=self)))
            after[kserve.model_namespace] = [kserve]
        if config.backups:
            self._add(Backup("backup", backup_args(config, postgres, redis, store, pull), child))
        if config.monitoring:
            logins = [
                part
                for part in self.parts
                if isinstance(part, pulumi.Resource)
                and any(t.basic_auth for d in self.telemetry_of(part) for t in d.targets)
            ]
            monitoring_args = MonitoringArgs(
                config.monitoring, ns, storage, self.telemetry(), needs=logins
            )
            self._add(Monitoring("monitoring", monitoring_args, child))
        self.graph = network.graph(
            (part.network for part in self.parts),
            self.telemetry(),
            denied=list(after),
            ingress=network.ingress_controller(config.ingress_namespace),
        )
        network.create(self.graph, after, self)
        self.register_outputs(self.outputs())

    def _add(self, part: P) -> P:
        self.parts.append(part)
        return part

    def telemetry(self) -> tuple[Telemetry, ...]:
        """The declarations of every enabled component, for Prometheus, dashboards and tests."""
        return tuple(t for part in self.parts for t in self.telemetry_of(part))

    @staticmethod
    def telemetry_of(part: Part) -> tuple[Telemetry, ...]:
        own = part.telemetry
        return own if isinstance(own, tuple) else (own,)

    def outputs(self) -> dict[str, Any]:
        """The stack outputs: the project images and the merge of what each component exports
        (secrets stay secret)."""
        merged: dict[str, Any] = {"images": self.images}
        for part in self.parts:
            merged.update(part.outputs)
        return merged


def export(built: Platform) -> dict[str, Any]:
    """Exports the platform's outputs; shared by `pulumi up` and the renderer."""
    outputs = built.outputs()
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def deploy(config: PlatformConfig) -> dict[str, Any]:
    """Builds the platform and exports its outputs."""
    return export(Platform("mlops", config))
