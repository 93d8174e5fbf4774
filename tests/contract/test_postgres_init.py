"""The rendered Postgres init Job, run for real against a local Postgres server.

The Job's exact script, command and environment come from the offline render; only the server
address is swapped for the local one. Running it twice must create nothing twice.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import config
from mlops import render
from tests.support.rendering import SENTINELS, evaluate, pod_container, secret_data
from tests.support.servers import LocalPostgres, local_postgres, run_script_job

DATABASES = config.POSTGRES_CONSUMERS


@pytest.fixture
def server() -> Iterator[LocalPostgres]:
    pg = local_postgres()

    def drop_consumers() -> None:
        for db in DATABASES:
            pg.query(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            pg.query(f"DROP ROLE IF EXISTS {db}")

    drop_consumers()
    yield pg
    drop_consumers()


def rendering_for(pg: LocalPostgres, **passwords: str) -> render.Rendering:
    return evaluate({}, {**SENTINELS, "postgresPassword": pg.password, **passwords})


def run_init_job(
    rendering: render.Rendering, pg: LocalPostgres, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The rendered Job's script, command and env, pointed at the local server."""
    return run_script_job(
        rendering, "postgres-init", tmp_path, {}, str(pg.bin), PGHOST=pg.host, PGPORT=str(pg.port)
    )


def snapshot(pg: LocalPostgres) -> str:
    """OIDs and owners of the consumer databases and roles: equal only if nothing was recreated."""
    names = "('mlflow', 'flyte', 'feast')"
    databases = pg.query(
        "SELECT string_agg(format('%s:%s:%s', oid, datname, pg_get_userbyid(datdba)), ',' "
        f"ORDER BY datname) FROM pg_database WHERE datname IN {names}"
    )
    roles = pg.query(
        "SELECT string_agg(format('%s:%s', oid, rolname), ',' ORDER BY rolname) "
        f"FROM pg_roles WHERE rolname IN {names}"
    )
    return f"{databases}|{roles}"


def test_init_job_creates_a_login_and_database_per_consumer(
    server: LocalPostgres, tmp_path: Path
) -> None:
    rendering = rendering_for(server)
    result = run_init_job(rendering, server, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for db in DATABASES:
        assert f"database {db} ready" in result.stdout
        password = SENTINELS[f"postgres{db.capitalize()}Password"]
        login = server.psql(
            "CREATE TABLE probe (x int); SELECT current_user",
            user=db,
            password=password,
            database=db,
        )
        assert login.returncode == 0, login.stderr
        assert login.stdout.strip().endswith(db)


def test_consumers_cannot_reach_each_others_database(server: LocalPostgres, tmp_path: Path) -> None:
    assert run_init_job(rendering_for(server), server, tmp_path).returncode == 0
    intruder = server.psql(
        "SELECT 1", user="flyte", password=SENTINELS["postgresFlytePassword"], database="mlflow"
    )
    assert intruder.returncode != 0
    assert "permission denied for database" in intruder.stderr


def test_rerunning_the_init_job_creates_nothing_twice(
    server: LocalPostgres, tmp_path: Path
) -> None:
    rendering = rendering_for(server)
    assert run_init_job(rendering, server, tmp_path).returncode == 0
    server.psql(
        "CREATE TABLE kept (x int)",
        user="mlflow",
        password=SENTINELS["postgresMlflowPassword"],
        database="mlflow",
    )
    before = snapshot(server)
    assert len(before.replace("|", ",").split(",")) == 2 * len(DATABASES)
    again = run_init_job(rendering, server, tmp_path)
    assert again.returncode == 0, again.stderr
    assert snapshot(server) == before
    kept = server.psql(
        "SELECT count(*) FROM kept",
        user="mlflow",
        password=SENTINELS["postgresMlflowPassword"],
        database="mlflow",
    )
    assert kept.returncode == 0 and kept.stdout.strip() == "0"


def test_a_rotated_password_takes_effect_on_the_next_run(
    server: LocalPostgres, tmp_path: Path
) -> None:
    assert run_init_job(rendering_for(server), server, tmp_path).returncode == 0
    rotated = "rotated-Feast-password-42"
    assert (
        run_init_job(
            rendering_for(server, postgresFeastPassword=rotated), server, tmp_path
        ).returncode
        == 0
    )
    assert server.psql("SELECT 1", user="feast", password=rotated, database="feast").returncode == 0
    assert (
        server.psql(
            "SELECT 1", user="feast", password=SENTINELS["postgresFeastPassword"], database="feast"
        ).returncode
        != 0
    )


def test_rendered_database_url_connects(server: LocalPostgres, tmp_path: Path) -> None:
    rendering = rendering_for(server)
    assert run_init_job(rendering, server, tmp_path).returncode == 0
    url = secret_data(rendering, "postgres-mlflow")["url"].replace(
        "postgres.mlops.svc.cluster.local:5432", f"{server.host}:{server.port}"
    )
    result = subprocess.run(
        [str(server.bin / "psql"), url, "-tAc", "SELECT current_database()"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mlflow"


# A role and database of this test's own, so other tests sharing the server are unaffected.
SCRATCH = "rotation_scratch"


@pytest.fixture
def scratch(server: LocalPostgres) -> Iterator[LocalPostgres]:
    def drop() -> None:
        server.query(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        server.query(f"DROP ROLE IF EXISTS {SCRATCH}")

    drop()
    yield server
    drop()


def login(pg: LocalPostgres, password: str) -> int:
    return pg.psql("SELECT 1", user=SCRATCH, password=password, database=SCRATCH).returncode


def test_a_rotated_password_in_config_works_and_the_old_one_does_not(
    scratch: LocalPostgres, tmp_path: Path
) -> None:
    """The rendered init Job run for a scratch consumer with the password of the rendered
    Secret, before and after the password is rotated in stack config."""
    renderings = [
        rendering_for(scratch),
        rendering_for(scratch, postgresFeastPassword="rotated-Feast-password-7f3a9c"),
    ]
    old, new = (secret_data(r, "postgres-feast")["password"] for r in renderings)
    for rendering, password in zip(renderings, (old, new), strict=True):
        result = run_script_job(
            rendering,
            "postgres-init",
            tmp_path,
            {},
            str(scratch.bin),
            PGHOST=scratch.host,
            PGPORT=str(scratch.port),
            DATABASES=SCRATCH,
            **{f"PASSWORD_{SCRATCH.upper()}": password},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert login(scratch, password) == 0
    assert login(scratch, old) != 0


def test_the_server_applies_a_rotated_superuser_password_at_start(
    scratch: LocalPostgres, tmp_path: Path
) -> None:
    """The Postgres container's start hook, as rendered, for a scratch role: in the pod it
    connects over the socket the image trusts; here the role's old password stands in."""
    old = "superuser-password-before"
    scratch.query(f"CREATE ROLE {SCRATCH} LOGIN PASSWORD '{old}'")
    rendering = rendering_for(scratch)
    container = pod_container(rendering, "StatefulSet", "postgres")
    hook = container["lifecycle"]["postStart"]["exec"]["command"]
    new = secret_data(
        evaluate({}, {**SENTINELS, "postgresPassword": "rotated-superuser-password-2"}),
        "postgres-admin",
    )["password"]
    env = {
        **os.environ,
        "PATH": f"{scratch.bin}:{os.environ['PATH']}",
        "POSTGRES_USER": SCRATCH,
        "POSTGRES_PASSWORD": new,
        "PGHOST": scratch.host,
        "PGPORT": str(scratch.port),
        "PGPASSWORD": old,
    }
    result = subprocess.run(hook, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for password, works in ((new, True), (old, False)):
        attempt = scratch.psql("SELECT 1", user=SCRATCH, password=password)
        assert (attempt.returncode == 0) is works, attempt.stderr
