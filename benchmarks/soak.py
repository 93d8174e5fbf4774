"""The served fraud model held at a fixed request rate for minutes: errors, latency per window,
resident memory at the start and the end, and the prediction log's count of what it wrote.

    eval "$(./scripts/services.sh env)"
    .venv/bin/python benchmarks/soak.py [--rate 100 --seconds 300 --window 30 --seed 7]
        [--without-log]

Needs what benchmarks/inference.py needs (the local Redis, Postgres and S3 server, and
.venv-serving), and sets up the same way: the seeded data applied to a SQL registry and
materialized into Redis, the model trained and saved as training saves it, and this tree's
predictor and logging transformer deployed on loopback as they render themselves.

Open loop: request i is due at start + i / rate whatever happened to the ones before it, and
its latency counts from when it was due, so a server that falls behind shows it in the
figures instead of slowing the load (up to --connections requests in flight; one due while
all are busy waits for one and is counted late). The run is bounded: rate x seconds
requests, one transaction each. Resident memory (VmRSS, with the transformer's log writer) is
read after a warm-up of one window and again at the end; the transformer's /metrics give the
prediction-log records written and dropped, after its last flush.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.feast_online import REDIS_DB, entity_batches, redis_server
from benchmarks.host import resident_memory
from benchmarks.inference import (
    REGISTRY_DATABASE,
    prediction_log_env,
    prepare_model,
    registry_database,
)
from benchmarks.load import Connection, request_bytes
from benchmarks.serving_stacks import ROOT, Stack, Tree, deployed
from tests.support.servers import local_postgres
from workloads.feature_repo.datagen import fraud_events

TIMEOUT_SECONDS = 10.0
OK_REQUESTS = "transformer_request_duration_seconds_count{"


@dataclass
class Window:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    late: int = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests a second")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--without-log", action="store_true", help="load the transformer that logs nothing"
    )
    args = parser.parse_args()
    redis = redis_server()
    redis.client().flushdb()
    registry_url = registry_database()
    dataset = fraud_events.generate(args.seed, fraud_events.Sizes(1000, 100, 35))
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as running:
        work = Path(tmp)
        env, model_dir = prepare_model(work, dataset, redis, registry_url, args.seed)
        stacks = running.enter_context(
            deployed(
                Tree("working tree", ROOT),
                work,
                model_dir,
                env,
                prediction_log_env("soak"),
                redis,
                REDIS_DB,
            )
        )
        stack = next(s for s in stacks if s.logged != args.without_log)
        rng = np.random.default_rng(args.seed)
        bodies = [
            json.dumps({"instances": rows}).encode()
            for rows in entity_batches(dataset, 1, 5_000, rng)
        ]
        windows, memory = asyncio.run(soak(stack, bodies, args))
        logged = {} if args.without_log else log_counts(stack)
    redis.client().flushdb()
    local_postgres().query(f"DROP DATABASE IF EXISTS {REGISTRY_DATABASE} WITH (FORCE)")
    report(windows, memory, logged, args)


async def soak(
    stack: Stack, bodies: list[bytes], args: argparse.Namespace
) -> tuple[list[Window], list[tuple[float, float]]]:
    total = int(args.rate * args.seconds)
    count = int(np.ceil(args.seconds / args.window))
    windows = [Window() for _ in range(count)]
    prepared = [request_bytes("127.0.0.1", stack.port, stack.path, body) for body in bodies]
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(args.connections):
        idle.put_nowait(Connection("127.0.0.1", stack.port))
    memory: list[tuple[float, float]] = []
    start = time.perf_counter() + 0.5

    async def send(i: int, due: float, window: Window) -> None:
        connection = idle.get_nowait() if not idle.empty() else None
        if connection is None:
            window.late += 1
            connection = await idle.get()
        try:
            status, _ = await asyncio.wait_for(
                connection.exchange(prepared[i % len(prepared)]), TIMEOUT_SECONDS
            )
            if status == 200:
                window.latencies.append((time.perf_counter() - due) * 1e3)
            else:
                window.errors += 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            window.errors += 1
            connection.close()
        finally:
            idle.put_nowait(connection)

    # In flight only: a list of every finished task would grow the garbage collector's oldest
    # generation by the minute, and its full collections would pause this client, not the
    # servers. What setup left is frozen out of those collections too.
    tasks: set[asyncio.Task[None]] = set()
    gc.freeze()
    for i in range(total):
        due = start + i / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        index = min(int((due - start) / args.window), count - 1)
        if index == 1 and not memory:
            memory.append(resident(stack))
        task = asyncio.create_task(send(i, due, windows[index]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    memory.append(resident(stack))
    while not idle.empty():
        idle.get_nowait().close()
    return windows, memory


def resident(stack: Stack) -> tuple[float, float]:
    """Resident memory now, MiB, of the transformer with its writer, and of the predictor."""
    return resident_memory(stack.pids[0]) / 2**20, resident_memory(stack.pids[1]) / 2**20


def log_counts(stack: Stack, wait_seconds: float = 45.0) -> dict[str, float]:
    """The prediction log's counters from the transformer's /metrics, once a flush (every 30 s
    or 1,000 rows) has written what the run queued."""
    deadline = time.monotonic() + wait_seconds
    counts: dict[str, float] = {}
    while True:
        url = f"http://127.0.0.1:{stack.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        counts = {"written": 0.0, "dropped": 0.0, "queued": 0.0}
        for line in text.splitlines():
            if line.startswith("prediction_log_records_total"):
                counts["written"] += float(line.rsplit(" ", 1)[1])
            elif line.startswith("prediction_log_dropped_records_total"):
                counts["dropped"] += float(line.rsplit(" ", 1)[1])
            elif (
                line.startswith("transformer_request_duration_seconds_count{")
                and 'status="ok"' in line
            ):
                counts["queued"] += float(line.rsplit(" ", 1)[1])
        if counts["written"] + counts["dropped"] >= counts["queued"] or time.monotonic() > deadline:
            return counts
        time.sleep(2)


def report(
    windows: list[Window],
    memory: list[tuple[float, float]],
    logged: dict[str, float],
    args: argparse.Namespace,
) -> None:
    print(
        f"open loop: {args.rate:g} requests a second for {args.seconds:g} s, one transaction "
        f"each, up to {args.connections} in flight; latency in ms from when each was due"
    )
    print(f"{'window':>12} {'sent':>7} {'errors':>7} {'late':>6} {'p50':>8} {'p99':>8} {'max':>8}")
    for i, window in enumerate(windows):
        sent = len(window.latencies) + window.errors
        p50, p99, top = (
            np.percentile(window.latencies, [50, 99, 100]) if window.latencies else [np.nan] * 3
        )
        span = f"{i * args.window:g}-{(i + 1) * args.window:g} s"
        print(
            f"{span:>12} {sent:>7} {window.errors:>7} {window.late:>6}"
            f" {p50:>8.2f} {p99:>8.2f} {top:>8.2f}"
        )
    sent = sum(len(w.latencies) + w.errors for w in windows)
    errors = sum(w.errors for w in windows)
    print(f"{'all':>12} {sent:>7} {errors:>7} {sum(w.late for w in windows):>6}")
    (t0, p0), (t1, p1) = memory[0], memory[-1]
    print(
        f"resident memory, MiB: transformer with its log writer {t0:.0f} after the first window, "
        f"{t1:.0f} at the end ({t1 - t0:+.0f}); predictor {p0:.0f}, {p1:.0f} ({p1 - p0:+.0f})"
    )
    if not args.without_log:
        print(
            f"prediction log: {logged['queued']:.0f} scored, {logged['written']:.0f} records "
            f"written, {logged['dropped']:.0f} dropped"
        )


if __name__ == "__main__":
    main()
