"""Postgres: server, one database and login per consumer, the idempotent init Job."""

from __future__ import annotations

from infra import config, versions
from infra.components import postgres
from tests.support.rendering import SENTINELS, component_objects, env_of, evaluate, secret_data

EXTERNAL = {"postgres": {"external": {"host": "db.example.com", "port": 6543}}}


def test_server_runs_the_official_image_with_its_volume_at_the_18_layout() -> None:
    statefulset = evaluate({}).find("StatefulSet", "postgres").manifest()
    server, exporter = statefulset["spec"]["template"]["spec"]["containers"]
    assert server["image"] == versions.POSTGRES_IMAGE
    assert {"name": "data", "mountPath": "/var/lib/postgresql"} in server["volumeMounts"]
    assert env_of(server)["POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "postgres-admin", "key": "password"}
    }
    assert exporter["image"] == versions.POSTGRES_EXPORTER_IMAGE
    assert exporter["ports"] == [{"name": "metrics", "containerPort": postgres.METRICS_PORT}]


def test_each_consumer_gets_a_login_and_database_secret() -> None:
    rendering = evaluate({})
    for db in config.POSTGRES_CONSUMERS:
        password = SENTINELS[f"postgres{db.capitalize()}Password"]
        assert secret_data(rendering, f"postgres-{db}") == {
            "username": db,
            "password": password,
            "database": db,
            "host": "postgres.mlops.svc.cluster.local",
            "port": "5432",
            "url": f"postgresql://{db}:{password}@postgres.mlops.svc.cluster.local:5432/{db}"
            "?sslmode=disable",
        }


def test_database_url_escapes_the_password() -> None:
    rendering = evaluate({}, {**SENTINELS, "postgresMlflowPassword": "p@ss/w:rd#1234"})
    assert secret_data(rendering, "postgres-mlflow")["url"].startswith(
        "postgresql://mlflow:p%40ss%2Fw%3Ard%231234@"
    )


def test_init_job_creates_every_consumer_database_after_the_server() -> None:
    rendering = evaluate({})
    job = rendering.find("Job", "postgres-init")
    container = job.manifest()["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert env["DATABASES"] == "feast flyte mlflow"
    for db in config.POSTGRES_CONSUMERS:
        assert env[f"PASSWORD_{db.upper()}"] == {
            "secretKeyRef": {"name": f"postgres-{db}", "key": "password"}
        }
    needs = {
        rendering.find(k, n).urn
        for k, n in [
            ("StatefulSet", "postgres"),
            ("Service", "postgres"),
            ("ConfigMap", "postgres-init"),
            ("Secret", "postgres-admin"),
            ("Secret", "postgres-mlflow"),
            ("Secret", "postgres-feast"),
        ]
    }
    assert needs <= set(job.depends_on)
    # A changed Job is replaced (Jobs are immutable) rather than failing to patch.
    assert job.delete_before_replace


def test_external_postgres_creates_no_server() -> None:
    rendering = evaluate(EXTERNAL)
    kinds = sorted(o["kind"] for o in component_objects(rendering, "postgres"))
    assert kinds == ["ConfigMap", "Job", "Secret", "Secret", "Secret", "Secret"]
    env = env_of(
        rendering.find("Job", "postgres-init").manifest()["spec"]["template"]["spec"]["containers"][
            0
        ]
    )
    assert (env["PGHOST"], env["PGPORT"], env["PGSSLMODE"]) == ("db.example.com", "6543", "require")
    assert rendering.outputs["postgres"]["host"] == "db.example.com"
    assert secret_data(rendering, "postgres-flyte")["url"].endswith(
        "@db.example.com:6543/flyte?sslmode=require"
    )


def test_disabled_postgres_leaves_no_object() -> None:
    secrets = {
        k: v for k, v in SENTINELS.items() if config.SECRET_KEYS[k] not in ("postgres", "mlflow")
    }
    rendering = evaluate(
        {
            "postgres": {"enabled": False},
            "mlflow": {"enabled": False},
            "flyte": {"enabled": False},
            "feast": {"enabled": False},
        },
        secrets,
    )
    assert component_objects(rendering, "postgres") == []
    assert not [r for r in rendering.resources if r.type == "mlops:components:Postgres"]
    assert "postgres" not in rendering.outputs


def test_outputs_keep_the_database_url_secret() -> None:
    outputs = evaluate({}).outputs["postgres"]
    assert outputs["databases"]["mlflow"] == {
        "name": "mlflow",
        "user": "mlflow",
        "secret": "postgres-mlflow",
        "url": "[redacted]",
    }
