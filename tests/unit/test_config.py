"""Stack config: profiles, overrides, and one clear message per bad value."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from infra import config, profiles, versions
from mlops import configdoc, render
from tests.support.rendering import SENTINELS, evaluate, raw_config

P = "mlops-platform"
QUANTITY = "must be a positive Kubernetes quantity such as 500m, 2, 512Mi or 10Gi"
NO_LOGIN = (
    "must be true to expose a service that has no login of its own, or annotations must hold "
    "one of nginx.ingress.kubernetes.io/auth-url, nginx.ingress.kubernetes.io/auth-type, "
    "traefik.ingress.kubernetes.io/router.middlewares"
)
HOSTS = (
    "must be a non-empty list of distinct DNS names such as mlflow.example.com "
    "(lowercase; no IP address, port or wildcard)"
)


def load(values: dict[str, Any], secrets: Mapping[str, str] = SENTINELS) -> config.PlatformConfig:
    raw, keys = raw_config(values, secrets)
    return config.load("dev", raw, keys)


def error_of(values: dict[str, Any], secrets: Mapping[str, str] = SENTINELS) -> str:
    with pytest.raises(config.ConfigError) as caught:
        load(values, secrets)
    message = str(caught.value)
    assert message.startswith("invalid stack config:\n  ")
    return message.removeprefix("invalid stack config:\n  ")


BAD_CONFIGS = [
    (
        {"flyte": {"projects": []}},
        f"{P}:flyte.projects = []: must be a non-empty list of distinct names of up to 30 of "
        "a-z, 0-9, '-'",
    ),
    (
        {"flyte": {"domains": ["development", "Production"]}},
        f'{P}:flyte.domains = ["development", "Production"]: must be a non-empty list of '
        "distinct names of up to 30 of a-z, 0-9, '-'",
    ),
    (
        {"mlflow": {"allowedHosts": "mlflow.example.com"}},
        f"{P}:mlflow.allowedHosts = 'mlflow.example.com': must be a list of Host header "
        "patterns such as mlflow.example.com or *.example.com:*",
    ),
    (
        {"mlflow": {"allowedHosts": ["ok.example.com", "bad host"]}},
        f'{P}:mlflow.allowedHosts = ["ok.example.com", "bad host"]: must be a list of Host '
        "header patterns such as mlflow.example.com or *.example.com:*",
    ),
    ({"mlflow": {"workers": 0}}, f"{P}:mlflow.workers = 0: must be an integer from 1 to 16"),
    (
        {"mlflow": {"replica": 2}},
        f"{P}:mlflow.replica = 2: unknown key; known keys: allowedHosts, enabled, ingress, "
        "replicas, resources, workers",
    ),
    (
        {
            "objectStore": {"enabled": False},
            "mlflow": {"enabled": False},
            "kserve": {"enabled": False},
            "backups": {"enabled": False},
        },
        f"{P}:objectStore.enabled = false: must be true while flyte is enabled "
        "(or set flyte.enabled: false)",
    ),
    (
        {"profle": "small"},
        f"{P}:profle = 'small': unknown key; known keys: profile, namespace, ingressNamespace, "
        "storageClass, replicas, dataProtection, postgres, redis, objectStore, mlflow, flyte, "
        "feast, kserve, monitoring, backups, images, postgresPassword, postgresMlflowPassword, "
        "postgresFlytePassword, postgresFeastPassword, redisPassword, objectStoreAccessKey, "
        "objectStoreSecretKey, mlflowAdminPassword, mlflowFlaskSecretKey, flyteOidcClientSecret, "
        "flyteClientSecret, flytePropellerClientSecret, flyteSessionKey, flyteTokenSigningKey, "
        "alertmanagerWebhookUrl, alertmanagerSlackApiUrl, alertmanagerSmtpPassword, "
        "grafanaAdminPassword, backupS3AccessKey, backupS3SecretKey, backupEncryptionKey, "
        "imagePullPassword",
    ),
    ({"profile": "huge"}, f"{P}:profile = 'huge': must be one of small, standard, ha"),
    ({"replicas": "two"}, f"{P}:replicas = 'two': must be an integer from 1 to 10"),
    ({"replicas": 0}, f"{P}:replicas = 0: must be an integer from 1 to 10"),
    ({"postgres": {"storageSize": "-5Gi"}}, f"{P}:postgres.storageSize = '-5Gi': {QUANTITY}"),
    ({"redis": {"storageSize": "0"}}, f"{P}:redis.storageSize = '0': {QUANTITY}"),
    (
        {"postgres": {"resources": {"limits": {"memory": "lots"}}}},
        f"{P}:postgres.resources.limits.memory = 'lots': {QUANTITY}",
    ),
    ({"dataProtection": "yes"}, f"{P}:dataProtection = 'yes': must be true or false"),
    (
        {"namespace": "MLOps"},
        f"{P}:namespace = 'MLOps': must be a DNS-1123 label (a-z, 0-9, '-')",
    ),
    ({"storageClass": ""}, f"{P}:storageClass = '': must be the name of a StorageClass"),
    ({"postgres": "yes"}, f"{P}:postgres = 'yes': must be an object"),
    (
        {"postgres": {"storage": "5Gi"}},
        f"{P}:postgres.storage = '5Gi': unknown key; known keys: enabled, external, resources, "
        "storageSize",
    ),
    (
        {"postgres": {"external": {"port": 5432}}},
        f"{P}:postgres.external.host is not set: required when postgres.external is set",
    ),
    (
        {"postgres": {"external": {"host": "db.example.com", "sslMode": "strict"}}},
        f"{P}:postgres.external.sslMode = 'strict': must be one of disable, allow, prefer, "
        "require, verify-ca, verify-full",
    ),
    (
        {"redis": {"external": {"host": "redis.example.com", "port": 70000}}},
        f"{P}:redis.external.port = 70000: must be an integer from 1 to 65535",
    ),
    (
        {
            "redis": {"enabled": False, "external": {"host": "redis.example.com"}},
            "feast": {"enabled": False},
        },
        f"{P}:redis.enabled = false: must be true when redis.external is set",
    ),
    (
        {"objectStore": {"external": {"region": "eu-west-1"}}},
        f"{P}:objectStore.external.endpoint is not set: required when objectStore.external is set",
    ),
    (
        {"objectStore": {"external": {"endpoint": "s3.example.com"}}},
        f"{P}:objectStore.external.endpoint = 's3.example.com': must be an http(s) URL such as "
        "https://s3.example.com",
    ),
    (
        {"objectStore": {"buckets": {"mlflow": "ML_Flow"}}},
        f"{P}:objectStore.buckets.mlflow = 'ML_Flow': must be an S3 bucket name "
        "(3-63 of a-z, 0-9, '.', '-')",
    ),
    (
        {"objectStore": {"buckets": {"artifacts": "art"}}},
        f"{P}:objectStore.buckets.artifacts = 'art': unknown key; known keys: mlflow, flyte, "
        "feast, models, predictions, backups",
    ),
    (
        {"redis": {"enabled": False}},
        f"{P}:redis.enabled = false: must be true while feast is enabled "
        "(or set feast.enabled: false)",
    ),
    (
        {"feast": {"materializeSchedule": "@hourly"}},
        f"{P}:feast.materializeSchedule = '@hourly': must be a five-field cron schedule such as "
        "'*/15 * * * *' or '0 * * * *'",
    ),
    (
        {"feast": {"repoImage": "ghcr.io/acme/workloads:1"}},
        f"{P}:feast.repoImage = 'ghcr.io/acme/workloads:1': unknown key; known keys: enabled, "
        "materializeSchedule, project, replicas, resources, workers",
    ),
    (
        {"images": {"workloads": "ghcr.io/Acme/workloads:1"}},
        f"{P}:images.workloads = 'ghcr.io/Acme/workloads:1': must be an image reference such as "
        "ghcr.io/acme/workloads:1.2.0",
    ),
    (
        {"images": {"workloads": "UPPER:1"}},
        f"{P}:images.workloads = 'UPPER:1': must be an image reference such as "
        "ghcr.io/acme/workloads:1.2.0",
    ),
    (
        {"images": {"serving": "ghcr.io/acme/serving@sha256:abc"}},
        f"{P}:images.serving = 'ghcr.io/acme/serving@sha256:abc': must be an image reference "
        "such as ghcr.io/acme/workloads:1.2.0",
    ),
    (
        {"images": {"pullSecret": {"registry": "not a host!", "username": "robot"}}},
        f"{P}:images.pullSecret.registry = 'not a host!': must be a registry host such as "
        "ghcr.io or registry.example.com:5000",
    ),
    (
        {"images": {"pullSecret": {"registry": "ghcr.io", "username": "robot deployer"}}},
        f"{P}:images.pullSecret.username = 'robot deployer': must be a registry user name "
        "(up to 255 of A-Z, a-z, 0-9, '.', '_', '@', '+', '-')",
    ),
    (
        {"images": {"pullSecret": {"registry": "ghcr.io"}}},
        f"{P}:images.pullSecret.username is not set: required when images.pullSecret is set",
    ),
    (
        {"images": {"pullSecret": {"registry": "ghcr.io", "username": "robot", "token": "x"}}},
        f"{P}:images.pullSecret.token = 'x': unknown key; known keys: registry, username",
    ),
    (
        {"images": {"enabled": False}},
        f"{P}:images.enabled = false: unknown key; known keys: workloads, serving, pullSecret",
    ),
    (
        {"feast": {"project": "fraud-v2"}},
        f"{P}:feast.project = 'fraud-v2': must be a Feast project name (a-z, 0-9, '_')",
    ),
    (
        {"feast": {"workers": 0}},
        f"{P}:feast.workers = 0: must be an integer from 1 to 16",
    ),
    (
        {"monitoring": {"prometheusIngress": {"hosts": ["prometheus.example.com"]}}},
        f"{P}:monitoring.prometheusIngress.allowUnauthenticated = false: {NO_LOGIN}",
    ),
    (
        {"flyte": {"auth": {"oidc": {"baseUrl": "https://id.example.com"}}}},
        f"{P}:flyte.auth.oidc.clientId is not set: required when flyte.auth.oidc is set",
    ),
    (
        {
            "monitoring": {
                "prometheusIngress": {
                    "hosts": ["prometheus.example.com"],
                    "annotations": {"nginx.ingress.kubernetes.io/auth-url": ""},
                }
            }
        },
        f"{P}:monitoring.prometheusIngress.allowUnauthenticated = false: {NO_LOGIN}",
    ),
    (
        {"mlflow": {"ingress": {"enabled": True, "className": "nginx"}}},
        f"{P}:mlflow.ingress.hosts is not set: required when mlflow.ingress is set",
    ),
    ({"mlflow": {"ingress": {"hosts": []}}}, f"{P}:mlflow.ingress.hosts = []: {HOSTS}"),
    (
        {"mlflow": {"ingress": {"hosts": ["MLflow.example.com"]}}},
        f'{P}:mlflow.ingress.hosts = ["MLflow.example.com"]: {HOSTS}',
    ),
    (
        {"monitoring": {"grafana": {"ingress": {"hosts": ["10.0.0.7"]}}}},
        f'{P}:monitoring.grafana.ingress.hosts = ["10.0.0.7"]: {HOSTS}',
    ),
    (
        {"mlflow": {"ingress": {"hosts": ["*.example.com"]}}},
        f'{P}:mlflow.ingress.hosts = ["*.example.com"]: {HOSTS}',
    ),
    (
        {"mlflow": {"ingress": {"hosts": "mlflow.example.com"}}},
        f"{P}:mlflow.ingress.hosts = 'mlflow.example.com': {HOSTS}",
    ),
    (
        {"mlflow": {"ingress": {"enabled": "yes", "hosts": ["mlflow.example.com"]}}},
        f"{P}:mlflow.ingress.enabled = 'yes': must be true or false",
    ),
    (
        {"mlflow": {"ingress": {"hosts": ["mlflow.example.com"], "className": "Nginx"}}},
        f"{P}:mlflow.ingress.className = 'Nginx': must be an IngressClass name",
    ),
    (
        {"mlflow": {"ingress": {"hosts": ["mlflow.example.com"], "host": "x"}}},
        f"{P}:mlflow.ingress.host = 'x': unknown key; known keys: annotations, className, "
        "enabled, hosts, tls",
    ),
    (
        {
            "monitoring": {
                "prometheusIngress": {"hosts": ["p.example.com"], "allowUnauthenticated": "yes"}
            }
        },
        f"{P}:monitoring.prometheusIngress.allowUnauthenticated = 'yes': must be true or false",
    ),
    (
        {"mlflow": {"ingress": {"hosts": ["mlflow.example.com"], "annotations": {"a/b": True}}}},
        f'{P}:mlflow.ingress.annotations = {{"a/b": true}}: must be a map of annotation names '
        "such as example.com/name to strings (quote true and numbers)",
    ),
    (
        {
            "mlflow": {
                "ingress": {
                    "hosts": ["mlflow.example.com"],
                    "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                }
            }
        },
        f'{P}:mlflow.ingress.annotations = {{"cert-manager.io/cluster-issuer": "letsencrypt"}}: '
        "must not hold cert-manager.io/cluster-issuer or cert-manager.io/issuer: set "
        "tls.clusterIssuer or tls.issuer",
    ),
    (
        {"mlflow": {"ingress": {"hosts": ["mlflow.example.com"], "tls": {}}}},
        f"{P}:mlflow.ingress.tls.clusterIssuer = null: must name a ClusterIssuer (or set issuer)",
    ),
    (
        {
            "mlflow": {
                "ingress": {
                    "hosts": ["mlflow.example.com"],
                    "tls": {"clusterIssuer": "letsencrypt", "issuer": "platform-ca"},
                }
            }
        },
        f"{P}:mlflow.ingress.tls.issuer = 'platform-ca': must be left out when clusterIssuer "
        "is set",
    ),
    (
        {"mlflow": {"ingress": {"hosts": ["mlflow.example.com"], "tls": {"issuer": "CA"}}}},
        f"{P}:mlflow.ingress.tls.issuer = 'CA': must be the name of a cert-manager issuer",
    ),
    (
        {"kserve": {"certManager": {"install": "no"}}},
        f"{P}:kserve.certManager.install = 'no': must be true or false",
    ),
    (
        {"kserve": {"certManager": {"installed": False}}},
        f"{P}:kserve.certManager.installed = false: unknown key; known keys: chartRepository, "
        "imageRegistry, install",
    ),
    (
        {"kserve": {"certManager": {"install": False, "imageRegistry": "mirror.example.com/q"}}},
        f"{P}:kserve.certManager.imageRegistry = 'mirror.example.com/q': must be left out when "
        "certManager.install is false (no cert-manager is installed)",
    ),
    (
        {
            "kserve": {
                "certManager": {"install": False, "chartRepository": "https://charts.jetstack.io"}
            }
        },
        f"{P}:kserve.certManager.chartRepository = 'https://charts.jetstack.io': must be left "
        "out when certManager.install is false (no cert-manager is installed)",
    ),
]


@pytest.mark.parametrize(
    ("values", "message"), BAD_CONFIGS, ids=[m.split(" ")[0] for _, m in BAD_CONFIGS]
)
def test_bad_config_fails_with_exact_message(values: dict[str, Any], message: str) -> None:
    assert error_of(values) == message


def test_ingress_is_off_unless_set() -> None:
    cfg = load({"mlflow": {"ingress": {"enabled": False, "hosts": ["mlflow.example.com"]}}})
    assert cfg.mlflow and cfg.flyte and cfg.monitoring
    assert cfg.mlflow.ingress is None and cfg.flyte.ingress is None
    assert cfg.monitoring.grafana.ingress is None and cfg.monitoring.prometheus_ingress is None


@pytest.mark.parametrize(
    "annotations",
    [
        {"nginx.ingress.kubernetes.io/auth-url": "http://oauth2-proxy.auth.svc/oauth2/auth"},
        {"nginx.ingress.kubernetes.io/auth-type": "basic"},
        {"traefik.ingress.kubernetes.io/router.middlewares": "auth-sso@kubernetescrd"},
    ],
)
def test_an_auth_annotation_admits_an_ingress_to_a_service_without_login(
    annotations: dict[str, str],
) -> None:
    ingress = {"hosts": ["prometheus.example.com"], "annotations": annotations}
    cfg = load({"monitoring": {"prometheusIngress": ingress}})
    assert cfg.monitoring and cfg.monitoring.prometheus_ingress
    assert cfg.monitoring.prometheus_ingress.annotations == annotations
    assert cfg.monitoring.prometheus_ingress.allow_unauthenticated is False


def test_allow_unauthenticated_admits_an_ingress_to_a_service_without_login() -> None:
    ingress = {"hosts": ["prometheus.lab.internal"], "allowUnauthenticated": True}
    cfg = load({"monitoring": {"prometheusIngress": ingress}})
    assert cfg.monitoring and cfg.monitoring.prometheus_ingress
    assert cfg.monitoring.prometheus_ingress.urls == ("http://prometheus.lab.internal",)


@pytest.mark.parametrize("service", ["mlflow", "flyte"])
def test_services_with_a_login_need_no_auth_annotation_nor_know_the_opt_in(service: str) -> None:
    cfg = load({service: {"ingress": {"hosts": [f"{service}.example.com"]}}})
    ingress = getattr(cfg, service).ingress
    assert ingress and ingress.hosts == (f"{service}.example.com",)
    message = error_of(
        {service: {"ingress": {"hosts": ["x.example.com"], "allowUnauthenticated": True}}}
    )
    assert message.startswith(f"{P}:{service}.ingress.allowUnauthenticated = true: unknown key")


def test_missing_secret_names_the_command_that_fixes_it() -> None:
    secrets = {k: v for k, v in SENTINELS.items() if k != "redisPassword"}
    assert error_of({}, secrets) == (
        f"{P}:redisPassword is not set (required while redis is enabled); generate it: "
        'mlops secrets bootstrap dev, or give it: printf %s "$VALUE" | mlops secrets set dev '
        "redisPassword"
    )


LOGIN = {"registry": "registry.example.com:5000", "username": "robot"}


def test_a_registry_login_without_its_token_names_the_command_that_sets_it() -> None:
    secrets = {k: v for k, v in SENTINELS.items() if k != "imagePullPassword"}
    assert error_of({"images": {"pullSecret": LOGIN}}, secrets) == (
        f"{P}:imagePullPassword is not set (required while images.pullSecret is set); "
        'give it: printf %s "$VALUE" | mlops secrets set dev imagePullPassword'
    )


def test_the_registry_token_is_refused_in_plain_text_or_inside_its_section() -> None:
    raw, keys = raw_config({"images": {"pullSecret": LOGIN}})
    with pytest.raises(config.ConfigError) as caught:
        config.load("dev", raw, keys - {f"{P}:imagePullPassword"})
    assert str(caught.value).endswith(
        f"{P}:imagePullPassword is stored in plain text: it must be a secret; give it "
        'as one: printf %s "$VALUE" | mlops secrets set dev imagePullPassword'
    )
    inline = {"images": {"pullSecret": {**LOGIN, "imagePullPassword": "plain-text-token"}}}
    message = error_of(inline)
    assert message == (
        f"{P}:images.pullSecret.imagePullPassword = [secret]: unknown key; set the secret with "
        "pulumi config set --secret imagePullPassword"
    )
    assert "plain-text-token" not in message


def test_images_default_to_the_pinned_project_images_without_a_login() -> None:
    images = load({}).images
    assert (images.workloads, images.serving) == (versions.WORKLOADS_IMAGE, versions.SERVING_IMAGE)
    assert images.pull_secret is None


def test_a_registry_token_without_a_login_is_left_unused() -> None:
    """As a disabled component's secrets are: set, but nothing reads it."""
    cfg = load({}, SENTINELS)
    assert cfg.images.pull_secret is None
    with_login = load({"images": {"pullSecret": LOGIN}})
    assert with_login.images.pull_secret is not None
    assert with_login.images.pull_secret.registry == "registry.example.com:5000"
    token = with_login.images.pull_secret.password.get_secret_value()
    assert token == SENTINELS["imagePullPassword"]


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "reference",
    [
        "workloads:dev",
        "localhost:5000/mlops/workloads:1.2.0",
        f"ghcr.io/acme/workloads@{DIGEST}",
        f"ghcr.io/acme/workloads:1.2.0@{DIGEST}",
        f"registry.example.com:5000/ml/serving@{DIGEST}",
    ],
)
def test_images_accept_tags_and_digests(reference: str) -> None:
    images = load({"images": {"workloads": reference, "serving": reference}}).images
    assert (images.workloads, images.serving) == (reference, reference)


@pytest.mark.parametrize(
    "reference",
    [
        f"ghcr.io/acme/workloads@{DIGEST[:-1]}",
        f"ghcr.io/acme/workloads@{DIGEST.upper()}",
        f"ghcr.io/acme/workloads@sha512:{DIGEST[7:]}",
        "ghcr.io/acme/workloads:1 ",
    ],
)
def test_images_refuse_malformed_digests(reference: str) -> None:
    assert error_of({"images": {"workloads": reference}}).startswith(
        f"{P}:images.workloads = {reference!r}: must be an image reference"
    )


def test_secret_stored_in_plain_text_is_rejected() -> None:
    raw, keys = raw_config({})
    with pytest.raises(config.ConfigError) as caught:
        config.load("dev", raw, keys - {f"{P}:objectStoreSecretKey"})
    assert str(caught.value).endswith(
        f"{P}:objectStoreSecretKey is stored in plain text: it must be a secret; give it "
        'as one: printf %s "$VALUE" | mlops secrets set dev objectStoreSecretKey'
    )


def test_weak_secret_is_rejected_without_echoing_it() -> None:
    message = error_of({}, {**SENTINELS, "postgresPassword": "short pass"})
    assert message == (
        f"{P}:postgresPassword = [secret]: must be 12 to 256 printable characters without "
        "spaces, quotes or backslashes"
    )
    assert "short pass" not in message


def test_every_error_is_reported_in_one_message() -> None:
    message = error_of({"profile": "huge", "replicas": 0, "redis": {"storageSize": "-1Gi"}})
    assert message.split("\n  ") == [
        f"{P}:profile = 'huge': must be one of small, standard, ha",
        f"{P}:replicas = 0: must be an integer from 1 to 10",
        f"{P}:redis.storageSize = '-1Gi': {QUANTITY}",
    ]


def test_bad_config_registers_no_resource() -> None:
    monitor = render.RecordingMonitor()
    raw, keys = raw_config({"profile": "huge"})
    with pytest.raises(config.ConfigError):
        render.evaluate("dev", raw, keys, monitor=monitor)
    assert monitor.recorded == []


def test_disabled_component_is_none_and_needs_no_secret() -> None:
    secrets = {k: v for k, v in SENTINELS.items() if config.SECRET_KEYS[k] != "redis"}
    loaded = load({"redis": {"enabled": False}, "feast": {"enabled": False}}, secrets)
    assert loaded.redis is None and loaded.feast is None
    assert loaded.postgres is not None


def test_field_and_cross_section_errors_come_in_one_message() -> None:
    message = error_of({"replicas": 0, "redis": {"enabled": False}})
    assert message.split("\n  ") == [
        f"{P}:replicas = 0: must be an integer from 1 to 10",
        f"{P}:redis.enabled = false: must be true while feast is enabled "
        "(or set feast.enabled: false)",
    ]


def test_a_secret_written_into_a_section_is_refused_without_echoing_it() -> None:
    message = error_of({"redis": {"redisPassword": "plain-text-password"}})
    assert message == (
        f"{P}:redis.redisPassword = [secret]: unknown key; set the secret with "
        "pulumi config set --secret redisPassword"
    )


def test_every_secret_key_belongs_to_the_section_that_needs_it() -> None:
    assert config.SECRET_KEYS == {
        "postgresPassword": "postgres",
        "postgresMlflowPassword": "postgres",
        "postgresFlytePassword": "postgres",
        "postgresFeastPassword": "postgres",
        "redisPassword": "redis",
        "objectStoreAccessKey": "objectStore",
        "objectStoreSecretKey": "objectStore",
        "mlflowAdminPassword": "mlflow",
        "mlflowFlaskSecretKey": "mlflow",
        "flyteOidcClientSecret": "flyte.auth.oidc",
        "flyteClientSecret": "flyte",
        "flytePropellerClientSecret": "flyte",
        "flyteSessionKey": "flyte",
        "flyteTokenSigningKey": "flyte",
        "alertmanagerWebhookUrl": "monitoring.alertmanager.receivers.webhook",
        "alertmanagerSlackApiUrl": "monitoring.alertmanager.receivers.slack",
        "alertmanagerSmtpPassword": "monitoring.alertmanager.receivers.email",
        "grafanaAdminPassword": "monitoring",
        "backupS3AccessKey": "backups.external",
        "backupS3SecretKey": "backups.external",
        "backupEncryptionKey": "backups",
        "imagePullPassword": "images.pullSecret",
    }


def test_secret_values_stay_hidden_in_the_models_repr() -> None:
    cfg = load({})
    assert cfg.redis is not None
    assert SENTINELS["redisPassword"] not in repr(cfg) + str(cfg.model_dump())
    assert cfg.redis.password.get_secret_value() == SENTINELS["redisPassword"]


def test_from_pulumi_reads_the_config_the_language_host_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw, keys = raw_config({"namespace": "from-env"})
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(raw))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(sorted(keys)))
    monkeypatch.setattr(config.pulumi, "get_stack", lambda: "dev")
    assert config.from_pulumi().namespace == "from-env"
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", "[]")
    with pytest.raises(config.ConfigError, match="postgresPassword is stored in plain text"):
        config.from_pulumi()


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_profile_sets_sizes_and_protection(profile: str) -> None:
    defaults = profiles.PROFILE_DEFAULTS[profile]
    cfg = load({"profile": profile})
    assert cfg.postgres and cfg.redis and cfg.object_store and cfg.monitoring
    assert cfg.replicas == defaults["replicas"]
    assert cfg.data_protection is defaults["dataProtection"]
    assert cfg.postgres.storage_size == defaults["postgres"]["storageSize"]
    assert cfg.redis.resources.model_dump() == defaults["redis"]["resources"]
    assert cfg.object_store.storage_size == defaults["objectStore"]["storageSize"]
    assert cfg.monitoring.retention == defaults["monitoring"]["retention"]


def test_explicit_keys_override_the_profile() -> None:
    cfg = load(
        {
            "profile": "ha",
            "replicas": 3,
            "dataProtection": False,
            "postgres": {"storageSize": "7Gi", "resources": {"requests": {"cpu": "300m"}}},
        }
    )
    ha = profiles.PROFILE_DEFAULTS["ha"]
    assert cfg.postgres and cfg.redis and cfg.mlflow and cfg.feast
    assert (cfg.replicas, cfg.data_protection, cfg.postgres.storage_size) == (3, False, "7Gi")
    assert cfg.postgres.resources.requests.cpu == "300m"
    assert (
        cfg.postgres.resources.requests.memory == ha["postgres"]["resources"]["requests"]["memory"]
    )
    assert cfg.redis.storage_size == ha["redis"]["storageSize"]
    # Stateless services follow the stack's replicas unless they set their own.
    assert (cfg.mlflow.replicas, cfg.feast.replicas) == (3, 3)


def test_profiles_grow_from_small_to_ha() -> None:
    def gib(quantity: str) -> float:
        return float(quantity.removesuffix("Gi"))

    sizes = [profiles.PROFILE_DEFAULTS[p] for p in profiles.PROFILES]
    for part in ("postgres", "redis", "objectStore", "monitoring"):
        storage = [gib(s[part]["storageSize"]) for s in sizes]
        assert storage == sorted(storage) and storage[0] < storage[-1], part


def test_external_services_are_read_with_defaults() -> None:
    cfg = load(
        {
            "postgres": {"external": {"host": "db.example.com"}},
            "redis": {"external": {"host": "cache.example.com", "tls": True}},
            "objectStore": {
                "external": {"endpoint": "https://s3.eu-west-1.amazonaws.com/"},
                "buckets": {"models": "acme-models"},
            },
        }
    )
    assert cfg.postgres and cfg.redis and cfg.object_store
    assert cfg.postgres.external is not None
    assert cfg.postgres.external.model_dump() == {
        "host": "db.example.com",
        "port": 5432,
        "admin_user": "postgres",
        "ssl_mode": "require",
    }
    assert cfg.redis.external is not None
    assert cfg.redis.external.model_dump() == {
        "host": "cache.example.com",
        "port": 6379,
        "tls": True,
    }
    assert cfg.object_store.external is not None
    assert cfg.object_store.external.model_dump() == {
        "endpoint": "https://s3.eu-west-1.amazonaws.com",
        "region": "us-east-1",
    }
    assert cfg.object_store.buckets.models == "acme-models"


def test_other_namespaces_are_left_alone() -> None:
    raw, keys = raw_config({})
    raw["kubernetes:context"] = "kind-mlops"
    assert config.load("dev", raw, keys).profile == "small"


def test_config_is_frozen() -> None:
    cfg = load({})
    with pytest.raises(ValidationError, match="frozen"):
        cfg.profile = "ha"


def test_stack_files_parse_with_their_intended_profiles() -> None:
    profiles = {
        s: render.stack_config(s)[0][f"{P}:profile"] for s in ("dev", "ci", "staging", "prod")
    }
    assert profiles == {"dev": "small", "ci": "small", "staging": "standard", "prod": "ha"}


def test_evaluation_of_a_stack_uses_its_file(tmp_path: Any) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text(
        "config:\n  mlops-platform:profile: standard\n"
        "  mlops-platform:redisPassword:\n    secure: v1:abc\n"
    )
    raw, keys = render.stack_config("x", tmp_path)
    assert raw[f"{P}:profile"] == "standard"
    assert f"{P}:redisPassword" in keys
    assert evaluate({"profile": "standard"}).config.profile == "standard"


def test_project_file_declares_only_keys_whose_defaults_match_the_program() -> None:
    """Pulumi copies declared defaults into every stack and requires declared keys without one."""
    project = yaml.safe_load((Path(__file__).resolve().parents[2] / "Pulumi.yaml").read_text())
    declared = project["config"]
    assert set(declared) == {"profile", "namespace", "postgres", "redis", "objectStore"}
    assert all("default" in spec for spec in declared.values())
    assert not set(declared) & set(config.SECRET_KEYS)
    raw, keys = raw_config({})
    for key, spec in declared.items():
        value = spec["default"]
        raw[f"{P}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    with_declared, without = config.load("dev", raw, keys), load({})

    assert with_declared == without


def test_project_file_declares_keys_of_the_model() -> None:
    project = yaml.safe_load((Path(__file__).resolve().parents[2] / "Pulumi.yaml").read_text())
    fields = {f.alias for f in config.PlatformConfig.model_fields.values()}
    assert set(project["config"]) <= fields


def test_the_configuration_reference_is_written_from_the_models() -> None:
    committed = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert committed == configdoc.document(), "docs/configuration.md is stale: run mlops docs"


def test_the_reference_names_every_key_with_its_profile_values() -> None:
    document = configdoc.document()
    for key in (
        "postgres.storageSize",
        "kserve.certManager.imageRegistry",
        "flyte.enabled",
        "flyte.auth.oidc.baseUrl",
        "monitoring.prometheusIngress.allowUnauthenticated",
        "monitoring.grafana.ingress.tls.clusterIssuer",
    ):
        assert f"| `{key}` |" in document
    assert "| `redis.storageSize` | quantity | profile | 1Gi | 5Gi | 20Gi |" in document
    assert "| `redisPassword` | redis enabled | yes; with `redis.external`, supply it |" in document
    assert "| `mlflow.ingress.enabled` | boolean | off unless set |" in document
