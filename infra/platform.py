"""The composition root: builds each enabled component and wires their outputs together."""

from __future__ import annotations

from typing import Any

import pulumi

from infra import kube
from infra.components.feast import Feast, FeastArgs, RedisEndpoint
from infra.components.flyte import Flyte, FlyteArgs
from infra.components.kserve import Kserve, KserveArgs
from infra.components.mlflow import Mlflow, MlflowArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.object_store import ObjectStore, ObjectStoreArgs
from infra.components.postgres import Postgres, PostgresArgs
from infra.components.redis import Redis, RedisArgs
from infra.config import PlatformConfig
from infra.observability import Telemetry


class Platform(pulumi.ComponentResource):
    postgres: Postgres | None
    redis: Redis | None
    object_store: ObjectStore | None
    mlflow: Mlflow | None
    flyte: Flyte | None
    feast: Feast | None
    kserve: Kserve | None
    monitoring: Monitoring | None

    def __init__(
        self, name: str, config: PlatformConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:Platform", name, None, opts)
        ns = config.namespace
        # Deleting a namespace deletes its volumes' claims: protect it with the data.
        namespace = kube.namespace(
            ns, pulumi.ResourceOptions(parent=self, protect=config.data_protection)
        )
        child = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        self.postgres = self.redis = self.object_store = None
        self.mlflow = self.flyte = self.feast = self.kserve = self.monitoring = None
        if config.postgres.enabled:
            self.postgres = Postgres(
                "postgres",
                PostgresArgs(config.postgres, ns, config.storage_class, config.data_protection),
                child,
            )
        if config.redis.enabled:
            self.redis = Redis(
                "redis",
                RedisArgs(config.redis, ns, config.storage_class, config.data_protection),
                child,
            )
        if config.object_store.enabled:
            self.object_store = ObjectStore(
                "object-store",
                ObjectStoreArgs(
                    config.object_store, ns, config.storage_class, config.data_protection
                ),
                child,
            )
        # config.load guarantees what each service stands on is enabled.
        if config.mlflow.enabled and self.postgres and self.object_store:
            self.mlflow = Mlflow(
                "mlflow",
                MlflowArgs(config.mlflow, ns, self.postgres.databases["mlflow"], self.object_store),
                child,
            )
        if config.flyte.enabled and self.postgres and self.object_store:
            self.flyte = Flyte(
                "flyte",
                FlyteArgs(config.flyte, ns, self.postgres.databases["flyte"], self.object_store),
                child,
            )
        if config.feast.enabled and self.postgres and self.redis:
            redis = self.redis
            self.feast = Feast(
                "feast",
                FeastArgs(
                    config.feast,
                    ns,
                    self.postgres.databases["feast"],
                    RedisEndpoint(redis.host, redis.port, redis.tls, redis.secret_name),
                    needs=[self.postgres, redis],
                ),
                child,
            )
        if config.kserve.enabled and self.object_store:
            self.kserve = Kserve(
                "kserve",
                KserveArgs(config.kserve, self.object_store),
                pulumi.ResourceOptions(parent=self),
            )
        if config.monitoring.enabled:
            self.monitoring = Monitoring(
                "monitoring",
                MonitoringArgs(
                    config.monitoring,
                    ns,
                    config.storage_class,
                    config.data_protection,
                    self.telemetry(),
                    self.kserve.model_namespace if self.kserve else None,
                ),
                child,
            )
        self.register_outputs({})

    def telemetry(self) -> tuple[Telemetry, ...]:
        """The declarations of every enabled component, for Prometheus, dashboards and tests."""
        parts = (
            self.postgres,
            self.redis,
            self.object_store,
            self.mlflow,
            self.flyte,
            self.feast,
            self.kserve,
        )
        own = self.monitoring.telemetry if self.monitoring is not None else ()
        return (*(p.telemetry for p in parts if p is not None), *own)

    def outputs(self) -> dict[str, Any]:
        """The stack outputs: endpoints consumers and people need; secrets stay secret."""
        out: dict[str, Any] = {}
        if self.postgres is not None:
            out["postgres"] = {
                "host": self.postgres.host,
                "port": self.postgres.port,
                "databases": {
                    name: {
                        "name": db.name,
                        "user": db.user,
                        "secret": db.secret_name,
                        "url": db.url,
                    }
                    for name, db in self.postgres.databases.items()
                },
            }
        if self.redis is not None:
            out["redis"] = {
                "host": self.redis.host,
                "port": self.redis.port,
                "tls": self.redis.tls,
                "secret": self.redis.secret_name,
            }
        if self.object_store is not None:
            out["objectStore"] = {
                "endpoint": self.object_store.endpoint,
                "region": self.object_store.region,
                "buckets": dict(self.object_store.buckets),
                "secret": self.object_store.secret_name,
                "accessKey": self.object_store.access_key,
                "secretKey": self.object_store.secret_key,
            }
        if self.mlflow is not None:
            out["mlflow"] = {"trackingUri": self.mlflow.tracking_uri}
        if self.flyte is not None:
            out["flyte"] = {"endpoint": self.flyte.endpoint, "console": self.flyte.console_url}
        if self.feast is not None:
            out["feast"] = {
                "endpoint": self.feast.endpoint,
                "project": self.feast.project,
                "featureStoreYaml": self.feast.store_config,
            }
        if self.kserve is not None:
            out["kserve"] = {
                "modelNamespace": self.kserve.model_namespace,
                "serviceAccount": self.kserve.service_account,
                "storageSecret": self.kserve.storage_secret,
            }
        if self.monitoring is not None:
            out["monitoring"] = {
                "prometheusUrl": self.monitoring.prometheus_url,
                "grafanaUrl": self.monitoring.grafana_url,
            }
        return out


def export(built: Platform) -> dict[str, Any]:
    """Exports the platform's outputs; shared by `pulumi up` and the renderer."""
    outputs = built.outputs()
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def deploy(config: PlatformConfig) -> dict[str, Any]:
    """Builds the platform and exports its outputs."""
    return export(Platform("mlops", config))
