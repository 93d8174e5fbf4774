"""Inference latency of the served fraud model: transformer and predictor over HTTP, beside
the predictor alone, the model in process and the Feast lookup alone.

    .venv/bin/python benchmarks/inference.py [--customers 1000 --merchants 100 --days 35]
        [--requests 300 --seed 7]

Needs the local test Redis and S3 server (./scripts/services.sh) and .venv-serving
(./scripts/setup.sh --serving). It generates the reference data, applies and materializes a
copy of the feature repo into Redis database 3 (as benchmarks/feast_online.py does), trains the
model as the training task does (workloads.training), saves it as MLflow writes it, and starts
the predictor (the platform's ServingRuntime, infra/components/kserve.py, in .venv-serving) and
the transformer (the InferenceService's container) as processes on loopback, twice: without
the prediction log, and logging every scored instance to the local S3 server (bucket
`predictions-bench`; flushed every 1,000 rows or 30 s, as deployed). Per batch size (1 and 100
transactions), the same seeded batches are timed these ways:

  served     POST /v1/models/<name>:predict to the transformer: features, then predictor
  logged     the same, to the transformer that also logs each prediction (the two take turns
             on each batch, so the machine's busy moments fall on both)
  predictor  POST /v2/models/<name>/infer to MLServer, with the features already fetched
  feast      FeatureStore.get_online_features(...) of the feature service, in process
  model      predict_proba of the same model, in process, on the same feature rows
and reports p50/p99 in milliseconds, the ratio of served to the model in process, and of
logged to served.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

# As the predictor runs (infra/components/kserve.py): one OpenMP thread, set before sklearn loads.
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.feast_online import (
    REDIS_DB,
    WARMUP,
    Row,
    entity_batches,
    feast_cli,
    feast_env,
    free_port,
    prepare_repo,
    redis_server,
    timed,
)
from infra import versions
from infra.components import kserve
from tests.support.kserve import predictor_command, transformer_command
from tests.support.servers import local_s3, running_server
from workloads.feature_repo.datagen import fraud_events
from workloads.model_inputs import FEATURE_SERVICE, FEATURES, MODEL_NAME, model_frame
from workloads.serving.inference_service import inference_service
from workloads.training import data, model

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVING_BIN = ROOT / ".venv-serving" / "bin"
BATCHES = (1, 100)
LOG_BUCKET = "predictions-bench"


def post(connection: http.client.HTTPConnection, path: str, body: Any) -> Any:
    """One request over a persistent connection; a connection the server closed while idle
    (uvicorn's keep-alive timeout, between paths) is reopened, inside the warm-up."""
    payload = json.dumps(body)
    headers = {"Content-Type": "application/json"}
    try:
        connection.request("POST", path, payload, headers)
        response = connection.getresponse()
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
        connection.close()
        connection.request("POST", path, payload, headers)
        response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}: {payload[:300]!r}")
    return json.loads(payload)


def v2_request(frame: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()}
            for c in FEATURES
        ]
    }


def quantiles(times: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--merchants", type=int, default=100)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.monotonic()
    log_env = prediction_log_env()
    server = redis_server()
    server.client().flushdb()
    dataset = fraud_events.generate(
        args.seed, fraud_events.Sizes(args.customers, args.merchants, args.days)
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = prepare_repo(work, dataset)
        env = {**feast_env(repo, server), "FEAST_REPO_PATH": str(repo), "HOME": str(work)}
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
        store = data.feature_store()
        end = fraud_events.END
        frame = data.labelled_features(store, end - timedelta(days=28), end - timedelta(days=7))
        fitted = model.train(frame, model.HyperParameters(seed=args.seed))
        model_dir = work / "mnt-models"
        save(fitted, frame, model_dir)
        prepared = time.monotonic() - started

        runtime = kserve.mlflow_runtime("models", versions.SERVING_IMAGE)
        isvc = inference_service(MODEL_NAME, "1", "s3://unused")
        ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
        command, predictor_env = predictor_command(runtime, isvc, model_dir, ports, SERVING_BIN)
        (work / "predictor").mkdir()
        (work / "transformer").mkdir()
        ready = f"http://127.0.0.1:{ports['http']}/v2/models/{MODEL_NAME}/ready"
        penv = {**os.environ, **predictor_env, "HOME": str(work)}
        with running_server(command, ready, work / "predictor", penv, timeout=180):
            port = free_port()
            command, tenv = transformer_command(
                isvc, f"127.0.0.1:{ports['http']}", port, VENV_BIN / "python"
            )
            url = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}"
            # The store config is the copy's, where the pod would mount /etc/feast.
            tenv = {**tenv, **env, "PYTHONPATH": str(ROOT)}
            logged_port = free_port()
            logged_command, _ = transformer_command(
                isvc, f"127.0.0.1:{ports['http']}", logged_port, VENV_BIN / "python"
            )
            logged_url = f"http://127.0.0.1:{logged_port}/v1/models/{MODEL_NAME}"
            (work / "logged").mkdir()
            with (
                running_server(command, url, work / "transformer", tenv),
                running_server(logged_command, logged_url, work / "logged", {**tenv, **log_env}),
            ):
                rows = measure(store, fitted, ports["http"], (port, logged_port), dataset, args)
    server.client().flushdb()
    report(rows, prepared, args, len(dataset.transactions))


def prediction_log_env() -> dict[str, str]:
    """The logging transformer's settings: the local S3 server's bucket for the benchmark."""
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
    return {**credentials, "MLOPS_PREDICTION_LOG_URI": f"s3://{LOG_BUCKET}/log"}


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


def measure(
    store: Any,
    fitted: Any,
    predictor_port: int,
    transformer_ports: tuple[int, int],
    dataset: Any,
    args: Any,
) -> list[tuple[int, dict[str, np.ndarray]]]:
    service = store.get_feature_service(FEATURE_SERVICE)
    served = http.client.HTTPConnection("127.0.0.1", transformer_ports[0])
    logged = http.client.HTTPConnection("127.0.0.1", transformer_ports[1])
    predictor = http.client.HTTPConnection("127.0.0.1", predictor_port)
    rng = np.random.default_rng(args.seed)
    results = []
    for size in BATCHES:
        batches = entity_batches(dataset, size, args.requests + 20, rng)

        def features(rows: list[Row]) -> Any:
            return model_frame(
                store.get_online_features(features=service, entity_rows=rows).to_dict()
            )

        frames = {id(rows): features(rows) for rows in batches}
        results.append(
            (
                size,
                {
                    **timed_alternately(
                        {
                            name: lambda rows, c=connection: post(
                                c, f"/v1/models/{MODEL_NAME}:predict", {"instances": rows}
                            )
                            for name, connection in (("served", served), ("logged", logged))
                        },
                        batches,
                    ),
                    "predictor": timed(
                        lambda rows, known=frames: post(
                            predictor,
                            f"/v2/models/{MODEL_NAME}/infer",
                            v2_request(known[id(rows)]),
                        ),
                        batches,
                    ),
                    "feast": timed(features, batches),
                    "model": timed(
                        lambda rows, known=frames: fitted.predict_proba(known[id(rows)]),
                        batches,
                    ),
                },
            )
        )
    return results


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


def calibration() -> float:
    """A fixed CPU-bound loop, so numbers from a slower or busier machine can be compared."""
    times = []
    for _ in range(20):
        started = time.perf_counter()
        sum(range(10**6))
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def report(
    rows: list[tuple[int, dict[str, np.ndarray]]], prepared: float, args: Any, events: int
) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"data: seed {args.seed}, {args.customers} customers, {args.merchants} merchants, "
        f"{args.days} days, {events} transactions; Redis db {REDIS_DB}; "
        f"{args.requests} timed requests per path after warm-up"
    )
    print(f"setup (data, apply, materialize, training frame, fit): {prepared:.1f} s")
    print(f"calibration: sum(range(10**6)) takes {calibration():.1f} ms here (median of 20)")
    names = ("served", "logged", "predictor", "feast", "model")
    print(
        "batch | "
        + " | ".join(f"{n:>9} p50     p99" for n in names)
        + " | served/model p50   p99 | logged/served p50   p99"
    )
    for size, times in rows:
        cells = dict(zip(names, (quantiles(times[n]) for n in names), strict=True))
        served, logged, in_process = cells["served"], cells["logged"], cells["model"]
        print(
            f"{size:5d} | "
            + " | ".join(f"{p50:13.2f} {p99:7.2f}" for p50, p99 in cells.values())
            + f" | {served[0] / in_process[0]:12.1f}x {served[1] / in_process[1]:4.1f}x"
            + f" | {logged[0] / served[0]:13.2f}x {logged[1] / served[1]:5.2f}x"
        )
    print("latency in milliseconds")


if __name__ == "__main__":
    main()
