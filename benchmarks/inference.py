"""Inference through the served fraud model, against its floor: what a caller waits for, one
request at a time and under concurrent clients, beside the same work done in one process.

    eval "$(./scripts/services.sh env)"
    .venv/bin/python benchmarks/inference.py [--compare REF_OR_DIR ...] [--clients 1,8,32]
        [--requests 300 --rounds 5 --customers 1000 --merchants 100 --days 35 --seed 7]

Needs the local Redis, Postgres and S3 server (./scripts/services.sh) and .venv-serving
(./scripts/setup.sh --serving). Setup, once: the seeded reference data; a copy of the feature
repo applied to a SQL registry in a database of its own (`mlops_bench_inference`, as the
platform's registry is SQL) and materialized into Redis database 3; the model trained as the
training task trains it and saved as MLflow saves it. Then every code tree is deployed on
loopback as it renders itself (benchmarks/serving_stacks.py): the working tree, and each
`--compare` git ref or directory, so one run times the before and the after on the same
machine. Every tree also runs a second transformer that logs every prediction to the
local S3 server (bucket `predictions-bench`, flushed as deployed: every 1,000 rows or 30 s).

1. One client, one request at a time, for 1 and 100 transactions per request: every stack
   and the floor take turns on each seeded batch, so the machine's busy moments fall on all.
   The floor is the same work in this process: Feast's online read of the feature service,
   the missing values filled, and predict_proba of the same model on the same rows; `feast`
   and `model` are its two halves.
2. Closed loop, one transaction per request: N clients (--clients), each with one keep-alive
   connection, sending its next request as soon as the answer arrives (no think time);
   `--rounds` rounds in which the stacks take turns. Requests per second, p50 and p99, errors
   and timeouts (10 s), and the CPU each request cost the transformer (with its log writer)
   and the predictor.
Latency in milliseconds; `x floor` is a figure over the floor's of the same batch size.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

# As the predictor runs (infra/components/kserve.py): one OpenMP thread, set before sklearn loads.
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.feast_online import (
    REDIS_DB,
    WARMUP,
    Row,
    entity_batches,
    feast_cli,
    feast_env,
    prepare_repo,
    redis_server,
)
from benchmarks.inference_report import FLOOR, Loaded, print_report
from benchmarks.load import Outcome, closed_loop
from benchmarks.serving_stacks import ROOT, Stack, Tree, checkout, deployed
from tests.support.servers import local_postgres, local_s3
from workloads.feature_repo.datagen import fraud_events
from workloads.model_inputs import FEATURE_SERVICE, model_frame, model_inputs
from workloads.training import data, model

BATCHES = (1, 100)
LOG_BUCKET = "predictions-bench"
REGISTRY_DATABASE = "mlops_bench_inference"
TIMEOUT_SECONDS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", action="append", default=[], metavar="REF_OR_DIR")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--merchants", type=int, default=100)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--predictor-pod",
        action="store_true",
        help="also deploy the working tree with its predictor in a network namespace of its own"
        " (a pod reached over a veth pair, as without collocation; needs root)",
    )
    parser.add_argument(
        "--cpu-limits",
        action="store_true",
        help="run each transformer and predictor under its container's CPU limit, as a CFS"
        " quota, and report the share of 100 ms periods throttled (needs root)",
    )
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    started = time.monotonic()
    redis = redis_server()
    redis.client().flushdb()
    registry_url = registry_database()
    dataset = fraud_events.generate(
        args.seed, fraud_events.Sizes(args.customers, args.merchants, args.days)
    )
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as running:
        work = Path(tmp)
        trees = [checkout(spec, work) for spec in args.compare] + [Tree("working tree", ROOT)]
        env, model_dir = prepare_model(work, dataset, redis, registry_url, args.seed)
        prepared = time.monotonic() - started
        stacks: list[Stack] = []
        for i, tree in enumerate(trees):
            log_env = prediction_log_env(f"{tree.path.name}-{i}")
            stacks += running.enter_context(
                deployed(
                    tree, work, model_dir, env, log_env, redis, REDIS_DB, limit_cpu=args.cpu_limits
                )
            )
        if args.predictor_pod:
            stacks += running.enter_context(
                deployed(
                    trees[-1],
                    work,
                    model_dir,
                    env,
                    None,
                    redis,
                    REDIS_DB,
                    predictor_pod=1,
                    limit_cpu=args.cpu_limits,
                )
            )
        working = next(s for s in stacks if s.label == trees[-1].label and not s.logged)
        floor = Floor(working.store_config, model_dir)
        rng = np.random.default_rng(args.seed)
        single = {
            size: timed_alternately(
                {**floor.calls(), **{s.name: poster(s) for s in stacks}},
                entity_batches(dataset, size, args.requests + WARMUP, rng),
            )
            for size in BATCHES
        }
        bodies = [
            json.dumps({"instances": rows}).encode()
            for rows in entity_batches(dataset, 1, 2_000, rng)
        ]
        loaded = asyncio.run(under_load(stacks, floor, bodies, levels, args.rounds))
        memory = {stack.name: stack.peak_memory() for stack in stacks}
    redis.client().flushdb()
    local_postgres().query(f"DROP DATABASE IF EXISTS {REGISTRY_DATABASE} WITH (FORCE)")
    print_report(stacks, single, loaded, memory, prepared, args, len(dataset.transactions))


def registry_database() -> str:
    """A fresh database for the feature registry; its SQLAlchemy URL (psycopg 3)."""
    pg = local_postgres()
    pg.query(f"DROP DATABASE IF EXISTS {REGISTRY_DATABASE} WITH (FORCE)")
    pg.query(f"CREATE DATABASE {REGISTRY_DATABASE}")
    return (
        f"postgresql+psycopg://{pg.user}:{quote(pg.password, safe='')}@{pg.host}:{pg.port}"
        f"/{REGISTRY_DATABASE}"
    )


def prepare_model(
    work: Path, dataset: Any, redis: Any, registry_url: str, seed: int
) -> tuple[dict[str, str], Path]:
    """The store prepared (prepare_store) and the model trained on it as the training task
    trains it, saved as MLflow saves it; the servers' environment and the model's folder."""
    env = prepare_store(work, dataset, redis, registry_url)
    store = data.feature_store()
    end = fraud_events.END
    frame = data.labelled_features(store, end - timedelta(days=28), end - timedelta(days=7))
    fitted = model.train(frame, model.HyperParameters(seed=seed))
    model_dir = work / "mnt-models"
    save(fitted, frame, model_dir)
    return env, model_dir


def prepare_store(work: Path, dataset: Any, redis: Any, registry_url: str) -> dict[str, str]:
    """The feature repo's copy applied to the SQL registry and materialized into Redis; the
    Feast variables of this process set, and the environment the servers get returned."""
    repo = prepare_repo(work, dataset)
    config_path = repo / "feature_store.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["registry"] = {
        "registry_type": "sql",
        "path": "${FEAST_REGISTRY_URL}",
        "cache_ttl_seconds": 60,
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        **feast_env(repo, redis),
        "FEAST_REPO_PATH": str(repo),
        "HOME": str(work),
        "FEAST_REGISTRY_URL": registry_url,
    }
    events = dataset.transactions["event_timestamp"]
    feast_cli(repo, env, "apply")
    feast_cli(
        repo,
        env,
        "materialize",
        (events.min() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        (events.max() + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S"),
    )
    os.environ.update({k: v for k, v in env.items() if k.startswith("FEAST_")})
    return {k: v for k, v in env.items() if k != "FEAST_FS_YAML_FILE_PATH"}


def prediction_log_env(prefix: str = "log") -> dict[str, str]:
    """A logging transformer's settings: a prefix of the local S3 server's bucket."""
    import boto3

    s3 = local_s3()
    credentials = {
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name="us-east-1",
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if LOG_BUCKET not in existing:
        client.create_bucket(Bucket=LOG_BUCKET)
    return {**credentials, "MLOPS_PREDICTION_LOG_URI": f"s3://{LOG_BUCKET}/{prefix}"}


def save(fitted: Any, frame: Any, model_dir: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    filled = model_frame(frame)
    mlflow.sklearn.save_model(
        fitted,
        str(model_dir),
        signature=infer_signature(filled, fitted.predict_proba(filled)),
        pyfunc_predict_fn="predict_proba",
        pip_requirements=model.requirements(),
        skops_trusted_types=model.TRUSTED_TYPES,
    )


class Floor:
    """The served path's work in this process: the online read, the fill, the model."""

    def __init__(self, store_config: Path, model_dir: Path) -> None:
        import mlflow.sklearn
        from feast import FeatureStore

        self.store = FeatureStore(
            repo_path=os.environ["FEAST_REPO_PATH"], fs_yaml_file=store_config
        )
        self.service = self.store.get_feature_service(FEATURE_SERVICE)
        self.estimator = mlflow.sklearn.load_model(str(model_dir))
        self.inputs: dict[int, np.ndarray] = {}

    def features(self, rows: list[Row]) -> np.ndarray:
        response = self.store.get_online_features(features=self.service, entity_rows=rows)
        return model_inputs(response.to_dict())

    def score(self, rows: list[Row]) -> object:
        return self.estimator.predict_proba(self.features(rows))

    def calls(self) -> dict[str, Callable[[list[Row]], object]]:
        def feast(rows: list[Row]) -> None:
            self.inputs[id(rows)] = self.features(rows)

        return {
            FLOOR: self.score,
            "  feast": feast,
            "  model": lambda rows: self.estimator.predict_proba(self.inputs[id(rows)]),
        }


def poster(stack: Stack) -> Callable[[list[Row]], object]:
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=TIMEOUT_SECONDS)
    path = stack.path

    def post(rows: list[Row]) -> object:
        """One request over a persistent connection, reopened if the server closed it
        while idle (uvicorn's keep-alive timeout, between sections)."""
        payload = json.dumps({"instances": rows})
        headers = {"Content-Type": "application/json"}
        try:
            connection.request("POST", path, payload, headers)
            response = connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            connection.close()
            connection.request("POST", path, payload, headers)
            response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"{stack.name} answered {response.status}: {body[:300]!r}")
        return json.loads(body)

    return post


def timed_alternately(
    calls: dict[str, Callable[[list[Row]], object]], batches: list[list[Row]]
) -> dict[str, np.ndarray]:
    """Milliseconds per call of each, after WARMUP untimed rounds, the calls taking turns on
    each batch: a busy moment of the machine falls on all of them alike."""
    for rows in batches[:WARMUP]:
        for call in calls.values():
            call(rows)
    out = {name: np.empty(len(batches) - WARMUP) for name in calls}
    for i, rows in enumerate(batches[WARMUP:]):
        for name, call in calls.items():
            started = time.perf_counter_ns()
            call(rows)
            out[name][i] = (time.perf_counter_ns() - started) / 1e6
    return out


async def under_load(
    stacks: list[Stack], floor: Floor, bodies: list[bytes], levels: list[int], rounds: int
) -> dict[tuple[str, int], Loaded]:
    """Per stack and number of clients, over all rounds: the closed loop's outcome, the CPU
    seconds per request and the share of CFS periods throttled (under --cpu-limits) of the
    transformer and the predictor. The floor takes its turn in every round, one client, back
    to back: (FLOOR, 1)."""
    results: dict[tuple[str, int], Loaded] = {}
    rows = [json.loads(body)["instances"] for body in bodies]
    floor_outcome = Outcome()
    for clients in levels:
        per_turn = max(50, 25 * clients)
        total = {s.name: Outcome() for s in stacks}
        cpu = {s.name: np.zeros(2) for s in stacks}
        periods = {s.name: np.zeros(4) for s in stacks}
        for stack in stacks:
            await closed_loop("127.0.0.1", stack.port, stack.path, bodies, clients, WARMUP)
        for round_ in range(rounds):
            started = time.perf_counter()
            for i in range(50):
                call_started = time.perf_counter()
                floor.score(rows[(round_ * 50 + i) % len(rows)])
                floor_outcome.latencies.append((time.perf_counter() - call_started) * 1e3)
            floor_outcome.seconds += time.perf_counter() - started
            for stack in stacks:
                before, throttled = np.array(stack.cpu_seconds()), np.array(stack.throttled())
                outcome = await closed_loop(
                    "127.0.0.1", stack.port, stack.path, bodies, clients, per_turn, TIMEOUT_SECONDS
                )
                cpu[stack.name] += np.array(stack.cpu_seconds()) - before
                periods[stack.name] += np.array(stack.throttled()) - throttled
                merged = total[stack.name]
                merged.latencies += outcome.latencies
                merged.errors += outcome.errors
                merged.timeouts += outcome.timeouts
                merged.seconds += outcome.seconds
                merged.first_error = merged.first_error or outcome.first_error
        for stack in stacks:
            served = max(1, len(total[stack.name].latencies))
            run, throttled = periods[stack.name][[0, 2]], periods[stack.name][[1, 3]]
            results[stack.name, clients] = Loaded(
                total[stack.name],
                tuple(cpu[stack.name] / served),
                tuple(np.divide(throttled, run, out=np.full(2, np.nan), where=run > 0)),
            )
    results[FLOOR, 1] = Loaded(floor_outcome)
    return results


if __name__ == "__main__":
    main()
