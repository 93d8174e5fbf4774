"""The rendered MLflow server on loopback: the migration Job's command, then the Deployment's
command, args and env, with only in-cluster addresses, the port and the metrics directory
changed. Used by the MLflow contract tests and the golden path."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from infra.components import mlflow as mlflow_component
from mlops import render
from tests.support.rendering import SENTINELS, evaluate, pod_container
from tests.support.servers import (
    LocalPostgres,
    LocalS3,
    free_port,
    local_env,
    run_script_job,
    running_server,
)

VENV_BIN = str(Path(sys.executable).parent)
ADMIN = "admin"
ADMIN_PASSWORD = SENTINELS["mlflowAdminPassword"]


def addresses(pg: LocalPostgres, s3: LocalS3) -> dict[str, str]:
    return {
        "postgres.mlops.svc.cluster.local:5432": f"{pg.host}:{pg.port}",
        "http://seaweedfs.mlops.svc.cluster.local:8333": s3.endpoint,
    }


def platform_rendering(pg: LocalPostgres, s3: LocalS3) -> render.Rendering:
    """The default stack rendered with the local servers' credentials."""
    return evaluate(
        {},
        {
            **SENTINELS,
            "postgresPassword": pg.password,
            "objectStoreAccessKey": s3.access_key,
            "objectStoreSecretKey": s3.secret_key,
        },
    )


def prepare_storage(
    rendering: render.Rendering, pg: LocalPostgres, s3: LocalS3, work: Path, fresh: Sequence[str]
) -> None:
    """What a deploy does before the servers start: the `fresh` databases dropped, then the
    rendered Postgres init and bucket Jobs run."""
    for database in fresh:
        pg.query(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    init = run_script_job(
        rendering, "postgres-init", work, {}, str(pg.bin), PGHOST=pg.host, PGPORT=str(pg.port)
    )
    assert init.returncode == 0, init.stderr
    buckets = run_script_job(
        rendering, "seaweedfs-buckets", work, {}, str(s3.weed.parent), MASTER=s3.master
    )
    assert buckets.returncode == 0, buckets.stdout + buckets.stderr


def artifacts_destination(rendering: render.Rendering) -> str:
    """The server's --artifacts-destination: where proxied artifacts land in S3."""
    args = pod_container(rendering, "Deployment", "mlflow")["args"]
    return next(a.split("=", 1)[1] for a in args if a.startswith("--artifacts-destination="))


def _env(rendering: render.Rendering, container: dict, local: dict[str, str], work: Path) -> dict:  # type: ignore[type-arg]
    return {
        **local_env(rendering, container, local),
        "HOME": str(work),
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    }


def upgrade(rendering: render.Rendering, local: dict[str, str], work: Path) -> None:
    """The migration Job's command."""
    container = pod_container(rendering, "Job", "mlflow-db-upgrade")
    subprocess.run(
        container["command"],
        env=_env(rendering, container, local, work),
        check=True,
        capture_output=True,
        timeout=300,
    )


@contextlib.contextmanager
def mlflow_server(rendering: render.Rendering, local: dict[str, str], work: Path) -> Iterator[str]:
    """Runs the migration, then the server; yields its URL."""
    upgrade(rendering, local, work)
    container = pod_container(rendering, "Deployment", "mlflow")
    port = free_port()
    args = [
        a.replace("--host=0.0.0.0", "--host=127.0.0.1")
        .replace(f"--port={mlflow_component.PORT}", f"--port={port}")
        .replace(mlflow_component.PROMETHEUS_DIR, str(work / "prometheus"))
        for a in container["args"]
    ]
    env = _env(rendering, container, local, work)
    auth_ini = work / "basic_auth.ini"
    secret_ini = {
        "env": [
            {
                "name": "ini",
                "valueFrom": {"secretKeyRef": {"name": "mlflow", "key": "basic_auth.ini"}},
            }
        ]
    }
    auth_ini.write_text(local_env(rendering, secret_ini, local)["ini"])
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_ini)
    url = f"http://127.0.0.1:{port}"
    with running_server([*container["command"], *args], f"{url}/health", work, env):
        yield url
