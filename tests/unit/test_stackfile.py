"""Stack files read without the CLI, and the plan `mlops up` follows for secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import config, versions
from mlops import stackfile

# Alert receivers' credentials: needed only once their receiver is set, and never generated.
FLYTE_GENERATED = ("flyteClientSecret", "flytePropellerClientSecret", "flyteSessionKey")
RECEIVER_SECRETS = ("alertmanagerWebhookUrl", "alertmanagerSlackApiUrl", "alertmanagerSmtpPassword")
# An external backup target's credentials: supplied, and unused without `backups.external`.
BACKUP_S3_SECRETS = ("backupS3AccessKey", "backupS3SecretKey")


def write_stack(tmp_path: Path, body: str) -> Path:
    (tmp_path / "Pulumi.t.yaml").write_text("config:\n" + body)
    return tmp_path


def test_fresh_stack_generates_every_secret_it_uses() -> None:
    plan = stackfile.secret_plan(stackfile.read("dev"))
    assert plan == {
        **dict.fromkeys(config.SECRET_KEYS, "generate"),
        **dict.fromkeys(RECEIVER_SECRETS, "unused"),
        **dict.fromkeys(BACKUP_S3_SECRETS, "unused"),
        "imagePullPassword": "unused",
        # Only with flyte.auth.oidc, and then supplied by the identity provider's owner.
        "flyteOidcClientSecret": "unused",
        # mlops writes it with openssl.
        "flyteTokenSigningKey": "generate-rsa",
    }


def test_stored_secrets_are_left_alone(tmp_path: Path) -> None:
    stack = stackfile.read(
        "t", write_stack(tmp_path, "  mlops-platform:redisPassword:\n    secure: v1:abc\n")
    )
    assert stack.secure == {"mlops-platform:redisPassword"}
    assert stackfile.secret_plan(stack)["redisPassword"] == "set"


def test_external_credentials_must_be_supplied_but_consumer_logins_are_generated(
    tmp_path: Path,
) -> None:
    stack = stackfile.read(
        "t",
        write_stack(
            tmp_path,
            (
                "  mlops-platform:postgres:\n    external:\n      host: db.example.com\n"
                "  mlops-platform:objectStore:\n    external:\n      endpoint: https://s3.example.com\n"
                "  mlops-platform:redis:\n    enabled: false\n"
                "  mlops-platform:feast:\n    enabled: false\n"
            ),
        ),
    )
    assert stackfile.secret_plan(stack) == {
        "postgresPassword": "supply",
        "postgresMlflowPassword": "generate",
        "postgresFlytePassword": "generate",
        "postgresFeastPassword": "generate",
        "redisPassword": "unused",
        "objectStoreAccessKey": "supply",
        "objectStoreSecretKey": "supply",
        "mlflowAdminPassword": "generate",
        "mlflowFlaskSecretKey": "generate",
        **dict.fromkeys(FLYTE_GENERATED, "generate"),
        "flyteTokenSigningKey": "generate-rsa",
        "flyteOidcClientSecret": "unused",
        "grafanaAdminPassword": "generate",
        "backupEncryptionKey": "generate",
        **dict.fromkeys(RECEIVER_SECRETS, "unused"),
        **dict.fromkeys(BACKUP_S3_SECRETS, "unused"),
        "imagePullPassword": "unused",
    }


def test_an_external_backup_target_s_credentials_must_be_supplied(tmp_path: Path) -> None:
    stack = stackfile.read(
        "t",
        write_stack(
            tmp_path,
            "  mlops-platform:backups:\n    external:\n      endpoint: https://s3.example.com\n"
            "      bucket: acme-backups\n",
        ),
    )
    plan = stackfile.secret_plan(stack)
    assert {key: plan[key] for key in (*BACKUP_S3_SECRETS, "backupEncryptionKey")} == {
        "backupS3AccessKey": "supply",
        "backupS3SecretKey": "supply",
        "backupEncryptionKey": "generate",
    }


def test_plan_validates_the_stack_first(tmp_path: Path) -> None:
    stack = stackfile.read("t", write_stack(tmp_path, "  mlops-platform:profile: huge\n"))
    with pytest.raises(config.ConfigError, match="profile = 'huge'"):
        stackfile.secret_plan(stack)


def test_objects_and_scalars_reach_pulumis_raw_form(tmp_path: Path) -> None:
    stack = stackfile.read(
        "t",
        write_stack(
            tmp_path,
            (
                "  mlops-platform:replicas: 2\n  mlops-platform:dataProtection: true\n"
                "  mlops-platform:redis:\n    storageSize: 2Gi\n  kubernetes:context: kind-mlops\n"
            ),
        ),
    )
    assert stack.values == {
        "mlops-platform:replicas": "2",
        "mlops-platform:dataProtection": "true",
        "mlops-platform:redis": '{"storageSize": "2Gi"}',
        "kubernetes:context": "kind-mlops",
    }


def test_chart_repositories_are_those_kserve_installs_from(tmp_path: Path) -> None:
    installs = stackfile.read("t", write_stack(tmp_path, ""))
    assert stackfile.chart_repositories(installs) == [
        "https://charts.jetstack.io",
        "oci://ghcr.io/kserve/charts",
    ]
    installed = stackfile.read(
        "t", write_stack(tmp_path, "  mlops-platform:kserve:\n    install: false\n")
    )
    assert stackfile.chart_repositories(installed) == []


def test_a_cluster_with_its_own_cert_manager_pulls_only_the_kserve_charts(tmp_path: Path) -> None:
    stack = stackfile.read(
        "t",
        write_stack(
            tmp_path,
            "  mlops-platform:kserve:\n    chartRepository: oci://mirror.example.com/kserve\n"
            "    certManager:\n      install: false\n",
        ),
    )
    assert stackfile.chart_repositories(stack) == ["oci://mirror.example.com/kserve"]


def test_a_registry_token_is_always_supplied_never_generated(tmp_path: Path) -> None:
    stack = stackfile.read(
        "t",
        write_stack(
            tmp_path,
            "  mlops-platform:images:\n    pullSecret:\n"
            "      registry: registry.example.com\n      username: robot\n",
        ),
    )
    plan = stackfile.secret_plan(stack)
    assert plan["imagePullPassword"] == "supply"
    assert {k: v for k, v in plan.items() if k != "imagePullPassword"} == {
        **dict.fromkeys(set(config.SECRET_KEYS) - {"imagePullPassword"}, "generate"),
        **dict.fromkeys(RECEIVER_SECRETS, "unused"),
        "flyteOidcClientSecret": "unused",
        "flyteTokenSigningKey": "generate-rsa",
        **dict.fromkeys(BACKUP_S3_SECRETS, "unused"),
    }
    stored = stackfile.read(
        "t",
        write_stack(
            tmp_path,
            "  mlops-platform:images:\n    pullSecret:\n"
            "      registry: registry.example.com\n      username: robot\n"
            "  mlops-platform:imagePullPassword:\n    secure: v1:abc\n",
        ),
    )
    assert stackfile.secret_plan(stored)["imagePullPassword"] == "set"


def test_images_are_the_dockerfile_targets_under_the_stacks_names(tmp_path: Path) -> None:
    assert stackfile.project_images(stackfile.read("t", write_stack(tmp_path, ""))) == {
        "workloads": versions.WORKLOADS_IMAGE,
        "serving": versions.SERVING_IMAGE,
    }
    digest = "registry.example.com/ml/workloads@sha256:" + "ab" * 32
    stack = stackfile.read(
        "t",
        write_stack(
            tmp_path,
            f"  mlops-platform:images:\n    workloads: {digest}\n    serving: serving:kind\n",
        ),
    )
    assert stackfile.project_images(stack) == {"workloads": digest, "serving": "serving:kind"}


def test_a_bad_image_reference_is_refused_with_the_config_message(tmp_path: Path) -> None:
    write_stack(tmp_path, "  mlops-platform:images:\n    serving: UPPER:1\n")
    with pytest.raises(config.ConfigError) as refused:
        stackfile.project_images(stackfile.read("t", tmp_path))
    assert "mlops-platform:images.serving = 'UPPER:1': must be an image reference" in str(
        refused.value
    )


def test_alert_receivers_credentials_are_supplied_once_their_receiver_is_set(
    tmp_path: Path,
) -> None:
    stack = stackfile.read(
        "t",
        write_stack(
            tmp_path,
            "  mlops-platform:monitoring:\n    alertmanager:\n      receivers:\n"
            "        webhook: {}\n        slack:\n          channel: '#alerts'\n",
        ),
    )
    plan = stackfile.secret_plan(stack)
    assert {key: plan[key] for key in RECEIVER_SECRETS} == {
        "alertmanagerWebhookUrl": "supply",
        "alertmanagerSlackApiUrl": "supply",
        "alertmanagerSmtpPassword": "unused",
    }
