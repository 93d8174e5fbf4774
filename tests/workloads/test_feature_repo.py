"""The reference feature repo, run for real: Feast against a real Redis and a real Postgres.

Two stores, the two a team meets: `local` is the repo's own feature_store.yaml (parquet files
offline, Redis online) and `platform` is the config the Feast component renders (SQL registry
and offline store in the feast Postgres database, Redis online), with only in-cluster
addresses swapped for loopback ones. The apply and materialize commands are the rendered
Job's and CronJob's. Expected feature values are computed here from the raw transactions,
independently of the generator's pandas windows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from infra.components import feast as feast_component
from mlops import render
from tests.support.feast_store import platform_store
from tests.support.rendering import SENTINELS, declared_metrics, evaluate, pod_container
from tests.support.servers import (
    LocalRedis,
    exposed_series,
    free_port,
    local_postgres,
    local_redis,
    run_script_job,
    running_server,
)
from tests.support.tools import require_module

feast = require_module("feast", "the workloads dependency group")
redis_client = require_module("redis", "the workloads dependency group")
from workloads.feature_repo.datagen import fraud_events  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "workloads" / "feature_repo"
VENV_BIN = Path(sys.executable).parent
SEED = 11
SIZES = fraud_events.Sizes(customers=150, merchants=30, days=21)
TTL = timedelta(days=7)
SERVICE = "fraud_model_v1"
CUSTOMER_FEATURES = [
    "txn_count_1h",
    "txn_count_24h",
    "txn_count_7d",
    "amount_sum_1h",
    "amount_sum_24h",
    "amount_sum_7d",
    "amount_mean_7d",
]
MERCHANT_FEATURES = ["merchant_txn_count_24h", "merchant_txn_count_7d", "merchant_amount_mean_7d"]


@dataclass
class Store:
    name: str
    repo: Path
    env: dict[str, str]
    dataset: fraud_events.Dataset
    redis: LocalRedis
    # The feature server's working directory: what the Deployment mounts at /etc/feast.
    server_dir: Path

    def feast(self, *args: str, command: list[str] | None = None) -> str:
        result = subprocess.run(
            command or [str(VENV_BIN / "feast"), *args],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
        return result.stdout

    def apply(self) -> None:
        """The rendered apply Job's command."""
        self.feast(command=pod_container(_rendering(), "Job", "feast-apply")["command"])

    def materialize_range(self) -> None:
        """Everything the data holds, from a day before its first event to just after its last."""
        events = self.dataset.transactions["event_timestamp"]
        self.feast(
            "materialize",
            (events.min() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            (events.max() + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        )

    def materialize_incremental(self) -> None:
        """The rendered CronJob's command."""
        cronjob = _rendering().find("CronJob", "feast-materialize").manifest()
        template = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        self.feast(command=template["containers"][0]["command"])

    def open(self) -> Any:
        """An SDK client; Feast expands the config's variables from the environment once,
        when it loads the file, so they are set only for that moment."""
        variables = {k: v for k, v in self.env.items() if k.startswith("FEAST_")}
        saved = {k: os.environ.get(k) for k in variables}
        os.environ.update(variables)
        try:
            return feast.FeatureStore(
                repo_path=str(self.repo), fs_yaml_file=Path(variables["FEAST_FS_YAML_FILE_PATH"])
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@cache
def _rendering() -> render.Rendering:
    """The default stack's render: the commands and args the Jobs, CronJob and server run."""
    return evaluate({})


def _copy_repo(work: Path) -> Path:
    repo = work / "feature_repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return repo


def _flush(redis: LocalRedis) -> None:
    redis_client.Redis(host=redis.host, port=redis.port, password=redis.password).flushdb()


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEAST_")}
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _local_store(work: Path, redis: LocalRedis) -> Store:
    repo = _copy_repo(work)
    dataset = fraud_events.generate(SEED, SIZES)
    fraud_events.write_files(dataset, repo / "data")
    env = {
        **_base_env(),
        "FEAST_FS_YAML_FILE_PATH": str(repo / "feature_store.yaml"),
        "FEAST_REDIS_HOST": redis.host,
        "FEAST_REDIS_PORT": str(redis.port),
        "FEAST_REDIS_PASSWORD": redis.password,
    }
    return Store("local", repo, env, dataset, redis, repo)


def _platform_store(work: Path, redis: LocalRedis) -> Store:
    """The rendered store config and Job env, after the rendered Postgres init Job ran."""
    pg = local_postgres()
    rendering = evaluate({}, {**SENTINELS, "postgresPassword": pg.password})
    pg.query("DROP DATABASE IF EXISTS feast WITH (FORCE)")
    init = run_script_job(
        rendering, "postgres-init", work, {}, str(pg.bin), PGHOST=pg.host, PGPORT=str(pg.port)
    )
    assert init.returncode == 0, init.stderr
    server_dir = work / "etc-feast"
    env = platform_store(rendering, pg, redis, server_dir)
    repo = _copy_repo(work)
    dataset = fraud_events.generate(SEED, SIZES)
    url = env["FEAST_REGISTRY_URL"].split("?")[0]
    fraud_events.load_postgres(dataset, url)
    return Store("platform", repo, {**_base_env(), **env}, dataset, redis, server_dir)


@pytest.fixture(scope="module", params=["local", "platform"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The repo applied and materialized: the rendered apply Job's command, then a full
    materialization of the data's range, then the rendered CronJob's incremental one."""
    redis = local_redis()
    _flush(redis)
    work = tmp_path_factory.mktemp(request.param)
    make = _local_store if request.param == "local" else _platform_store
    store = make(work, redis)
    store.apply()
    store.materialize_range()
    store.materialize_incremental()
    return store


def _redis_snapshot(redis: LocalRedis) -> dict[bytes, dict[bytes, bytes]]:
    client = redis_client.Redis(host=redis.host, port=redis.port, password=redis.password)
    return {key: client.hgetall(key) for key in sorted(client.scan_iter(count=1000))}


def _registry_snapshot(store: Store) -> list[bytes]:
    fs = store.open()
    objects = [
        *fs.list_entities(),
        *fs.list_feature_views(),
        *fs.list_on_demand_feature_views(),
        *fs.list_feature_services(),
        *fs.list_data_sources(),
    ]
    return sorted(
        _without_times(obj.to_proto()).SerializeToString(deterministic=True) for obj in objects
    )


def _without_times(message: Any) -> Any:
    """A registry proto minus its `meta` parts (creation and update times), at any depth:
    what `feast apply` is told, not when."""
    for field, value in message.ListFields():
        if field.name == "meta":
            message.ClearField("meta")
        elif field.message_type is not None:
            if hasattr(value, "ListFields"):
                items = [value]
            else:  # a repeated field, or a map (its values are the messages)
                items = list(value.values()) if hasattr(value, "values") else list(value)
            for item in items:
                if hasattr(item, "ListFields"):
                    _without_times(item)
    return message


def expected_features(
    events: pd.DataFrame, key: str, entity: int, at: pd.Timestamp, prefix: str = ""
) -> dict[str, Any]:
    """Feature values as of `at`, from the raw events: the entity's last transaction at or
    before `at` (none after it), within the TTL, and the windows ending at that transaction."""
    mine = events[events[key] == entity]
    times = mine["event_timestamp"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    amounts = mine["amount"].to_numpy()
    order = np.argsort(times)
    times, amounts = times[order], amounts[order]
    # The Postgres offline store hands back UTC times without a zone.
    at64 = (at if at.tzinfo is None else at.tz_convert(None)).to_datetime64()
    last = np.searchsorted(times, at64, side="right") - 1
    windows = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400}
    names = ("1h", "24h", "7d") if not prefix else ("24h", "7d")
    features: dict[str, Any] = {}
    valid = last >= 0 and (at64 - times[last]) <= np.timedelta64(int(TTL.total_seconds()), "s")
    for name in names:
        count = sum_ = None
        if valid:
            since = times[last] - np.timedelta64(windows[name], "s")
            inside = (times > since) & (times <= times[last])
            count, sum_ = int(inside.sum()), float(amounts[inside].sum())
        features[f"{prefix}txn_count_{name}"] = count
        if not prefix:
            features[f"amount_sum_{name}"] = sum_
        if name == "7d":
            features[f"{prefix}amount_mean_7d"] = None if count is None else sum_ / count  # type: ignore[operator]
    return features


def assert_close(actual: Mapping[str, Any], expected: Mapping[str, Any], where: str) -> None:
    for name, want in expected.items():
        got = actual[name]
        if want is None:
            assert got is None or (isinstance(got, float) and np.isnan(got)), (where, name, got)
        elif name.startswith(("txn_count", "merchant_txn_count")):
            assert int(got) == want, (where, name, got, want)
        else:
            assert got == pytest.approx(want, abs=0.011, rel=1e-3), (where, name, got, want)


def entity_rows(dataset: fraud_events.Dataset, n: int, seed: int) -> pd.DataFrame:
    """Lookups at telling moments: at a transaction, a second before it, between
    transactions, long after a customer's last one (past the TTL) and before any data."""
    rng = np.random.default_rng(seed)
    events = dataset.transactions
    picks = events.sample(n, random_state=seed)
    kinds = rng.integers(0, 5, size=n)
    offsets = {
        0: timedelta(0),
        1: timedelta(seconds=-1),
        2: timedelta(minutes=37),
        3: timedelta(days=9),
        4: timedelta(days=-40),
    }
    times = [t + offsets[int(k)] for t, k in zip(picks["event_timestamp"], kinds, strict=True)]
    return pd.DataFrame(
        {
            "customer_id": picks["customer_id"].to_numpy(),
            "merchant_id": picks["merchant_id"].to_numpy(),
            "amount": rng.uniform(5, 500, size=n).round(2),
            "event_timestamp": pd.to_datetime(times, utc=True),
        }
    )


def test_historical_features_are_point_in_time_correct(store: Store) -> None:
    fs = store.open()
    rows = entity_rows(store.dataset, 160, seed=3)
    result = fs.get_historical_features(
        entity_df=rows, features=fs.get_feature_service(SERVICE)
    ).to_df()
    assert len(result) == len(rows)
    events = store.dataset.transactions
    checked = 0
    for record in result.to_dict("records"):
        at = pd.Timestamp(record["event_timestamp"])
        where = f"{store.name} customer {record['customer_id']} at {at}"
        customer = expected_features(events, "customer_id", record["customer_id"], at)
        merchant = expected_features(events, "merchant_id", record["merchant_id"], at, "merchant_")
        assert_close(record, {**customer, **merchant}, where)
        # The on-demand feature's formula, on the mean the row was served with.
        mean = record["amount_mean_7d"]
        ratio = 1.0 if customer["amount_mean_7d"] is None else record["amount"] / mean
        assert record["amount_to_mean_7d"] == pytest.approx(ratio, rel=1e-12), where
        checked += 1
    assert checked == len(rows)
    # Both sides of the TTL and of "no data yet" were exercised.
    assert result["txn_count_7d"].isna().any() and result["txn_count_7d"].notna().sum() > 50


def test_a_transaction_never_sees_itself_a_second_before(store: Store) -> None:
    """A training row for a transaction reads features at t - 1 s: they must be what the
    events before t alone give, while at t the transaction's own amount is counted."""
    fs = store.open()
    events = store.dataset.transactions
    picks = events.sample(40, random_state=5)
    rows = pd.DataFrame(
        {
            "customer_id": np.tile(picks["customer_id"].to_numpy(), 2),
            "event_timestamp": pd.concat(
                [picks["event_timestamp"], picks["event_timestamp"] - timedelta(seconds=1)]
            ).reset_index(drop=True),
            "row": np.arange(80),
        }
    )
    result = (
        fs.get_historical_features(entity_df=rows, features=["customer_stats:amount_sum_1h"])
        .to_df()
        .sort_values("row")
        .to_dict("records")
    )
    for i, pick in enumerate(picks.to_dict("records")):
        at, before = result[i], result[i + 40]
        assert at["amount_sum_1h"] >= pick["amount"] - 1e-9
        earlier = events[events["event_timestamp"] < pick["event_timestamp"]]
        expected = expected_features(
            earlier, "customer_id", pick["customer_id"], before["event_timestamp"]
        )
        assert_close(before, {"amount_sum_1h": expected["amount_sum_1h"]}, str(pick))


def latest(events: pd.DataFrame, key: str, entity: int, prefix: str = "") -> dict[str, Any]:
    """The latest offline values: the windows ending at the entity's last transaction."""
    last = events.loc[events[key] == entity, "event_timestamp"].max()
    return expected_features(events, key, entity, last, prefix)


def online_sample(store: Store, n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(17)
    events = store.dataset.transactions
    customers = rng.choice(events["customer_id"].unique(), size=n, replace=False)
    merchants = rng.choice(events["merchant_id"].unique(), size=n)
    return [
        {"customer_id": int(c), "merchant_id": int(m), "amount": float(a)}
        for c, m, a in zip(customers, merchants, rng.uniform(5, 900, size=n).round(2), strict=True)
    ]


def check_online(store: Store, rows: list[dict[str, Any]], values: Mapping[str, list[Any]]) -> None:
    events = store.dataset.transactions
    for i, row in enumerate(rows):
        record = {name: column[i] for name, column in values.items()}
        where = f"{store.name} online customer {row['customer_id']}"
        customer = latest(events, "customer_id", row["customer_id"])
        merchant = latest(events, "merchant_id", row["merchant_id"], "merchant_")
        assert_close(record, {**customer, **merchant}, where)
        expected_ratio = row["amount"] / record["amount_mean_7d"]
        assert record["amount_to_mean_7d"] == pytest.approx(expected_ratio, rel=1e-12), where


def test_online_features_through_the_sdk_equal_the_latest_offline_values(store: Store) -> None:
    fs = store.open()
    rows = online_sample(store, 40)
    values = fs.get_online_features(
        features=fs.get_feature_service(SERVICE), entity_rows=rows
    ).to_dict()
    check_online(store, rows, values)
    # An unknown customer has no values, and the on-demand feature falls back to 1.0.
    unknown = fs.get_online_features(
        features=fs.get_feature_service(SERVICE),
        entity_rows=[{"customer_id": 1, "merchant_id": 1, "amount": 10.0}],
    ).to_dict()
    assert unknown["txn_count_7d"] == [None]
    assert unknown["amount_to_mean_7d"] == [1.0]


def test_the_rendered_feature_server_serves_the_same_values(store: Store, tmp_path: Path) -> None:
    """The Deployment's exact args, on loopback: HTTP values equal the offline ones, and the
    metrics endpoint counts the requests."""
    rendering = _rendering()
    server = pod_container(rendering, "Deployment", "feast")
    port = free_port()
    args = [
        a.replace("--host=0.0.0.0", "--host=127.0.0.1")
        .replace(f"--port={feast_component.PORT}", f"--port={port}")
        .replace(f"--chdir={feast_component.CONFIG_DIR}", f"--chdir={store.server_dir}")
        for a in server["args"]
    ]
    with running_server(
        [str(VENV_BIN / server["command"][0]), *args],
        f"http://127.0.0.1:{port}{feast_component.HEALTH_PATH}",
        tmp_path,
        env=store.env,
    ):
        rows = online_sample(store, 30)
        body = {
            "feature_service": SERVICE,
            "entities": {k: [r[k] for r in rows] for k in ("customer_id", "merchant_id", "amount")},
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/get-online-features",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.load(response)
        names = payload["metadata"]["feature_names"]
        values = {
            name: result["values"] for name, result in zip(names, payload["results"], strict=True)
        }
        check_online(store, rows, values)
        metrics_url = (
            f"http://127.0.0.1:{feast_component.METRICS_PORT}{feast_component.METRICS_PATH}"
        )
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            metrics = response.read().decode()
        # What Prometheus, the dashboards and the alerts expect the server to expose, it
        # exposes (freshness once its monitor has run against the registry).
        declared = declared_metrics(rendering, "feast")
        exposed = exposed_series(metrics)
        assert declared - {"feast_feature_freshness_seconds"} <= exposed, declared - exposed


def test_apply_and_materialize_again_change_nothing(store: Store) -> None:
    registry = _registry_snapshot(store)
    online = _redis_snapshot(store.redis)
    assert len(online) == SIZES.customers + SIZES.merchants - _missing_entities(store)
    store.apply()
    store.materialize_incremental()
    store.materialize_range()
    assert _registry_snapshot(store) == registry
    assert _redis_snapshot(store.redis) == online


def _missing_entities(store: Store) -> int:
    """Customers or merchants the generator gave no transaction at all."""
    events = store.dataset.transactions
    return (SIZES.customers - events["customer_id"].nunique()) + (
        SIZES.merchants - events["merchant_id"].nunique()
    )
