"""Online feature retrieval latency of `fraud_model_v1`: Feast SDK, feature server, raw Redis.

    .venv/bin/python benchmarks/feast_online.py [--customers 2000 --merchants 200 --days 30]
        [--batch 1,10,100 --requests 300 --seed 7]

Generates the reference feature repo's data, applies and materializes a temporary copy of
the repo into the local test Redis (./scripts/services.sh), then times, per batch size, the
same seeded entity batches three ways:

  sdk   FeatureStore.get_online_features(features=<fraud_model_v1>, entity_rows=...)
        .to_dict(), in this process (the feature service object is looked up once);
  http  POST /get-online-features to `feast serve` (one worker, no --metrics) on loopback,
        over one persistent connection, response body parsed as JSON;
  raw   the HMGET pipeline Feast's Redis online store issues for those rows (one HMGET per
        distinct customer and merchant, same keys and hash fields), with redis-py and no
        deserialization: the reply bytes are not parsed. It is the floor the other two
        add Feast's work (and HTTP) on top of.

The benchmark owns Redis logical database 3: the copy's feature_store.yaml gets `,db=3`,
and db 3 is flushed before and after the run. Database 0 (the tests') is never touched.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import mmh3
import numpy as np
import redis
from feast import FeatureStore
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workloads.feature_repo.datagen import fraud_events

ROOT = Path(__file__).resolve().parent.parent
REPO = ROOT / "workloads" / "feature_repo"
VENV_BIN = Path(sys.executable).parent
SERVICE = "fraud_model_v1"
PROJECT = "fraud"
# The benchmark's own Redis logical database; the tests use (and flush) database 0.
REDIS_DB = 3
WARMUP = 20
# Feature views of the service, their join key and features, in the registry's order.
VIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "customer_stats": (
        "customer_id",
        (
            "txn_count_1h",
            "txn_count_24h",
            "txn_count_7d",
            "amount_sum_1h",
            "amount_sum_24h",
            "amount_sum_7d",
            "amount_mean_7d",
        ),
    ),
    "merchant_stats": (
        "merchant_id",
        ("merchant_txn_count_24h", "merchant_txn_count_7d", "merchant_amount_mean_7d"),
    ),
}
STRING_TYPE, INT64_TYPE = 2, 4  # feast.value_type.ValueType.STRING, .INT64

Row = dict[str, Any]


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    password: str

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password, db=REDIS_DB)


def redis_server() -> RedisServer:
    """The local test Redis, from the environment or `./scripts/services.sh env`."""
    env = dict(os.environ)
    if "MLOPS_TEST_REDIS_HOST" not in env:
        script = ROOT / "scripts" / "services.sh"
        out = subprocess.run([str(script), "env"], capture_output=True, text=True, check=True)
        for line in out.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env.setdefault(name, value)
    return RedisServer(
        host=env["MLOPS_TEST_REDIS_HOST"],
        port=int(env["MLOPS_TEST_REDIS_PORT"]),
        password=Path(env["MLOPS_TEST_REDIS_PASSWORD_FILE"]).read_text().strip(),
    )


# --- the data and the store -------------------------------------------------------------


def prepare_repo(work: Path, dataset: fraud_events.Dataset) -> Path:
    """A copy of the feature repo with the data written into it and its online store
    pointed at database REDIS_DB."""
    repo = work / "feature_repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    fraud_events.write_files(dataset, repo / "data")
    config = repo / "feature_store.yaml"
    lines = config.read_text().splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if line.strip().startswith("connection_string:")]
    if len(found) != 1 or "db=" in lines[found[0]]:
        raise SystemExit(f"expected one connection_string without db= in {REPO}/{config.name}")
    line = lines[found[0]].rstrip()
    quote = '"' if line.endswith('"') else ""
    lines[found[0]] = f"{line.removesuffix(quote)},db={REDIS_DB}{quote}\n"
    config.write_text("".join(lines))
    return repo


def feast_env(repo: Path, server: RedisServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEAST_")}
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        PYTHONWARNINGS="ignore",
        FEAST_FS_YAML_FILE_PATH=str(repo / "feature_store.yaml"),
        FEAST_REDIS_HOST=server.host,
        FEAST_REDIS_PORT=str(server.port),
        FEAST_REDIS_PASSWORD=server.password,
    )
    return env


def feast_cli(repo: Path, env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "feast"), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"feast {' '.join(args)} failed:\n{result.stderr[-4000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def feature_server(repo: Path, env: dict[str, str], log_path: Path) -> Iterator[int]:
    """`feast serve` as the Deployment runs it, on loopback and without --metrics; worker
    recycling is off (`--max-requests=0`) so no restart lands inside a measurement."""
    port = free_port()
    command = [
        str(VENV_BIN / "feast"),
        f"--chdir={repo}",
        "serve",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        "--no-access-log",
        "--max-requests=0",
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    url = f"http://127.0.0.1:{port}/health"
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError):
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"feast serve did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the three read paths ---------------------------------------------------------------


def entity_batches(
    dataset: fraud_events.Dataset, size: int, count: int, rng: np.random.Generator
) -> list[list[Row]]:
    """Request rows for entities that have online values: distinct customers within a
    batch (when there are enough), merchants drawn with repeats, as real traffic has."""
    customers = dataset.customer_stats["customer_id"].unique()
    merchants = dataset.merchant_stats["merchant_id"].unique()
    batches = []
    for _ in range(count):
        picked = rng.choice(customers, size=size, replace=size > len(customers))
        shops = rng.choice(merchants, size=size)
        amounts = rng.uniform(5, 500, size=size).round(2)
        batches.append(
            [
                {"customer_id": int(c), "merchant_id": int(m), "amount": float(a)}
                for c, m, a in zip(picked, shops, amounts, strict=True)
            ]
        )
    return batches


def redis_key(join_key: str, value: int) -> bytes:
    """Feast's Redis key for a single int64 entity (entity_key_serialization_version 3):
    serialize_entity_key(...) + project name."""
    name = join_key.encode()
    return (
        struct.pack("<III", 1, STRING_TYPE, len(name))
        + name
        + struct.pack("<IIq", INT64_TYPE, 8, value)
        + PROJECT.encode()
    )


def hash_fields(view: str, features: Sequence[str]) -> list[bytes]:
    """The hash fields Feast reads: murmur3_32 of "view:feature" (4 bytes, little endian)
    per feature, then the view's event timestamp field "_ts:view"."""
    fields = [struct.pack("<I", mmh3.hash(f"{view}:{name}", signed=False)) for name in features]
    return [*fields, f"_ts:{view}".encode()]


FIELDS = {view: hash_fields(view, features) for view, (_, features) in VIEWS.items()}


def raw_read(client: redis.Redis, rows: list[Row]) -> list[list[bytes | None]]:
    """One pipeline, one HMGET per distinct entity of each view, as Feast issues it."""
    with client.pipeline(transaction=False) as pipe:
        for view, (join_key, _) in VIEWS.items():
            for value in dict.fromkeys(row[join_key] for row in rows):
                pipe.hmget(redis_key(join_key, value), FIELDS[view])
        replies: list[list[bytes | None]] = pipe.execute()
    return replies


def http_read(connection: http.client.HTTPConnection, rows: list[Row]) -> dict[str, Any]:
    body = {
        "feature_service": SERVICE,
        "entities": {k: [r[k] for r in rows] for k in ("customer_id", "merchant_id", "amount")},
    }
    connection.request(
        "POST",
        "/get-online-features",
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {payload[:500]!r}")
    result: dict[str, Any] = json.loads(payload)
    return result


def check_paths(
    fs: FeatureStore,
    service: Any,
    client: redis.Redis,
    connection: http.client.HTTPConnection,
    rows: list[Row],
) -> None:
    """Once: the keys and fields built here are Feast's, the raw read finds every field of
    every key, and all three paths agree on the values."""
    for view, (join_key, features) in VIEWS.items():
        key = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=1234)])
        assert redis_key(join_key, 1234) == _redis_key(PROJECT, key, 3), view
        assert FIELDS[view][:-1] == [_mmh3(f"{view}:{name}") for name in features], view
    replies = raw_read(client, rows)
    empty = sum(value is None for reply in replies for value in reply)
    if empty:
        raise SystemExit(f"raw read: {empty} empty hash fields in {len(replies)} keys")
    sdk = fs.get_online_features(features=service, entity_rows=rows).to_dict()
    payload = http_read(connection, rows)
    names = payload["metadata"]["feature_names"]
    served = {n: r["values"] for n, r in zip(names, payload["results"], strict=True)}
    # The first reply is the first row's customer: parse its values as Feast would.
    first = {}
    for name, value in zip(VIEWS["customer_stats"][1], replies[0], strict=False):
        proto = ValueProto()
        proto.ParseFromString(value or b"")
        first[name] = getattr(proto, str(proto.WhichOneof("val")))
    for name, value in first.items():
        assert sdk[name][0] == served[name][0] == value, (name, sdk[name][0], served[name][0])
    assert None not in sdk["amount_to_mean_7d"], "the on-demand feature is missing"


def timed(call: Callable[[list[Row]], object], batches: list[list[Row]]) -> np.ndarray:
    """Milliseconds per call, after WARMUP untimed calls."""
    for rows in batches[:WARMUP]:
        call(rows)
    out = np.empty(len(batches) - WARMUP)
    for i, rows in enumerate(batches[WARMUP:]):
        started = time.perf_counter_ns()
        call(rows)
        out[i] = (time.perf_counter_ns() - started) / 1e6
    return out


# --- report -----------------------------------------------------------------------------


def machine_info(client: redis.Redis) -> list[str]:
    info = client.info("server")
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        model = names[0].split(":", 1)[1].strip() if names else ""
    return [
        f"cpus: {cpus} ({usable} usable){f', {model}' if model else ''}",
        f"platform: {platform.platform()}",
        f"python: {platform.python_version()} ({platform.python_implementation()})",
        f"feast: {importlib.metadata.version('feast')}, redis-py: {redis.__version__}",
        f"redis server: {info['redis_version']} (db {REDIS_DB}, loopback TCP)",
    ]


def table(results: list[tuple[int, float, dict[str, np.ndarray]]], entities: int) -> list[str]:
    head = (
        f"{'entities':>8} {'batch':>5} {'keys':>5} | {'sdk p50':>7} {'p99':>7} | "
        f"{'http p50':>8} {'p99':>7} | {'raw p50':>7} {'p99':>7} | "
        f"{'sdk/raw p50':>11} {'p99':>5} | {'http/raw p50':>12} {'p99':>5}"
    )
    lines = [head, "-" * len(head)]
    for batch, keys, ms in results:
        p = {path: np.percentile(values, [50, 99]) for path, values in ms.items()}
        sdk, web, raw = p["sdk"], p["http"], p["raw"]
        lines.append(
            f"{entities:>8} {batch:>5} {keys:>5.1f} | {sdk[0]:>7.2f} {sdk[1]:>7.2f} | "
            f"{web[0]:>8.2f} {web[1]:>7.2f} | {raw[0]:>7.3f} {raw[1]:>7.3f} | "
            f"{sdk[0] / raw[0]:>10.1f}x {sdk[1] / raw[1]:>4.1f}x | "
            f"{web[0] / raw[0]:>11.1f}x {web[1] / raw[1]:>4.1f}x"
        )
    return lines


# --- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", default="1,10,100", help="rows per request, comma separated")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per batch size")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(b) for b in args.batch.split(",")]
    if min(sizes) < 1 or args.requests < 1:
        parser.error("batch sizes and --requests must be at least 1")

    server = redis_server()
    client = server.client()
    try:
        client.ping()
    except redis.ConnectionError as e:
        raise SystemExit(
            f"no Redis at {server.host}:{server.port} ({e}); run ./scripts/services.sh start"
        ) from e
    started = time.perf_counter()
    dataset = fraud_events.generate(
        args.seed, fraud_events.Sizes(args.customers, args.merchants, args.days)
    )
    work = Path(tempfile.mkdtemp(prefix="feast-online-bench-"))
    client.flushdb()  # database REDIS_DB only
    try:
        repo = prepare_repo(work, dataset)
        env = feast_env(repo, server)
        feast_cli(repo, env, "apply")
        events = dataset.transactions["event_timestamp"]
        start = (events.min() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
        end = (events.max() + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
        feast_cli(repo, env, "materialize", start, end)
        entities = int(client.dbsize())
        expected = (
            dataset.customer_stats["customer_id"].nunique()
            + dataset.merchant_stats["merchant_id"].nunique()
        )
        if entities != expected:
            raise SystemExit(f"db {REDIS_DB} holds {entities} keys, expected {expected}")
        setup = time.perf_counter() - started

        # Feast expands ${FEAST_...} in the config from this process's environment.
        os.environ.update({k: v for k, v in env.items() if k.startswith("FEAST_")})
        fs = FeatureStore(repo_path=str(repo), fs_yaml_file=repo / "feature_store.yaml")
        if not fs.config.online_store.connection_string.endswith(f",db={REDIS_DB}"):
            raise SystemExit(f"the SDK's online store is not Redis db {REDIS_DB}")
        service = fs.get_feature_service(SERVICE)
        rng = np.random.default_rng(args.seed)
        results = []
        with feature_server(repo, env, work / "server.log") as port:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            check_paths(fs, service, client, connection, entity_batches(dataset, 50, 1, rng)[0])
            paths: dict[str, Callable[[list[Row]], object]] = {
                "sdk": lambda rows: fs.get_online_features(
                    features=service, entity_rows=rows
                ).to_dict(),
                "http": lambda rows: http_read(connection, rows),
                "raw": lambda rows: raw_read(client, rows),
            }
            for size in sizes:
                batches = entity_batches(dataset, size, WARMUP + args.requests, rng)
                keys = np.mean(
                    [
                        len({r["customer_id"] for r in b}) + len({r["merchant_id"] for r in b})
                        for b in batches
                    ]
                )
                ms = {name: timed(call, batches) for name, call in paths.items()}
                results.append((size, float(keys), ms))
            connection.close()
    finally:
        client.flushdb()  # database REDIS_DB only
        shutil.rmtree(work, ignore_errors=True)

    print(f"Feast online retrieval of feature service {SERVICE!r}")
    for line in machine_info(client):
        print(f"  {line}")
    notes = [
        f"data: seed {args.seed}, {args.customers} customers, {args.merchants} merchants, "
        f"{args.days} days: {len(dataset.transactions)} transactions,",
        f"  {entities} entity keys in Redis db {REDIS_DB}; setup (generate, apply, "
        f"materialize) {setup:.1f} s",
        f"{args.requests} timed requests per path and batch size, after {WARMUP} warm-up ones;",
        "  the same seeded batches on every path; paths run one after the other",
        "sdk:  FeatureStore.get_online_features(...).to_dict(), in this process",
        "http: feast serve, 1 worker, WITHOUT --metrics, --max-requests=0 (no worker",
        "      recycling), one persistent connection, response JSON parsed",
        "raw:  the same HMGET pipeline with redis-py (keys built per request); reply bytes",
        "      NOT deserialized (no ValueProto parsing)",
        "keys: HMGETs per request, mean (distinct customers + distinct merchants)",
    ]
    for line in notes:
        print(f"  {line}")
    print("\nlatency per request, milliseconds; ratios of the p50s and of the p99s:\n")
    for line in table(results, entities):
        print(line)


if __name__ == "__main__":
    main()
