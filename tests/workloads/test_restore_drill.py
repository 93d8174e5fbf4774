"""The restore drill: the platform's data backed up with the rendered backup Jobs' commands and
restored, with the rendered restore Jobs' commands, into a fresh Postgres and Redis.

1. On the golden path's platform (MLflow on Postgres, Feast applied and materialized into
   Redis): MLflow runs and a registered model with an alias, and rows in Flyte's database
   (flyteadmin cannot run here, so the rows are written straight into its database).
2. backup-postgres and backup-redis: each dump script (the ConfigMap's, run by the dump init
   container's command) and then the upload container's command, env resolved to loopback.
3. A new Postgres and Redis on other ports: the postgres-init Job, then restore-postgres and
   restore-redis (fetch container, then the restore script).
4. An MLflow server on the restored database answers with the same runs and alias, Feast serves
   the same online values from the restored Redis, the Flyte rows are there.
Durations and sizes are printed (run with -s).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from infra.components import backup as backup_component
from mlops import render
from mlops.demo import data
from tests.support.golden import Stack
from tests.support.mlflow_server import VENV_BIN, mlflow_server
from tests.support.monitoring import running_pushgateway
from tests.support.rendering import secret_data
from tests.support.servers import LocalPostgres, LocalRedis, free_port, local_env, run_script_job
from tests.support.tools import require_module

mlflow = require_module("mlflow", "the workloads dependency group")
redis_client = require_module("redis", "the workloads dependency group")

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = os.environ.get("MLOPS_TEST_PG_BIN", "/usr/bin")
MODEL = "drill-model"
POSTGRES = "postgres.mlops.svc.cluster.local:5432"
REDIS = "redis.mlops.svc.cluster.local"


def _cron_pod(rendering: render.Rendering, name: str) -> dict[str, Any]:
    manifest = rendering.find("CronJob", name).manifest()
    return manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _run(command: list[str], env: Mapping[str, str], cwd: Path) -> str:
    done = subprocess.run(
        command, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def run_pod(
    rendering: render.Rendering,
    name: str,
    addresses: Mapping[str, str],
    work: Path,
    **overrides: str,
) -> str:
    """The rendered pod's init container, then its container: scripts from the ConfigMap, env
    resolved to loopback, /backup a local folder, the workloads image's python from .venv."""
    pod = _cron_pod(rendering, name)
    scripts = work / "scripts"
    scripts.mkdir(exist_ok=True)
    for file, text in rendering.find("ConfigMap", backup_component.SCRIPTS).inputs["data"].items():
        (scripts / file).write_text(text)
    out = ""
    for container in [*pod["initContainers"], *pod["containers"]]:
        env = {
            **local_env(rendering, container, addresses),
            "HOME": str(work),
            "PATH": f"{PG_BIN}:{VENV_BIN}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            **overrides,
        }
        command = [
            str(scripts / a.rsplit("/", 1)[1]) if a.startswith("/scripts/") else a
            for a in container["command"]
        ]
        out += _run(command, env, ROOT)
    return out


@contextlib.contextmanager
def fresh_postgres(original: LocalPostgres) -> Iterator[LocalPostgres]:
    """A new, empty server with the same admin password, on another port, in a folder of its
    own under /tmp (the server's user cannot enter pytest's root-only folders)."""
    work = Path(tempfile.mkdtemp(prefix="mlops-restore-drill-"))
    data, port = work / "data", free_port()
    data.mkdir()
    password = work / "password"
    password.write_text(original.password)
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        for path in (work, data, password):
            shutil.chown(path, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    os.chmod(data, 0o700)
    initdb = [
        *as_postgres,
        str(original.bin / "initdb"),
        f"--pgdata={data}",
        "--username=postgres",
        "--auth=scram-sha-256",
        f"--pwfile={password}",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
    ]
    subprocess.run(initdb, check=True, capture_output=True, timeout=120)
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={work}"
    ctl = [*as_postgres, str(original.bin / "pg_ctl"), f"--pgdata={data}"]
    start = [*ctl, "start", "--wait", f"--log={work / 'server.log'}", f"--options={options}"]
    subprocess.run(start, check=True, capture_output=True, timeout=120)
    try:
        yield LocalPostgres("127.0.0.1", port, "postgres", original.password, original.bin)
    finally:
        subprocess.run([*ctl, "stop", "--mode=fast"], capture_output=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def platform_redis(rendering: render.Rendering, data: Path, password: str) -> Iterator[LocalRedis]:
    """redis-server with the platform's rendered config, its dir, port and auth file local."""
    port = free_port()
    conf = rendering.find("ConfigMap", "redis-config").inputs["data"]["redis.conf"]
    auth = data.parent / "auth.conf"
    auth.write_text(f"requirepass {password}\n")
    conf = (
        conf.replace("dir /data", f"dir {data}")
        .replace("port 6379", f"port {port}")
        .replace("bind * -::*", "bind 127.0.0.1")
        .replace("/run/redis/auth.conf", str(auth))
    )
    (data.parent / "redis.conf").write_text(conf)
    process = subprocess.Popen(
        ["redis-server", str(data.parent / "redis.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis_client.Redis(host="127.0.0.1", port=port, password=password)
    try:
        for _ in range(100):
            with contextlib.suppress(
                redis_client.exceptions.ConnectionError, redis_client.exceptions.BusyLoadingError
            ):
                if client.ping():
                    break
            time.sleep(0.1)
        yield LocalRedis("127.0.0.1", port, password)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _seed(stack: Stack) -> dict[str, Any]:
    """MLflow runs and a registered model with an alias; Flyte rows; what each holds."""
    client = stack.client()
    experiment = client.create_experiment(f"drill-{time.time_ns()}")
    runs = []
    for i in range(3):
        run = client.create_run(experiment)
        client.log_param(run.info.run_id, "i", str(i))
        client.log_metric(run.info.run_id, "score", 0.5 + i / 10)
        client.set_terminated(run.info.run_id)
        runs.append(run.info.run_id)
    with contextlib.suppress(Exception):
        client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, f"runs:/{runs[-1]}/model", runs[-1])
    client.set_registered_model_alias(MODEL, "champion", version.version)
    flyte = _flyte_sql(
        stack.pg,
        stack.rendering,
        """
        CREATE TABLE IF NOT EXISTS drill_executions (name text PRIMARY KEY, phase text);
        TRUNCATE drill_executions;
        INSERT INTO drill_executions VALUES ('exec-a', 'SUCCEEDED'), ('exec-b', 'FAILED');
        SELECT string_agg(name || ':' || phase, ',' ORDER BY name) FROM drill_executions;""",
    )
    return {"experiment": experiment, "runs": runs, "version": version.version, "flyte": flyte}


def _flyte_sql(pg: LocalPostgres, rendering: render.Rendering, sql: str) -> str:
    password = secret_data(rendering, "postgres-flyte")["password"]
    done = pg.psql(sql, user="flyte", password=password, database="flyte")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _online(feast_env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from workloads.training.data import feature_store

    for key, value in feast_env.items():
        monkeypatch.setenv(key, value)
    store = feature_store()
    picked = data.seeded().transactions.sample(40, random_state=data.SEED)
    rows = [
        {"customer_id": int(c), "merchant_id": int(m), "amount": float(a)}
        for c, m, a in zip(
            picked["customer_id"], picked["merchant_id"], picked["amount"], strict=True
        )
    ]
    return store.get_online_features(  # type: ignore[no-any-return]
        features=store.get_feature_service("fraud_model_v1"), entity_rows=rows
    ).to_dict()


def _sizes(folder: Path) -> tuple[int, int]:
    """Bytes of the dumps, and of what was uploaded (encrypted)."""
    plain = sum(p.stat().st_size for p in folder.glob("*.dump")) + sum(
        p.stat().st_size for p in folder.glob("*.rdb")
    )
    return plain, sum(p.stat().st_size for p in folder.glob("*.enc"))


def test_backup_and_restore_into_fresh_servers(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendering = stack.rendering
    seeded = _seed(stack)
    online = _online(stack.feast_env, monkeypatch)
    assert any(v is not None for v in online["txn_count_7d"]), "nothing materialized to compare"
    s3 = {"http://seaweedfs.mlops.svc.cluster.local:8333": stack.s3.endpoint}
    prefix = f"drill-{time.time_ns()}"
    source = {POSTGRES: f"{stack.pg.host}:{stack.pg.port}", **s3}

    timings: dict[str, float] = {}
    with running_pushgateway(tmp_path / "pushgateway") as gateway:
        for store, extra in (
            ("postgres", {"PGHOST": stack.pg.host, "PGPORT": str(stack.pg.port)}),
            (
                "redis",
                {
                    "REDIS_HOST": stack.redis.host,
                    "REDIS_PORT": str(stack.redis.port),
                    "REDISCLI_AUTH": stack.redis.password,
                },
            ),
        ):
            dumps = tmp_path / f"backup-{store}"
            dumps.mkdir()
            started = time.monotonic()
            out = run_pod(
                rendering,
                f"backup-{store}",
                {**source},
                tmp_path,
                BACKUP_DIR=str(dumps),
                BACKUP_PREFIX=prefix,
                MLOPS_PUSHGATEWAY_URL=gateway,
                **extra,
            )
            timings[f"backup {store}"] = time.monotonic() - started
            print(out)
            timings[f"{store} dump bytes"], timings[f"{store} uploaded bytes"] = _sizes(dumps)
        pushed = subprocess.run(
            ["curl", "-fsS", f"{gateway}/metrics"], capture_output=True, text=True, check=True
        ).stdout
    for database in ("mlflow", "flyte", "feast"):
        assert (
            f'mlops_backup_failed{{database="{database}",instance="",job="mlops_backup",'
            f'store="postgres"}} 0'
        ) in pushed
    assert 'mlops_backup_last_success_timestamp_seconds{database="rdb"' in pushed

    with fresh_postgres(stack.pg) as pg:
        init = run_script_job(
            rendering,
            "postgres-init",
            tmp_path,
            {},
            str(pg.bin),
            PGHOST=pg.host,
            PGPORT=str(pg.port),
        )
        assert init.returncode == 0, init.stderr
        target = {POSTGRES: f"{pg.host}:{pg.port}", **s3}
        started = time.monotonic()
        print(
            run_pod(
                rendering,
                "restore-postgres",
                target,
                tmp_path,
                BACKUP_DIR=str(tmp_path / "restore-postgres"),
                BACKUP_PREFIX=prefix,
                PGHOST=pg.host,
                PGPORT=str(pg.port),
            )
        )
        timings["restore postgres"] = time.monotonic() - started
        redis_data = tmp_path / "fresh-redis" / "data"
        redis_data.mkdir(parents=True)
        started = time.monotonic()
        print(
            run_pod(
                rendering,
                "restore-redis",
                s3,
                tmp_path,
                BACKUP_DIR=str(tmp_path / "restore-redis"),
                BACKUP_PREFIX=prefix,
                REDIS_DATA=str(redis_data),
                RESTORE_PORT=str(free_port()),
            )
        )
        timings["restore redis"] = time.monotonic() - started

        assert (
            _flyte_sql(
                pg,
                rendering,
                "SELECT string_agg(name || ':' || phase, ',' ORDER BY name) FROM drill_executions",
            )
            == seeded["flyte"]
        )
        addresses = {POSTGRES: f"{pg.host}:{pg.port}", **s3}
        with mlflow_server(rendering, addresses, tmp_path / "mlflow") as url:
            client = mlflow.MlflowClient(url)
            found = client.search_runs([seeded["experiment"]])
            assert sorted(r.info.run_id for r in found) == sorted(seeded["runs"])
            assert {r.data.metrics["score"] for r in found} == {0.5, 0.6, 0.7}
            alias = client.get_model_version_by_alias(MODEL, "champion")
            assert alias.version == seeded["version"]
        with platform_redis(rendering, redis_data, stack.redis.password) as redis:
            from tests.support.feast_store import platform_store

            env = platform_store(rendering, pg, redis, tmp_path / "etc-feast-restored")
            assert _online(env, monkeypatch) == online

    print("\nrestore drill")
    for what, value in timings.items():
        unit = "" if "bytes" in what else " s"
        print(f"  {what:<22} {value:>12.1f}{unit}" if unit else f"  {what:<22} {value:>12.0f}")


def test_retention_deletes_old_backups_but_keeps_the_newest(tmp_path: Path) -> None:
    """Against the local S3 server: 10 daily backups, 3 days' retention, keep the newest 2; and
    with every backup old, the newest 2 still stay."""
    from datetime import UTC, datetime, timedelta

    from tests.support.servers import local_s3
    from workloads.backup import archive

    s3 = local_s3()
    env = {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "BACKUP_BUCKET": "backups",
        "BACKUP_PREFIX": f"retention-{time.time_ns()}",
    }
    target = archive.Target.from_env(env)
    with contextlib.suppress(Exception):
        target.client.create_bucket(Bucket="backups")
    dump = tmp_path / "mlflow.dump"
    dump.write_bytes(b"dump")
    now = datetime(2026, 11, 30, 2, tzinfo=UTC)
    stamps = [archive.timestamp(now - timedelta(days=d)) for d in range(10)]
    for stamp in stamps:
        target.upload(dump, "postgres", "mlflow", stamp, secret="k")
    deleted = target.prune("postgres", "mlflow", now, retention_days=3, keep_last=2)
    assert len(deleted) == 6
    assert [s for s, _ in target.backups("postgres", "mlflow")] == sorted(stamps[:4])
    target.prune("postgres", "mlflow", now + timedelta(days=30), retention_days=3, keep_last=2)
    assert [s for s, _ in target.backups("postgres", "mlflow")] == sorted(stamps[:2])
    assert target.choose("postgres", "mlflow", "latest")[0] == stamps[0]
    with pytest.raises(LookupError, match="no backup 20200101T000000Z"):
        target.choose("postgres", "mlflow", "20200101T000000Z")
    back = tmp_path / "back.dump"
    target.download(target.choose("postgres", "mlflow", stamps[1])[1], back, "k")
    assert back.read_bytes() == b"dump"
