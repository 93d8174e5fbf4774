"""Stack config, read once and validated into frozen, typed objects.

Components never read `pulumi.Config`: `load` turns the raw stack config (every value a string,
objects as JSON, as Pulumi hands them over) into a `PlatformConfig`, or raises `ConfigError`
with one message that names each bad key, its value and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from infra import versions
from infra.configreader import (
    ALLOWED_HOST,
    BUCKET,
    CHART_REPOSITORY,
    CRON,
    DNS_LABEL,
    DURATION,
    ENDPOINT,
    FEAST_PROJECT,
    HOST,
    IMAGE,
    REGISTRY,
    Errors,
    Section,
    parse_raw,
    read_secret,
)
from infra.configreader import (
    PROJECT as PROJECT,
)
from infra.configreader import (
    ConfigError as ConfigError,
)

PROFILES = ("small", "standard", "ha")
POSTGRES_CONSUMERS = ("mlflow", "flyte", "feast")
BUCKETS = ("mlflow", "flyte", "feast", "models")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True)
class ExternalPostgres:
    host: str
    port: int
    admin_user: str
    ssl_mode: str


@dataclass(frozen=True)
class PostgresConfig:
    enabled: bool
    storage_size: str
    resources: Resources
    external: ExternalPostgres | None
    admin_password: pulumi.Output[str] | None
    # Login password of each consumer database (mlflow, flyte, feast).
    consumer_passwords: Mapping[str, pulumi.Output[str]]


@dataclass(frozen=True)
class ExternalRedis:
    host: str
    port: int
    tls: bool


@dataclass(frozen=True)
class RedisConfig:
    enabled: bool
    storage_size: str
    resources: Resources
    external: ExternalRedis | None
    password: pulumi.Output[str] | None


@dataclass(frozen=True)
class ExternalObjectStore:
    endpoint: str
    region: str


@dataclass(frozen=True)
class ObjectStoreConfig:
    enabled: bool
    storage_size: str
    resources: Resources
    external: ExternalObjectStore | None
    # Bucket name for each platform use (mlflow, flyte, feast, models).
    buckets: Mapping[str, str]
    access_key: pulumi.Output[str] | None
    secret_key: pulumi.Output[str] | None


@dataclass(frozen=True)
class MlflowConfig:
    enabled: bool
    replicas: int
    workers: int
    resources: Resources
    # Host headers accepted beyond the in-cluster names, e.g. an ingress host.
    allowed_hosts: tuple[str, ...]
    admin_password: pulumi.Output[str] | None
    flask_secret_key: pulumi.Output[str] | None


@dataclass(frozen=True)
class FlyteConfig:
    enabled: bool
    resources: Resources
    # Projects created at start (each gets a namespace per domain) and the domains.
    projects: tuple[str, ...]
    domains: tuple[str, ...]


@dataclass(frozen=True)
class FeastConfig:
    enabled: bool
    replicas: int
    # Feature server worker processes per replica.
    workers: int
    resources: Resources
    # The Feast project the feature server serves (the reference repo's is "fraud").
    project: str
    # Cron schedule (UTC) of `feast materialize-incremental`.
    materialize_schedule: str
    # The workload image carrying the feature repo; the apply Job and the CronJob run it.
    repo_image: str


@dataclass(frozen=True)
class KserveConfig:
    enabled: bool
    # False when KServe and cert-manager are already on the cluster: then only the model
    # namespace, its storage Secret and ServiceAccount are created.
    install: bool
    model_namespace: str
    # Ingress class for InferenceServices; None leaves ingress creation off.
    ingress_class: str | None
    chart_repository: str
    cert_manager_chart_repository: str
    # Registry hosts replacing the upstream ones of every KServe / cert-manager image (mirrors).
    image_registry: str | None
    cert_manager_image_registry: str | None


@dataclass(frozen=True)
class MonitoringConfig:
    enabled: bool
    retention: str
    storage_size: str
    resources: Resources
    grafana_resources: Resources
    grafana_admin_password: pulumi.Output[str] | None


@dataclass(frozen=True)
class PlatformConfig:
    stack: str
    profile: str
    namespace: str
    storage_class: str | None
    replicas: int
    data_protection: bool
    postgres: PostgresConfig
    redis: RedisConfig
    object_store: ObjectStoreConfig
    mlflow: MlflowConfig
    flyte: FlyteConfig
    feast: FeastConfig
    kserve: KserveConfig
    monitoring: MonitoringConfig


@dataclass(frozen=True)
class ComponentProfile:
    storage_size: str
    resources: Resources


@dataclass(frozen=True)
class Profile:
    replicas: int
    data_protection: bool
    postgres: ComponentProfile
    redis: ComponentProfile
    object_store: ComponentProfile
    mlflow: Resources
    flyte: Resources
    feast: Resources
    prometheus: ComponentProfile
    prometheus_retention: str
    grafana: Resources


PROFILE_DEFAULTS: Mapping[str, Profile] = {
    "small": Profile(
        replicas=1,
        data_protection=False,
        postgres=ComponentProfile("5Gi", Resources("100m", "256Mi", "1", "1Gi")),
        redis=ComponentProfile("1Gi", Resources("50m", "64Mi", "500m", "256Mi")),
        object_store=ComponentProfile("10Gi", Resources("100m", "256Mi", "1", "1Gi")),
        mlflow=Resources("100m", "512Mi", "1", "1Gi"),
        flyte=Resources("100m", "512Mi", "1", "1Gi"),
        feast=Resources("100m", "256Mi", "1", "1Gi"),
        prometheus=ComponentProfile("5Gi", Resources("100m", "256Mi", "1", "1Gi")),
        prometheus_retention="3d",
        grafana=Resources("50m", "128Mi", "500m", "512Mi"),
    ),
    "standard": Profile(
        replicas=1,
        data_protection=True,
        postgres=ComponentProfile("20Gi", Resources("250m", "512Mi", "2", "2Gi")),
        redis=ComponentProfile("5Gi", Resources("100m", "256Mi", "1", "1Gi")),
        object_store=ComponentProfile("50Gi", Resources("250m", "512Mi", "2", "2Gi")),
        mlflow=Resources("250m", "1Gi", "2", "2Gi"),
        flyte=Resources("500m", "1Gi", "2", "2Gi"),
        feast=Resources("250m", "512Mi", "2", "2Gi"),
        prometheus=ComponentProfile("20Gi", Resources("250m", "1Gi", "2", "4Gi")),
        prometheus_retention="15d",
        grafana=Resources("100m", "256Mi", "1", "1Gi"),
    ),
    "ha": Profile(
        replicas=2,
        data_protection=True,
        postgres=ComponentProfile("100Gi", Resources("1", "2Gi", "4", "8Gi")),
        redis=ComponentProfile("20Gi", Resources("250m", "1Gi", "2", "4Gi")),
        object_store=ComponentProfile("500Gi", Resources("500m", "2Gi", "4", "8Gi")),
        mlflow=Resources("500m", "1Gi", "2", "4Gi"),
        flyte=Resources("1", "2Gi", "4", "4Gi"),
        feast=Resources("500m", "1Gi", "2", "2Gi"),
        prometheus=ComponentProfile("100Gi", Resources("500m", "2Gi", "4", "8Gi")),
        prometheus_retention="30d",
        grafana=Resources("100m", "256Mi", "1", "1Gi"),
    ),
}

# Secret keys and the component that needs each.
SECRET_KEYS: Mapping[str, str] = {
    "postgresPassword": "postgres",
    "postgresMlflowPassword": "postgres",
    "postgresFlytePassword": "postgres",
    "postgresFeastPassword": "postgres",
    "redisPassword": "redis",
    "objectStoreAccessKey": "objectStore",
    "objectStoreSecretKey": "objectStore",
    "mlflowAdminPassword": "mlflow",
    "mlflowFlaskSecretKey": "mlflow",
    "grafanaAdminPassword": "monitoring",
}
_PLAIN_KEYS = (
    "profile",
    "namespace",
    "storageClass",
    "replicas",
    "dataProtection",
    "postgres",
    "redis",
    "objectStore",
    "mlflow",
    "flyte",
    "feast",
    "kserve",
    "monitoring",
)


def _resources(parent: Section, default: Resources) -> Resources:
    section = parent.section("resources")
    if section is None:
        return default
    requests = section.section("requests") or Section("", {}, section.errors)
    limits = section.section("limits") or Section("", {}, section.errors)
    resources = Resources(
        cpu_request=requests.quantity("cpu", default.cpu_request),
        memory_request=requests.quantity("memory", default.memory_request),
        cpu_limit=limits.quantity("cpu", default.cpu_limit),
        memory_limit=limits.quantity("memory", default.memory_limit),
    )
    for part in (requests, limits, section):
        part.finish()
    return resources


def _check_external(component: str, enabled: bool, external: bool, errors: Errors) -> None:
    if external and not enabled:
        errors.add(f"{component}.enabled", False, f"must be true when {component}.external is set")


def _postgres(
    root: Section,
    profile: Profile,
    data: Mapping[str, Any],
    secrets: frozenset[str],
    errors: Errors,
) -> PostgresConfig:
    section = root.section("postgres") or Section("postgres", {}, errors)
    enabled = section.flag("enabled", True)
    storage = section.quantity("storageSize", profile.postgres.storage_size)
    resources = _resources(section, profile.postgres.resources)
    external = None
    ext = section.section("external")
    if ext is not None:
        host = ext.required_text("host", HOST, "must be a host name or IP address")
        external = ExternalPostgres(
            host=host,
            port=ext.integer("port", 5432, 1, 65535),
            admin_user=ext.text("adminUser", "postgres", DNS_LABEL, "must be a role name"),
            ssl_mode=ext.choice("sslMode", "require", SSL_MODES),
        )
        ext.finish()
    section.finish()
    _check_external("postgres", enabled, external is not None, errors)
    admin = consumers = None
    if enabled:
        admin = read_secret(data, secrets, "postgresPassword", "postgres", errors)
        consumers = {
            name: read_secret(
                data, secrets, f"postgres{name.capitalize()}Password", "postgres", errors
            )
            for name in POSTGRES_CONSUMERS
        }
    return PostgresConfig(
        enabled=enabled,
        storage_size=storage,
        resources=resources,
        external=external,
        admin_password=admin,
        consumer_passwords={k: v for k, v in (consumers or {}).items() if v is not None},
    )


def _redis(
    root: Section,
    profile: Profile,
    data: Mapping[str, Any],
    secrets: frozenset[str],
    errors: Errors,
) -> RedisConfig:
    section = root.section("redis") or Section("redis", {}, errors)
    enabled = section.flag("enabled", True)
    storage = section.quantity("storageSize", profile.redis.storage_size)
    resources = _resources(section, profile.redis.resources)
    external = None
    ext = section.section("external")
    if ext is not None:
        host = ext.required_text("host", HOST, "must be a host name or IP address")
        external = ExternalRedis(
            host=host, port=ext.integer("port", 6379, 1, 65535), tls=ext.flag("tls", False)
        )
        ext.finish()
    section.finish()
    _check_external("redis", enabled, external is not None, errors)
    password = read_secret(data, secrets, "redisPassword", "redis", errors) if enabled else None
    return RedisConfig(enabled, storage, resources, external, password)


def _object_store(
    root: Section,
    profile: Profile,
    data: Mapping[str, Any],
    secrets: frozenset[str],
    errors: Errors,
) -> ObjectStoreConfig:
    section = root.section("objectStore") or Section("objectStore", {}, errors)
    enabled = section.flag("enabled", True)
    storage = section.quantity("storageSize", profile.object_store.storage_size)
    resources = _resources(section, profile.object_store.resources)
    buckets = dict(zip(BUCKETS, BUCKETS, strict=True))
    bucket_section = section.section("buckets")
    if bucket_section is not None:
        for use in BUCKETS:
            buckets[use] = bucket_section.text(
                use, use, BUCKET, "must be an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"
            )
        bucket_section.finish(BUCKETS)
    external = None
    ext = section.section("external")
    if ext is not None:
        endpoint = ext.required_text(
            "endpoint", ENDPOINT, "must be an http(s) URL such as https://s3.example.com"
        )
        external = ExternalObjectStore(
            endpoint=endpoint.rstrip("/"),
            region=ext.text("region", "us-east-1", DNS_LABEL, "must be a region name"),
        )
        ext.finish()
    section.finish()
    _check_external("objectStore", enabled, external is not None, errors)
    access = secret = None
    if enabled:
        access = read_secret(data, secrets, "objectStoreAccessKey", "objectStore", errors)
        secret = read_secret(data, secrets, "objectStoreSecretKey", "objectStore", errors)
    return ObjectStoreConfig(enabled, storage, resources, external, buckets, access, secret)


def _mlflow(
    root: Section,
    profile: Profile,
    replicas: int,
    data: Mapping[str, Any],
    secrets: frozenset[str],
    errors: Errors,
) -> MlflowConfig:
    section = root.section("mlflow") or Section("mlflow", {}, errors)
    enabled = section.flag("enabled", True)
    hosts = section.get(
        "allowedHosts",
        (),
        lambda v: (
            tuple(v)
            if isinstance(v, list) and all(isinstance(h, str) and ALLOWED_HOST.match(h) for h in v)
            else None
        ),
        "must be a list of Host header patterns such as mlflow.example.com or *.example.com:*",
    )
    config = MlflowConfig(
        enabled=enabled,
        replicas=section.integer("replicas", replicas, 1, 10),
        workers=section.integer("workers", 2, 1, 16),
        resources=_resources(section, profile.mlflow),
        allowed_hosts=hosts,
        admin_password=read_secret(data, secrets, "mlflowAdminPassword", "mlflow", errors)
        if enabled
        else None,
        flask_secret_key=read_secret(data, secrets, "mlflowFlaskSecretKey", "mlflow", errors)
        if enabled
        else None,
    )
    section.finish()
    return config


def _names(section: Section, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    return section.get(
        key,
        default,
        lambda v: (
            tuple(v)
            if isinstance(v, list)
            and v
            and len(set(v)) == len(v)
            and all(isinstance(n, str) and DNS_LABEL.match(n) and len(n) <= 30 for n in v)
            else None
        ),
        "must be a non-empty list of distinct names of up to 30 of a-z, 0-9, '-'",
    )


def _flyte(root: Section, profile: Profile, errors: Errors) -> FlyteConfig:
    section = root.section("flyte") or Section("flyte", {}, errors)
    config = FlyteConfig(
        enabled=section.flag("enabled", True),
        resources=_resources(section, profile.flyte),
        projects=_names(section, "projects", ("ml",)),
        domains=_names(section, "domains", ("development", "staging", "production")),
    )
    section.finish()
    return config


def _feast(root: Section, profile: Profile, replicas: int, errors: Errors) -> FeastConfig:
    section = root.section("feast") or Section("feast", {}, errors)
    config = FeastConfig(
        enabled=section.flag("enabled", True),
        replicas=section.integer("replicas", replicas, 1, 10),
        workers=section.integer("workers", 1, 1, 16),
        resources=_resources(section, profile.feast),
        project=section.text(
            "project", "fraud", FEAST_PROJECT, "must be a Feast project name (a-z, 0-9, '_')"
        ),
        materialize_schedule=section.text(
            "materializeSchedule",
            "*/15 * * * *",
            CRON,
            "must be a five-field cron schedule such as '*/15 * * * *' or '0 * * * *'",
        ),
        repo_image=section.text(
            "repoImage",
            versions.WORKLOADS_IMAGE,
            IMAGE,
            "must be an image reference such as ghcr.io/acme/workloads:1.2.0",
        ),
    )
    section.finish()
    return config


def _kserve(root: Section, namespace: str, errors: Errors) -> KserveConfig:
    section = root.section("kserve") or Section("kserve", {}, errors)
    cert_manager = section.section("certManager") or Section("kserve.certManager", {}, errors)
    registry = "must be a registry host such as registry.example.com or mirror.example.com:5000/hub"

    def optional(part: Section, key: str, pattern: re.Pattern[str], allowed: str) -> str | None:
        value = part.text(key, "", pattern, allowed)
        return value or None

    config = KserveConfig(
        enabled=section.flag("enabled", True),
        install=section.flag("install", True),
        model_namespace=section.text(
            "modelNamespace",
            f"{namespace}-models",
            DNS_LABEL,
            "must be a DNS-1123 label (a-z, 0-9, '-')",
        ),
        ingress_class=optional(section, "ingressClass", DNS_LABEL, "must be an IngressClass name"),
        chart_repository=section.text(
            "chartRepository",
            versions.KSERVE_CHART_REPOSITORY,
            CHART_REPOSITORY,
            "must be an oci:// or http(s):// chart repository URL",
        ),
        cert_manager_chart_repository=cert_manager.text(
            "chartRepository",
            versions.CERT_MANAGER_CHART_REPOSITORY,
            CHART_REPOSITORY,
            "must be an oci:// or http(s):// chart repository URL",
        ),
        image_registry=optional(section, "imageRegistry", REGISTRY, registry),
        cert_manager_image_registry=optional(cert_manager, "imageRegistry", REGISTRY, registry),
    )
    cert_manager.finish()
    section.finish()
    return config


def _monitoring(
    root: Section,
    profile: Profile,
    data: Mapping[str, Any],
    secrets: frozenset[str],
    errors: Errors,
) -> MonitoringConfig:
    section = root.section("monitoring") or Section("monitoring", {}, errors)
    enabled = section.flag("enabled", True)
    grafana = section.section("grafana") or Section("monitoring.grafana", {}, errors)
    config = MonitoringConfig(
        enabled=enabled,
        retention=section.text(
            "retention",
            profile.prometheus_retention,
            DURATION,
            "must be a Prometheus duration such as 12h, 15d or 2w",
        ),
        storage_size=section.quantity("storageSize", profile.prometheus.storage_size),
        resources=_resources(section, profile.prometheus.resources),
        grafana_resources=_resources(grafana, profile.grafana),
        grafana_admin_password=read_secret(
            data, secrets, "grafanaAdminPassword", "monitoring", errors
        )
        if enabled
        else None,
    )
    grafana.finish()
    section.finish()
    return config


def _check_dependencies(config: PlatformConfig, errors: Errors) -> None:
    """A component is only as available as what it stands on."""
    needs = {
        "mlflow": (config.mlflow.enabled, ("postgres", "objectStore")),
        "flyte": (config.flyte.enabled, ("postgres", "objectStore")),
        "feast": (config.feast.enabled, ("postgres", "redis")),
        "kserve": (config.kserve.enabled, ("objectStore",)),
    }
    enabled = {
        "postgres": config.postgres.enabled,
        "redis": config.redis.enabled,
        "objectStore": config.object_store.enabled,
    }
    for component, (on, required) in needs.items():
        for dependency in required:
            if on and not enabled[dependency]:
                errors.add(
                    f"{dependency}.enabled",
                    False,
                    f"must be true while {component} is enabled "
                    f"(or set {component}.enabled: false)",
                )


def load(
    stack: str, raw: Mapping[str, str], secret_keys: frozenset[str] = frozenset()
) -> PlatformConfig:
    """Validates raw stack config (full `project:key` names) into a PlatformConfig."""
    errors = Errors(stack)
    data = parse_raw(raw, SECRET_KEYS)
    plain = {k: v for k, v in data.items() if k not in SECRET_KEYS}
    root = Section("", plain, errors)
    profile_name = root.choice("profile", "small", PROFILES)
    profile = PROFILE_DEFAULTS[profile_name]
    replicas = root.integer("replicas", profile.replicas, 1, 10)
    namespace = root.text(
        "namespace", "mlops", DNS_LABEL, "must be a DNS-1123 label (a-z, 0-9, '-')"
    )
    config = PlatformConfig(
        stack=stack,
        profile=profile_name,
        namespace=namespace,
        storage_class=root.get(
            "storageClass",
            None,
            lambda v: v if isinstance(v, str) and HOST.match(v) else None,
            "must be the name of a StorageClass",
        ),
        replicas=replicas,
        data_protection=root.flag("dataProtection", profile.data_protection),
        postgres=_postgres(root, profile, data, secret_keys, errors),
        redis=_redis(root, profile, data, secret_keys, errors),
        object_store=_object_store(root, profile, data, secret_keys, errors),
        mlflow=_mlflow(root, profile, replicas, data, secret_keys, errors),
        flyte=_flyte(root, profile, errors),
        feast=_feast(root, profile, replicas, errors),
        kserve=_kserve(root, namespace, errors),
        monitoring=_monitoring(root, profile, data, secret_keys, errors),
    )
    root.finish(_PLAIN_KEYS + tuple(SECRET_KEYS))
    _check_dependencies(config, errors)
    if config.feast.enabled and "," in str(data.get("redisPassword", "")):
        errors.messages.append(
            f"{PROJECT}:redisPassword = [secret]: must not contain ',' while feast is enabled "
            "(Feast's Redis connection string separates its options with ',')"
        )
    if errors.messages:
        raise ConfigError("invalid stack config:\n  " + "\n  ".join(errors.messages))
    return config


def from_pulumi() -> PlatformConfig:
    """Loads the running stack's config from the Pulumi runtime."""
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = frozenset(runtime_config._SECRET_KEYS.get()) | frozenset(
        json.loads(os.environ.get("PULUMI_CONFIG_SECRET_KEYS", "[]"))
    )
    return load(pulumi.get_stack(), raw, secret_keys)
