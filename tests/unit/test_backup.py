"""The backup CronJobs and restore templates as rendered, their config, and the encryption of
a backup file (workloads/backup/crypto.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra import config, cron, versions
from infra.components import backup
from tests.support.rendering import SENTINELS, evaluate, secret_data, stack_rendering
from tests.support.rendering import raw_config as raw
from workloads.backup import crypto


def _pod(rendering: Any, name: str) -> dict[str, Any]:
    cronjob = rendering.find("CronJob", name).manifest()
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("stack", ["dev", "ci", "staging", "prod"])
def test_every_stack_backs_up_postgres_and_redis_without_overlapping_runs(stack: str) -> None:
    rendering = stack_rendering(stack)
    for name in ("backup-postgres", "backup-redis"):
        spec = rendering.find("CronJob", name).manifest()["spec"]
        assert spec["schedule"] == "0 2 * * *"
        assert spec["timeZone"] == "Etc/UTC"
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["suspend"] is False
        assert spec["startingDeadlineSeconds"] > 0
        assert spec["successfulJobsHistoryLimit"] == spec["failedJobsHistoryLimit"] == 3
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == 1


def test_dumps_run_in_the_servers_images_and_upload_in_the_workloads_image() -> None:
    rendering = stack_rendering("dev")
    for name, image in (
        ("backup-postgres", versions.POSTGRES_IMAGE),
        ("backup-redis", versions.REDIS_IMAGE),
    ):
        pod = _pod(rendering, name)
        (dump,) = pod["initContainers"]
        (upload,) = pod["containers"]
        assert dump["image"] == image
        assert upload["image"] == versions.WORKLOADS_IMAGE
        assert upload["command"] == backup.UPLOAD
        assert pod["restartPolicy"] == "Never"


def test_postgres_dumps_every_database_as_its_owner_with_the_password_from_its_secret() -> None:
    dump = _pod(stack_rendering("dev"), "backup-postgres")["initContainers"][0]
    env = _env(dump)
    assert env["DATABASES"] == "feast flyte mlflow"
    for db in ("feast", "flyte", "mlflow"):
        assert env[f"PASSWORD_{db.upper()}"] == {
            "secretKeyRef": {"name": f"postgres-{db}", "key": "password"}
        }
    script = backup.scripts()["postgres-dump.sh"]
    assert "pg_dump --format=custom" in script and '--username="$db"' in script


def test_redis_password_reaches_redis_cli_only_through_rediscli_auth() -> None:
    dump = _pod(stack_rendering("dev"), "backup-redis")["initContainers"][0]
    assert _env(dump)["REDISCLI_AUTH"] == {"secretKeyRef": {"name": "redis", "key": "password"}}
    script = backup.scripts()["redis-dump.sh"]
    assert "--rdb" in script
    assert " -a " not in script and "--pass" not in script and "--user" not in script


@pytest.mark.parametrize(("stack", "days"), [("dev", 7), ("staging", 14), ("prod", 30)])
def test_retention_follows_the_profile(stack: str, days: int) -> None:
    upload = _pod(stack_rendering(stack), "backup-postgres")["containers"][0]
    assert _env(upload)["BACKUP_RETENTION_DAYS"] == str(days)


def test_explicit_retention_schedule_and_keep_last_override_the_profile() -> None:
    rendering = evaluate(
        {"profile": "ha", "backups": {"retentionDays": 90, "schedule": "0 3 * * 0", "keepLast": 5}}
    )
    cronjob = rendering.find("CronJob", "backup-redis").manifest()
    env = _env(cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])
    assert cronjob["spec"]["schedule"] == "0 3 * * 0"
    assert env["BACKUP_RETENTION_DAYS"] == "90"
    assert env["BACKUP_KEEP_LAST"] == "5"
    # Weekly: the alert waits a week (and its margin) before a backup is missing.
    assert env["BACKUP_INTERVAL_SECONDS"] == str(7 * 24 * 3600)


def test_backups_go_to_the_platform_bucket_encrypted_with_the_stack_key() -> None:
    rendering = stack_rendering("dev")
    env = _env(_pod(rendering, "backup-postgres")["containers"][0])
    assert env["BACKUP_BUCKET"] == "backups"
    assert env["BACKUP_PREFIX"] == "mlops"
    assert env["AWS_ENDPOINT_URL"] == "http://seaweedfs.mlops.svc.cluster.local:8333"
    assert env["BACKUP_ENCRYPTION_KEY"] == {
        "secretKeyRef": {"name": "backup", "key": "encryption-key"}
    }
    data = secret_data(rendering, backup.SECRET_NAME)
    assert data["encryption-key"] == SENTINELS["backupEncryptionKey"]
    assert data["access-key-id"] == SENTINELS["objectStoreAccessKey"]
    buckets = rendering.find("Job", "seaweedfs-buckets").manifest()["spec"]["template"]["spec"]
    assert "backups" in _env(buckets["containers"][0])["BUCKETS"].split()


def test_unencrypted_backups_carry_no_key() -> None:
    rendering = evaluate({"backups": {"encrypt": False}})
    env = _env(_pod(rendering, "backup-postgres")["containers"][0])
    assert "BACKUP_ENCRYPTION_KEY" not in env
    assert "encryption-key" not in secret_data(rendering, backup.SECRET_NAME)


def test_an_external_target_gets_its_own_credentials() -> None:
    external = {
        "endpoint": "https://s3.eu-west-1.amazonaws.com",
        "region": "eu-west-1",
        "bucket": "acme-backups",
    }
    rendering = evaluate({"backups": {"external": external}})
    env = _env(_pod(rendering, "backup-redis")["containers"][0])
    assert env["AWS_ENDPOINT_URL"] == external["endpoint"]
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["BACKUP_BUCKET"] == "acme-backups"
    data = secret_data(rendering, backup.SECRET_NAME)
    assert data["access-key-id"] == SENTINELS["backupS3AccessKey"]
    assert data["secret-access-key"] == SENTINELS["backupS3SecretKey"]


def test_restore_templates_never_run_on_their_own() -> None:
    rendering = stack_rendering("prod")
    for name in ("restore-postgres", "restore-redis"):
        spec = rendering.find("CronJob", name).manifest()["spec"]
        assert spec["suspend"] is True
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0
    volumes = _pod(rendering, "restore-redis")["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-redis-0"}} in volumes


def test_disabled_backups_render_no_cronjob() -> None:
    rendering = evaluate({"backups": {"enabled": False}})
    names = {o["metadata"]["name"] for o in rendering.objects() if o["kind"] == "CronJob"}
    assert names == {"feast-materialize"}


def test_the_job_declares_what_it_connects_to_and_the_series_it_pushes() -> None:
    rendering = stack_rendering("dev")
    declared = next(t for t in rendering.telemetry if t.component == backup.COMPONENT)
    assert declared.metrics == backup.METRICS
    assert declared.rules == ("backups.yaml",)
    from workloads.backup import metrics

    assert metrics.SERIES == backup.METRICS


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"backups": {"schedule": "0 25 * * *"}},
            "backups.schedule = '0 25 * * *': must be a five",
        ),
        ({"backups": {"retentionDays": 0}}, "backups.retentionDays = 0: must be an integer from 1"),
        ({"backups": {"encrypt": "yes"}}, "backups.encrypt = 'yes': must be true or false"),
        (
            {
                "objectStore": {"enabled": False},
                "mlflow": {"enabled": False},
                "flyte": {"enabled": False},
                "kserve": {"enabled": False},
            },
            "objectStore.enabled = false: must be true while backups are enabled",
        ),
    ],
)
def test_bad_backup_config_names_key_value_and_rule(values: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError, match=message.replace("*", r"\*")):
        config.load("test", *raw(values))


def test_cron_interval_is_the_longest_gap_between_runs() -> None:
    assert cron.longest_interval_seconds("0 2 * * *") == 86_400
    assert cron.longest_interval_seconds("*/15 * * * *") == 900
    assert cron.longest_interval_seconds("0 2 * * 1-5") == 3 * 86_400
    assert cron.longest_interval_seconds("0 0 1 * *") == 31 * 86_400


def test_encryption_round_trips_and_refuses_a_wrong_key_or_a_cut_file(tmp_path: Path) -> None:
    plain = tmp_path / "dump"
    plain.write_bytes(bytes(range(256)) * (crypto.CHUNK // 128 + 7))
    sealed, back = tmp_path / "dump.enc", tmp_path / "back"
    crypto.encrypt(plain, sealed, "the-stack-key")
    assert plain.read_bytes()[:4096] not in sealed.read_bytes()
    crypto.decrypt(sealed, back, "the-stack-key")
    assert back.read_bytes() == plain.read_bytes()
    with pytest.raises(crypto.DecryptionError, match="wrong key"):
        crypto.decrypt(sealed, tmp_path / "x", "another-key")
    cut = tmp_path / "cut.enc"
    cut.write_bytes(sealed.read_bytes()[: len(sealed.read_bytes()) // 2])
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(cut, tmp_path / "y", "the-stack-key")
