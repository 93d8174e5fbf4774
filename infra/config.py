"""Stack config as pydantic models: the schema, the validation and the reference in one place.

`load` turns a stack's raw config (Pulumi hands every value over as a string, objects as JSON)
into a frozen `PlatformConfig`, or raises `ConfigError` with one message naming every bad key,
its value and what is allowed. A profile is a partial stack config laid under the stack's own
keys; a disabled component is None; a component's secrets are fields of its section, filled
from the top-level secret keys. Components never read `pulumi.Config`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import pulumi
from pydantic import (
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from infra import cron, versions
from infra.configtypes import (
    PROJECT,
    Allowed,
    Annotations,
    BucketName,
    ChartRepository,
    Component,
    ConfigError,
    Cron,
    Days,
    Deviations,
    DnsLabel,
    Duration,
    EmailAddress,
    EmailAddresses,
    Endpoint,
    FeastProject,
    Flag,
    GeneratedSecret,
    Host,
    HostPatterns,
    HostPort,
    Hours,
    Image,
    IngressClassName,
    IngressHosts,
    IssuerName,
    IssuerUrl,
    KeepLast,
    Model,
    Names,
    OidcClientId,
    PlainText,
    Port,
    Quantity,
    RegionName,
    Registry,
    RegistryHost,
    RegistryUser,
    Replicas,
    RoleName,
    Rows,
    RsaKey,
    Secret,
    Share,
    SlackChannel,
    SmtpUser,
    StorageClassName,
    SuppliedSecret,
    SuppliedSecretUrl,
    Workers,
    checked,
    describe,
    line,
    model_of,
    refuse,
    secret_fields,
)
from infra.profiles import PROFILE_DEFAULTS, PROFILES, ProfileName
from infra.sizes import Resources, quantity

__all__ = ["PROJECT", "ConfigError", "PlatformConfig", "load"]

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
EvictionPolicy = Literal[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
]
POSTGRES_CONSUMERS = ("mlflow", "flyte", "feast")
# What each service stands on: config refuses the service without them.
NEEDS: Mapping[str, tuple[str, ...]] = {
    "mlflow": ("postgres", "objectStore"),
    "flyte": ("postgres", "objectStore"),
    "feast": ("postgres", "redis"),
    "kserve": ("objectStore",),
}


# A stateless service's replicas default to the stack's `replicas` (see `_defaults`).
FOLLOWS_REPLICAS: JsonDict = {"shown_default": "`replicas`"}


def switch(value: Any, handler: Any) -> Any:
    """A component section: `enabled: false` gives None, anything else the validated section."""
    if not isinstance(value, dict) or "enabled" not in value:
        return handler(value)
    enabled = value["enabled"]
    if enabled is True:
        return handler({k: v for k, v in value.items() if k != "enabled"})
    if enabled is not False:
        raise PydanticCustomError("switch", "must be true or false")
    if "external" in value:
        raise PydanticCustomError("switch_external", "must be true when external is set")
    return None


Switch = WrapValidator(switch)


class ExternalPostgres(Model):
    """An existing server: the platform creates its logins and databases there."""

    host: Host
    port: Port = 5432
    admin_user: RoleName = Field("postgres", description="needs CREATEROLE and CREATEDB")
    ssl_mode: SslMode = "require"


class PostgresConfig(Component):
    """PostgreSQL: one server (or `external`), a login and database per consumer."""

    external: ExternalPostgres | None = None
    resources: Resources
    storage_size: Quantity = Field(description="the data volume")
    admin_password: Secret = Field(alias="postgresPassword")
    mlflow_password: GeneratedSecret = Field(alias="postgresMlflowPassword")
    flyte_password: GeneratedSecret = Field(alias="postgresFlytePassword")
    feast_password: GeneratedSecret = Field(alias="postgresFeastPassword")

    @property
    def consumer_passwords(self) -> dict[str, SecretStr]:
        """Login password of each consumer database (mlflow, flyte, feast)."""
        return {db: getattr(self, f"{db}_password") for db in POSTGRES_CONSUMERS}


class ExternalRedis(Model):
    host: Host
    port: Port = 6379
    tls: Flag = Field(False, description="connect with TLS")


class RedisConfig(Component):
    """Redis: the Feast online store (or `external`)."""

    external: ExternalRedis | None = None
    resources: Resources
    storage_size: Quantity = Field(description="the append-only file's volume")
    max_memory: Quantity = Field(
        description="Redis's `maxmemory`: below the memory limit, which also holds the fork "
        "that rewrites the append-only file"
    )
    eviction_policy: EvictionPolicy = Field(
        "volatile-lru",
        description="`maxmemory-policy`: the default evicts only keys written with an expiry "
        "(Feast's `key_ttl_seconds`) and otherwise refuses writes, so features are never "
        "dropped silently",
    )
    password: Secret = Field(alias="redisPassword")

    @model_validator(mode="after")
    def _memory_below_limit(self) -> RedisConfig:
        if self.external is None and quantity(self.max_memory) >= quantity(
            self.resources.limits.memory
        ):
            raise refuse(
                "maxMemory",
                self.max_memory,
                f"must be below resources.limits.memory ({self.resources.limits.memory})",
            )
        return self


class ExternalObjectStore(Model):
    endpoint: Endpoint = Field(description="the S3 API, such as https://s3.eu-west-1.amazonaws.com")
    region: RegionName = "us-east-1"


class Buckets(Model):
    """Bucket name for each platform use."""

    known_keys_sorted: ClassVar[bool] = False
    mlflow: BucketName = "mlflow"
    flyte: BucketName = "flyte"
    feast: BucketName = "feast"
    models: BucketName = "models"
    predictions: BucketName = "predictions"
    backups: BucketName = "backups"


class ObjectStoreConfig(Component):
    """S3-compatible object storage: SeaweedFS in the cluster (or `external`)."""

    buckets: Buckets = Buckets()
    external: ExternalObjectStore | None = None
    resources: Resources
    storage_size: Quantity = Field(description="the data volume")
    access_key: Secret = Field(alias="objectStoreAccessKey")
    secret_key: Secret = Field(alias="objectStoreSecretKey")


def _schedule(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        cron.longest_interval_seconds(value)
    except ValueError:
        return None
    return value


SCHEDULE_RULE = (
    "must be a five-field cron schedule (UTC) with each field in range, such as '0 2 * * *'"
)
BackupSchedule = Annotated[
    str, checked(_schedule, SCHEDULE_RULE), Allowed(SCHEDULE_RULE, "five-field cron (UTC)")
]


class ExternalBackupTarget(Model):
    """An S3 service outside the platform; its credentials are the secret keys
    `backupS3AccessKey` and `backupS3SecretKey`."""

    known_keys_sorted: ClassVar[bool] = False
    endpoint: Endpoint = Field(description="the S3 API, such as https://s3.eu-west-1.amazonaws.com")
    region: RegionName = "us-east-1"
    bucket: BucketName = Field(description="an existing bucket the backups are written to")
    access_key: SuppliedSecret = Field(alias="backupS3AccessKey")
    secret_key: SuppliedSecret = Field(alias="backupS3SecretKey")


class BackupsConfig(Component):
    """Scheduled backups of Postgres (`pg_dump` of each database) and Redis (its RDB) to the
    object store's `backups` bucket, or to `external` S3 (docs/operations.md)."""

    encrypt: Flag = Field(
        True, description="encrypt each backup (AES-256-GCM) with the secret `backupEncryptionKey`"
    )
    external: ExternalBackupTarget | None = None
    keep_last: KeepLast = Field(
        3, description="backups of each database kept whatever their age (the newest)"
    )
    retention_days: Days = Field(description="older backups are deleted after a successful run")
    schedule: BackupSchedule = Field("0 2 * * *", description="when the backups run")
    encryption_key: GeneratedSecret = Field(alias="backupEncryptionKey")


# cert-manager's ingress-shim reads these and issues the certificate of the Ingress's `tls`.
CLUSTER_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
ISSUER_ANNOTATION = "cert-manager.io/issuer"


class IngressTls(Model):
    """TLS from cert-manager: one issuer signs a certificate for every host."""

    cluster_issuer: IssuerName | None = Field(
        None, description="a ClusterIssuer (`cert-manager.io/cluster-issuer`); no `tls`: plain HTTP"
    )
    issuer: IssuerName | None = Field(
        None, description="an Issuer in the platform's namespace (`cert-manager.io/issuer`)"
    )

    @model_validator(mode="after")
    def _one_issuer(self) -> IngressTls:
        if self.cluster_issuer is None and self.issuer is None:
            raise refuse("clusterIssuer", None, "must name a ClusterIssuer (or set issuer)")
        if self.cluster_issuer is not None and self.issuer is not None:
            raise refuse("issuer", self.issuer, "must be left out when clusterIssuer is set")
        return self


class IngressConfig(Component):
    """An Ingress (networking.k8s.io/v1) in front of one service; off until its section is set."""

    annotations: Annotations = Field(
        {}, description="added to the Ingress, such as the ingress controller's auth settings"
    )
    class_name: IngressClassName | None = Field(None, description="none: the cluster default")
    hosts: IngressHosts = Field(description="each routed to the service; the first is its URL")
    tls: IngressTls | None = None

    @model_validator(mode="after")
    def _issuer_from_tls(self) -> IngressConfig:
        if {CLUSTER_ISSUER_ANNOTATION, ISSUER_ANNOTATION} & set(self.annotations):
            raise refuse(
                "annotations",
                self.annotations,
                f"must not hold {CLUSTER_ISSUER_ANNOTATION} or {ISSUER_ANNOTATION}: "
                "set tls.clusterIssuer or tls.issuer",
            )
        return self

    @property
    def urls(self) -> tuple[str, ...]:
        """Where each host is reached from a browser."""
        scheme = "http" if self.tls is None else "https"
        return tuple(f"{scheme}://{host}" for host in self.hosts)


# Annotations that put a login in front of a service: ingress-nginx's external auth
# (oauth2-proxy and the like) and basic or digest auth, and Traefik's middlewares.
AUTH_ANNOTATIONS = (
    "nginx.ingress.kubernetes.io/auth-url",
    "nginx.ingress.kubernetes.io/auth-type",
    "traefik.ingress.kubernetes.io/router.middlewares",
)


class NoLoginIngressConfig(IngressConfig):
    """The Ingress of a service with no login of its own: refused unless the ingress
    controller authenticates (an auth annotation) or `allowUnauthenticated` says so."""

    allow_unauthenticated: Flag = Field(
        False,
        description="true exposes the service without a login; otherwise `annotations` must "
        f"hold one of {', '.join(f'`{a}`' for a in AUTH_ANNOTATIONS)}",
    )

    @model_validator(mode="after")
    def _authenticated(self) -> NoLoginIngressConfig:
        if self.allow_unauthenticated or any(self.annotations.get(a) for a in AUTH_ANNOTATIONS):
            return self
        raise refuse(
            "allowUnauthenticated",
            False,
            "must be true to expose a service that has no login of its own, or annotations must "
            f"hold one of {', '.join(AUTH_ANNOTATIONS)}",
        )


# An ingress section: absent or `enabled: false` is None (no Ingress).
Ingress = Annotated[IngressConfig | None, Switch]
NoLoginIngress = Annotated[NoLoginIngressConfig | None, Switch]


class MlflowConfig(Component):
    """MLflow tracking server and model registry (needs postgres and objectStore)."""

    allowed_hosts: HostPatterns = Field(
        (), description="Host headers accepted beyond the in-cluster names and the ingress hosts"
    )
    ingress: Ingress = Field(
        None,
        description="an Ingress to the tracking server and UI (the basic-auth login stays on); "
        "its hosts join the server's allowed hosts and CORS origins",
    )
    replicas: Replicas = Field(json_schema_extra=FOLLOWS_REPLICAS)
    resources: Resources
    workers: Workers = Field(2, description="server worker processes per replica")
    admin_password: Secret = Field(alias="mlflowAdminPassword")
    flask_secret_key: Secret = Field(alias="mlflowFlaskSecretKey")


class FlyteOidc(Model):
    """People log in to the console and API through this OpenID Connect provider; Flyte's client
    secret there is the secret key `flyteOidcClientSecret`."""

    known_keys_sorted: ClassVar[bool] = False
    base_url: IssuerUrl = Field(description="the provider's issuer URL")
    client_id: OidcClientId = Field(description="Flyte's client id at the provider")
    client_secret: SuppliedSecret = Field(alias="flyteOidcClientSecret")


class FlyteAuth(Model):
    """Flyte's own OAuth2 authorization server is always on: programs log in with client
    credentials (CI and pyflyte: `mlops-ci`, secret key `flyteClientSecret`). People log in
    through `oidc`; without it Flyte has no browser login."""

    oidc: FlyteOidc | None = None


class FlyteConfig(Component):
    """Flyte 1.16 (flyte-binary; needs postgres and objectStore)."""

    auth: FlyteAuth = FlyteAuth()
    domains: Names = Field(
        ("development", "staging", "production"), description="each project's domains"
    )
    ingress: Ingress = Field(
        None,
        description="an Ingress to the console and REST API (HTTP, port 8088; Flyte's login stays "
        "on). pyflyte and flytectl speak gRPC, which passes only through a controller that "
        "forwards gRPC (h2c) to the backend; otherwise use a port-forward to 8089",
    )
    projects: Names = Field(("ml",), description="created at start, a namespace per domain")
    resources: Resources
    client_secret: Secret = Field(alias="flyteClientSecret")
    propeller_client_secret: Secret = Field(alias="flytePropellerClientSecret")
    session_key: Secret = Field(alias="flyteSessionKey")
    token_signing_key: RsaKey = Field(alias="flyteTokenSigningKey")


class FeastConfig(Component):
    """Feast feature server, apply Job and materialization CronJob (needs postgres and redis)."""

    materialize_schedule: Cron = Field(
        "*/15 * * * *", description="when `feast materialize-incremental` runs"
    )
    project: FeastProject = Field("fraud", description="the Feast project the server serves")
    replicas: Replicas = Field(json_schema_extra=FOLLOWS_REPLICAS)
    resources: Resources
    workers: Workers = Field(1, description="feature server worker processes per replica")


class CertManagerConfig(Model):
    """cert-manager, which KServe's webhook certificate needs: installed with KServe, or the
    cluster's own."""

    chart_repository: ChartRepository = Field(
        versions.CERT_MANAGER_CHART_REPOSITORY,
        description="where the cert-manager chart comes from (only with `install: true`)",
    )
    image_registry: Registry | None = Field(
        None, description="a mirror of quay.io (only with `install: true`)"
    )
    install: Flag = Field(
        True,
        description="false when the cluster already runs cert-manager: KServe's charts are "
        "installed without cert-manager's",
    )

    @model_validator(mode="after")
    def _mirrors_only_when_installed(self) -> CertManagerConfig:
        if not self.install:
            for key in ("chart_repository", "image_registry"):
                if key in self.model_fields_set:
                    raise refuse(
                        type(self).model_fields[key].alias or key,
                        getattr(self, key),
                        "must be left out when certManager.install is false "
                        "(no cert-manager is installed)",
                    )
        return self


class DriftCheckConfig(Model):
    """The drift check of the served model (workloads/monitoring/workflow.py): its defaults in
    every Flyte project namespace."""

    known_keys_sorted: ClassVar[bool] = False
    threshold: Share = Field(
        0.3,
        description="the share of monitored columns that must drift for a drift verdict, which "
        "launches a retraining",
    )
    column_threshold: Deviations = Field(
        0.5,
        description="a column drifts when its Wasserstein distance to the training reference "
        "reaches this many of the reference's standard deviations",
    )
    window_hours: Hours = Field(1, description="the window of logged predictions each check reads")
    min_rows: Rows = Field(
        500, description="fewer logged rows in the window give `not enough data`, no verdict"
    )
    cooldown_hours: Hours = Field(
        24, description="after a retraining is launched, none other starts for this long"
    )


class KserveConfig(Component):
    """KServe in Standard mode after cert-manager, installed with it unless
    `certManager.install` is false (needs objectStore)."""

    cert_manager: CertManagerConfig = CertManagerConfig()
    drift_check: DriftCheckConfig = DriftCheckConfig()
    chart_repository: ChartRepository = Field(
        versions.KSERVE_CHART_REPOSITORY, description="where the KServe charts come from"
    )
    image_registry: Registry | None = Field(
        None, description="a mirror replacing the registry host of every KServe image"
    )
    ingress_class: IngressClassName | None = Field(
        None, description="ingress for InferenceServices; none leaves ingress creation off"
    )
    install: Flag = Field(
        True, description="false when KServe and cert-manager are already on the cluster"
    )
    model_namespace: DnsLabel = Field(
        description="where InferenceServices run, with the storage Secret and ServiceAccount",
        json_schema_extra={"shown_default": "`<namespace>-models`"},
    )


class GrafanaConfig(Model):
    ingress: Ingress = Field(
        None,
        description="an Ingress to Grafana (its admin login stays on); the first host sets its "
        "root URL",
    )
    resources: Resources


class WebhookReceiver(Model):
    """Alerts posted as JSON to a URL, the secret key `alertmanagerWebhookUrl`."""

    send_resolved: Flag = Field(True, description="also post when an alert resolves")
    url: SuppliedSecretUrl = Field(alias="alertmanagerWebhookUrl")


class SlackReceiver(Model):
    """Alerts posted to a Slack channel through an incoming webhook, whose URL is the secret key
    `alertmanagerSlackApiUrl`."""

    channel: SlackChannel = Field(description="the channel to post to, such as #alerts")
    send_resolved: Flag = Field(True, description="also post when an alert resolves")
    api_url: SuppliedSecretUrl = Field(alias="alertmanagerSlackApiUrl")


class EmailReceiver(Model):
    """Alerts mailed through an SMTP server that takes a login; its password is the secret key
    `alertmanagerSmtpPassword`."""

    known_keys_sorted: ClassVar[bool] = False
    to: EmailAddresses = Field(description="who gets the mail")
    from_: EmailAddress = Field(alias="from", description="the sender address")
    smarthost: HostPort = Field(description="the SMTP server, such as smtp.example.com:587")
    username: SmtpUser = Field(description="the SMTP login")
    require_tls: Flag = Field(True, description="refuse to send without STARTTLS")
    send_resolved: Flag = Field(False, description="also mail when an alert resolves")
    password: SuppliedSecret = Field(alias="alertmanagerSmtpPassword")


class Receivers(Model):
    """Where alerts go; every receiver set gets every alert. None set: alerts are still routed,
    grouped and inhibited, and then dropped (the `null` receiver)."""

    webhook: WebhookReceiver | None = None
    slack: SlackReceiver | None = None
    email: EmailReceiver | None = None


class AlertmanagerConfig(Model):
    """One Alertmanager that Prometheus sends its alerts to."""

    group_interval: Duration = Field(
        "5m", description="how long before a group's new alerts are sent"
    )
    group_wait: Duration = Field("30s", description="how long a new group waits for more alerts")
    receivers: Receivers = Receivers()
    repeat_interval: Duration = Field(
        "4h", description="how long before a still-firing alert is sent again"
    )
    resources: Resources
    storage_size: Quantity = Field("1Gi", description="its volume (silences, notification log)")


class PushgatewayConfig(Model):
    """The Pushgateway batch jobs (the drift workflow) push their metrics to."""

    resources: Resources


class MonitoringConfig(Component):
    """Prometheus 3, Alertmanager, the Pushgateway and Grafana 13."""

    alertmanager: AlertmanagerConfig
    grafana: GrafanaConfig
    pushgateway: PushgatewayConfig
    prometheus_ingress: NoLoginIngress = Field(
        None,
        description="an Ingress to Prometheus, which has no login: it needs an auth annotation "
        "or `allowUnauthenticated`; the first host sets its external URL",
    )
    resources: Resources
    retention: Duration = Field(
        description="how long samples are kept (and at most 85% of the volume)"
    )
    storage_size: Quantity = Field(description="Prometheus's data volume")
    grafana_admin_password: Secret = Field(alias="grafanaAdminPassword")


class PullSecret(Model):
    """A private registry's login; its token is the secret key `imagePullPassword`."""

    known_keys_sorted: ClassVar[bool] = False
    registry: RegistryHost = Field(description="the host the project images are pulled from")
    username: RegistryUser = Field(description="the login the token belongs to")
    password: SuppliedSecret = Field(alias="imagePullPassword")


class ImagesConfig(Model):
    """The project's own images (targets of workloads/Dockerfile), by tag or digest
    (`name@sha256:...`), and `pullSecret`: the login of a private registry they come from
    (none: they are public or already on the nodes)."""

    known_keys_sorted: ClassVar[bool] = False
    workloads: Image = Field(
        versions.WORKLOADS_IMAGE,
        description="target `workloads`: feature repo Jobs, training tasks, transformer",
    )
    serving: Image = Field(
        versions.SERVING_IMAGE,
        description="target `serving`: the model server of the `mlops-mlflow` ServingRuntime",
    )
    pull_secret: PullSecret | None = None


class PlatformConfig(Model):
    """A stack's config, validated; a disabled component is None."""

    known_keys_sorted: ClassVar[bool] = False
    profile: ProfileName = Field("small", description="sizes, replicas and data protection")
    namespace: DnsLabel = Field("mlops", description="the namespace every platform object is in")
    ingress_namespace: DnsLabel = Field(
        "ingress-nginx",
        description="the ingress controller's namespace: NetworkPolicies let its pods reach the "
        "services an Ingress routes to",
    )
    storage_class: StorageClassName | None = Field(None, description="none: the cluster default")
    replicas: Replicas = Field(description="replicas of the stateless services")
    data_protection: Flag = Field(
        description="protect the namespace and data volumes, keep claims on delete"
    )
    postgres: Annotated[PostgresConfig | None, Switch]
    redis: Annotated[RedisConfig | None, Switch]
    object_store: Annotated[ObjectStoreConfig | None, Switch]
    mlflow: Annotated[MlflowConfig | None, Switch]
    flyte: Annotated[FlyteConfig | None, Switch]
    feast: Annotated[FeastConfig | None, Switch]
    kserve: Annotated[KserveConfig | None, Switch]
    monitoring: Annotated[MonitoringConfig | None, Switch]
    backups: Annotated[BackupsConfig | None, Switch]
    images: ImagesConfig = ImagesConfig()

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any, info: ValidationInfo) -> Any:
        """Lays the profile under the stack's keys, fills the secret fields, and records the
        checks across sections (they are reported with the field errors, in one message)."""
        if not isinstance(data, dict):
            return data
        context = info.context or {}
        secrets = {k: data[k] for k in SECRET_KEYS if k in data}
        plain = {k: v for k, v in data.items() if k not in SECRET_KEYS}
        laid = _lay(_defaults(plain), plain)
        problems: list[str] = context.get("problems", [])
        for section, key, _ in SECRETS:
            part = _part(laid, section)
            if part is None:
                continue
            if key in part:
                del part[key]
                problems.append(
                    f"{PROJECT}:{section}.{key} = [secret]: unknown key; set the secret with "
                    f"pulumi config set --secret {key}"
                )
            if key in secrets:
                stored = f"{PROJECT}:{key}" in context.get("secret_keys", ())
                part[key] = secrets[key] if stored else PlainText(secrets[key])
        problems.extend(_cross_checks(laid, secrets))
        return laid


# The sections' keys, and the attribute of each.
_ATTRIBUTES = {
    field.alias or name: name
    for name, field in PlatformConfig.model_fields.items()
    if model_of(field) is not None
}
SECTIONS = tuple(_ATTRIBUTES)
# (section, secret key, its rule) of every secret, and each secret key's section.
SECRETS = secret_fields(PlatformConfig)
SECRET_KEYS: Mapping[str, str] = {key: section for section, key, _ in SECRETS}


def section(config: PlatformConfig, path: str) -> Model | None:
    """A section by its stack key path ("objectStore", "images.pullSecret"); None while
    disabled or unset."""
    found: Model | None = config
    for key in path.split("."):
        if found is None:
            return None
        fields = type(found).model_fields
        found = getattr(found, next(n for n, f in fields.items() if (f.alias or n) == key))
    return found


def _part(laid: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The raw object at a section's key path, if the stack has one there."""
    part: Any = laid
    for key in path.split("."):
        part = part.get(key) if isinstance(part, dict) else None
    return part if isinstance(part, dict) else None


def _valid(rule: Any, value: Any) -> bool:
    try:
        TypeAdapter(rule).validate_python(value)
    except ValidationError:
        return False
    return True


def _defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's keys, plus the defaults that follow the stack's own top-level keys."""
    profile = data.get("profile", "small")
    # A copy: the laid config is filled in place (secrets), the profile never.
    base = copy.deepcopy(PROFILE_DEFAULTS[profile if profile in PROFILES else "small"])
    replicas = data.get("replicas", base["replicas"])
    if not _valid(Replicas, replicas):
        replicas = base["replicas"]
    namespace = data.get("namespace", "mlops")
    if not _valid(DnsLabel, namespace):
        namespace = "mlops"
    per_stack = {
        "mlflow": {"replicas": replicas},
        "feast": {"replicas": replicas},
        "kserve": {"modelNamespace": f"{namespace}-models"},
    }
    empty: dict[str, Any] = {key: {} for key in SECTIONS}
    laid: dict[str, Any] = _lay(_lay(empty, base), per_stack)
    return laid


def _lay(under: Any, over: Any) -> Any:
    """`over` laid on `under`: objects merge key by key, anything else replaces."""
    if not (isinstance(under, dict) and isinstance(over, dict)):
        return over
    return {**under, **{k: _lay(under[k], v) if k in under else v for k, v in over.items()}}


def _enabled(data: Mapping[str, Any], section: str) -> bool:
    part = data.get(section)
    return not (isinstance(part, dict) and part.get("enabled") is False)


def _cross_checks(data: Mapping[str, Any], secrets: Mapping[str, Any]) -> list[str]:
    """A service is only as available as what it stands on."""
    problems = [
        line(
            f"{dependency}.enabled",
            False,
            f"must be true while {service} is enabled (or set {service}.enabled: false)",
        )
        for service, dependencies in NEEDS.items()
        if _enabled(data, service)
        for dependency in dependencies
        if not _enabled(data, dependency)
    ]
    backups = data.get("backups")
    if (
        _enabled(data, "backups")
        and not _enabled(data, "objectStore")
        and not (isinstance(backups, dict) and backups.get("external"))
    ):
        problems.append(
            line(
                "objectStore.enabled",
                False,
                "must be true while backups are enabled without backups.external "
                "(or set backups.enabled: false)",
            )
        )
    if _enabled(data, "feast") and "," in str(secrets.get("redisPassword", "")):
        problems.append(
            f"{PROJECT}:redisPassword = [secret]: must not contain ',' while feast is enabled "
            "(Feast's Redis connection string separates its options with ',')"
        )
    return problems


def parse_raw(raw: Mapping[str, str]) -> dict[str, Any]:
    """Strips the project namespace and decodes JSON values (Pulumi passes objects as JSON).

    Secrets are kept as the strings they are.
    """
    data: dict[str, Any] = {}
    for full_key, text in raw.items():
        namespace, _, key = full_key.rpartition(":")
        if namespace != PROJECT:
            continue
        if key in SECRET_KEYS:
            data[key] = text
            continue
        try:
            data[key] = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            data[key] = text
    return data


def load(
    stack: str, raw: Mapping[str, str], secret_keys: frozenset[str] = frozenset()
) -> PlatformConfig:
    """Validates raw stack config (full `project:key` names) into a PlatformConfig."""
    problems: list[str] = []
    context = {"secret_keys": secret_keys, "problems": problems}
    try:
        config = PlatformConfig.model_validate(parse_raw(raw), context=context)
    except ValidationError as error:
        problems[:0] = describe(error, PlatformConfig, stack)
    if problems:
        raise ConfigError("invalid stack config:\n  " + "\n  ".join(problems))
    return config


def from_pulumi() -> PlatformConfig:
    """The running stack's config, as the language host hands it to the program."""
    return load(
        pulumi.get_stack(),
        pulumi.runtime.get_config_env(),
        frozenset(pulumi.runtime.get_config_secret_keys_env()),
    )
