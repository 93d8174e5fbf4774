"""The tables benchmarks/inference.py prints."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.feast_online import REDIS_DB
from benchmarks.load import Outcome
from benchmarks.serving_stacks import Stack

FLOOR = "floor"
NAN2 = (float("nan"), float("nan"))


@dataclass(frozen=True)
class Loaded:
    """One stack at one number of clients: the outcome, and of the transformer and the
    predictor the CPU seconds per request and the share of CFS periods throttled."""

    outcome: Outcome
    cpu: tuple[float, ...] = NAN2
    throttled: tuple[float, ...] = NAN2


def quantiles(times: Any) -> tuple[float, float]:
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99)


def print_report(
    stacks: list[Stack],
    single: dict[int, dict[str, np.ndarray]],
    loaded: dict[tuple[str, int], Loaded],
    memory: dict[str, tuple[float, float]],
    prepared: float,
    args: Any,
    events: int,
) -> None:
    print(machine())
    print(
        f"data: seed {args.seed}, {args.customers} customers, {args.merchants} merchants, "
        f"{args.days} days, {events} transactions; Redis db {REDIS_DB}; "
        f"setup (data, apply, materialize, training frame, fit) {prepared:.0f} s"
    )
    print(f"calibration: sum(range(10**6)) takes {calibration():.1f} ms here (median of 20)")
    trees = dict.fromkeys(s.label for s in stacks)
    print("trees: " + "; ".join(trees))
    print()
    single_table(single, args.requests)
    print()
    load_table(stacks, loaded, args)
    print()
    log_table(stacks, single, loaded)
    print()
    print("Peak resident memory, MiB (the transformer with its log writer; the predictor):")
    for stack in stacks:
        transformer, predictor = memory[stack.name]
        print(f"  {stack.name:34} {transformer / 2**20:8.0f} {predictor / 2**20:8.0f}")
    print("latency in milliseconds")


def single_table(single: dict[int, dict[str, np.ndarray]], requests: int) -> None:
    sizes = sorted(single)
    print(f"One client, one request at a time: {requests} timed requests per row and batch size,")
    print("every row taking its turn on each batch. floor = feast (read, fill) + model in process.")
    head = f"{'':34}" + "".join(f" | {'batch ' + str(n):>26}" for n in sizes)
    print(head)
    print(f"{'':34}" + "".join(f" | {'p50':>8} {'p99':>8} {'x floor':>8}" for _ in sizes))
    for name in single[sizes[0]]:
        cells = []
        for size in sizes:
            p50, p99 = quantiles(single[size][name])
            floor = quantiles(single[size][FLOOR])[1]
            cells.append(f" | {p50:8.2f} {p99:8.2f} {p99 / floor:7.2f}x")
        print(f"{name:34}" + "".join(cells))


def load_table(stacks: list[Stack], loaded: dict[tuple[str, int], Loaded], args: Any) -> None:
    floor_outcome = loaded[FLOOR, 1].outcome
    floor = floor_outcome.quantiles()[1]
    levels = sorted({clients for name, clients in loaded if name != FLOOR})
    limited = any(s.cgroups != (None, None) for s in stacks)
    print(
        f"Closed loop, one transaction per request: N clients, no think time, {args.rounds} rounds"
    )
    print(
        "of turns, the floor's (in process, one client) first in each. x floor: p99 over the"
        " floor's; x 1 client: over the same stack's with one client; cpu: ms per request"
        + ("; throttled: share of 100 ms periods." if limited else ".")
    )
    print(
        f"{'stack':34} {'clients':>7} {'req/s':>7} {'p50':>8} {'p99':>8} {'x floor':>8} "
        f"{'req/s x1':>9} {'p99 x1':>7} {'errors':>6} {'timeouts':>8} "
        f"{'cpu transformer':>15} {'predictor':>9}"
        + (f" {'throttled transformer':>21} {'predictor':>9}" if limited else "")
    )
    p50, p99 = floor_outcome.quantiles()
    print(
        f"{FLOOR:34} {1:7d} {floor_outcome.requests_per_second:7.1f} {p50:8.2f} {p99:8.2f} "
        f"{1:7.2f}x"
    )
    for stack in stacks:
        one = loaded[stack.name, levels[0]].outcome
        for clients in levels:
            result = loaded[stack.name, clients]
            outcome, cpu = result.outcome, result.cpu
            p50, p99 = outcome.quantiles()
            rps = outcome.requests_per_second
            print(
                f"{stack.name:34} {clients:7d} {rps:7.1f} {p50:8.2f} {p99:8.2f} "
                f"{p99 / floor:7.2f}x {rps / one.requests_per_second:8.2f}x "
                f"{p99 / one.quantiles()[1]:6.2f}x {outcome.errors:6d} {outcome.timeouts:8d} "
                f"{cpu[0] * 1e3:15.2f} {cpu[1] * 1e3:9.2f}"
                + (f" {result.throttled[0]:20.1%} {result.throttled[1]:9.1%}" if limited else "")
            )
            if outcome.first_error:
                print(f"{'':34} first error: {outcome.first_error}")


def log_table(
    stacks: list[Stack],
    single: dict[int, dict[str, np.ndarray]],
    loaded: dict[tuple[str, int], Loaded],
) -> None:
    logged = [s for s in stacks if s.logged]
    if not logged:
        return
    levels = sorted({clients for name, clients in loaded if name != FLOOR})
    print("Prediction log: the logging transformer over the one without, same tree.")
    heads = [f"batch {n} p99" for n in sorted(single)] + [f"{n} clients p99" for n in levels]
    print(f"{'tree':34}" + "".join(f" {h:>16}" for h in heads))
    for stack in logged:
        plain = next(s for s in stacks if s.label == stack.label and not s.logged)
        cells = [
            quantiles(single[n][stack.name])[1] / quantiles(single[n][plain.name])[1]
            for n in sorted(single)
        ]
        cells += [
            loaded[stack.name, n].outcome.quantiles()[1]
            / loaded[plain.name, n].outcome.quantiles()[1]
            for n in levels
        ]
        print(f"{stack.label:34}" + "".join(f" {c:15.2f}x" for c in cells))


def calibration() -> float:
    """A fixed CPU-bound loop, so numbers from a slower or busier machine can be compared."""
    times = []
    for _ in range(20):
        started = time.perf_counter()
        sum(range(10**6))
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def machine() -> str:
    load = os.getloadavg()
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
