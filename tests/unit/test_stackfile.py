"""Stack files read without the CLI, and the plan bootstrap-secrets.sh follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import config, stackfile


def write_stack(tmp_path: Path, body: str) -> Path:
    (tmp_path / "Pulumi.t.yaml").write_text("config:\n" + body)
    return tmp_path


def test_fresh_stack_generates_every_secret() -> None:
    plan = stackfile.secret_plan(stackfile.read("dev"))
    assert plan == dict.fromkeys(config.SECRET_KEYS, "generate")


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
        "grafanaAdminPassword": "generate",
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
