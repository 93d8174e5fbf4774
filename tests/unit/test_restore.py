"""`mlops restore`: the Job it makes from a restore template is that template's pod, restoring
the backup the user named; a backup name that is neither `latest` nor a UTC timestamp is refused
before anything is scaled down."""

from __future__ import annotations

import pytest

from mlops import restore
from mlops.errors import UserError
from tests.support.rendering import stack_rendering


@pytest.mark.parametrize("template", ["restore-postgres", "restore-redis"])
def test_the_job_is_the_templates_pod_with_the_named_backup(template: str) -> None:
    cron = stack_rendering("prod").find("CronJob", template).manifest()
    job = restore.job_from_template(cron, f"{template}-20261207000000", "20261130T020000Z")
    pod = job["spec"]["template"]["spec"]
    original = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    backup_ids = [
        item["value"]
        for container in pod["initContainers"]
        for item in container.get("env", [])
        if item["name"] == "BACKUP_ID"
    ]
    assert backup_ids == ["20261130T020000Z"]
    # Nothing else differs: same containers, volumes, account and security context.
    assert [c["name"] for c in pod["containers"]] == [c["name"] for c in original["containers"]]
    assert pod["containers"] == original["containers"]
    assert pod["volumes"] == original["volumes"]
    assert pod.get("securityContext") == original.get("securityContext")
    assert job["metadata"]["labels"] == cron["spec"]["jobTemplate"]["metadata"]["labels"]
    # The template itself still restores the newest backup.
    assert [
        item["value"]
        for container in original["initContainers"]
        for item in container.get("env", [])
        if item["name"] == "BACKUP_ID"
    ] == ["latest"]


@pytest.mark.parametrize("backup", ["yesterday", "2026-11-30", "20261130T0200Z", ""])
def test_a_backup_name_that_is_not_latest_or_a_timestamp_is_refused(backup: str) -> None:
    with pytest.raises(UserError, match="must be latest or a UTC timestamp"):
        restore.restore("prod", backup)
