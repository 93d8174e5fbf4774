"""Render time per stack, and the dev profile's total resource requests.

    .venv/bin/python benchmarks/render.py [--repeat 5]

Targets (DESIGN.md): program evaluation well under 5 s for any stack; the dev profile's
long-running pods request at most 2 CPU and 4 GiB in all.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.sizes import quantity  # noqa: E402
from mlops import render  # noqa: E402

STACKS = tuple(sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml")))
# GitHub-hosted ubuntu-24.04 runners: the standard one of public repositories, and of private.
RUNNERS = {"public repository runner": (4, 16), "private repository runner": (2, 7)}


def requests(rendering: render.Rendering, kinds: tuple[str, ...]) -> tuple[float, float]:
    """Total CPU (cores) and memory (bytes) requested by the pods of the given kinds."""
    total_cpu = total_memory = 0.0
    for obj in rendering.objects():
        if obj["kind"] not in kinds:
            continue
        spec: dict[str, Any] = obj["spec"]
        replicas = spec.get("replicas", 1)
        for container in spec["template"]["spec"]["containers"]:
            asked = container["resources"]["requests"]
            total_cpu += replicas * quantity(asked["cpu"])
            total_memory += replicas * quantity(asked["memory"])
    return total_cpu, total_memory


# Where the platform sets the requests of the charts' long-running pods.
CHART_REQUESTS = {
    "cert-manager": (("resources",), ("webhook", "resources"), ("cainjector", "resources")),
    "kserve-resources": (("kserve", "controller", "resources"),),
}


def chart_requests(rendering: render.Rendering) -> tuple[float, float]:
    """Total CPU and memory the platform asks for the Helm charts' long-running pods."""
    total_cpu = total_memory = 0.0
    for chart in rendering.charts():
        for path in CHART_REQUESTS.get(chart["name"], ()):
            node: Any = chart["values"]
            for key in path:
                node = node[key]
            total_cpu += quantity(node["requests"]["cpu"])
            total_memory += quantity(node["requests"]["memory"])
    return total_cpu, total_memory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    render.render_stack("dev")
    print(
        f"first render in a new process (imports included): {time.perf_counter() - started:.3f} s"
    )
    print(f"\nrender time per stack, {args.repeat} runs each (median, max):")
    for stack in STACKS:
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            rendering = render.render_stack(stack)
            times.append(time.perf_counter() - started)
        print(
            f"  {stack:8s} {statistics.median(times) * 1000:7.1f} ms  {max(times) * 1000:7.1f} ms"
            f"  ({len(rendering.objects())} objects)"
        )

    dev = render.render_stack("dev")
    serving_cpu, serving_memory = requests(dev, ("Deployment", "StatefulSet", "DaemonSet"))
    job_cpu, job_memory = requests(dev, ("Job",))
    charts_cpu, charts_memory = chart_requests(dev)
    total_cpu, total_memory = serving_cpu + charts_cpu, serving_memory + charts_memory
    print("\ndev profile resource requests:")
    print(f"  platform pods:     {serving_cpu:.3f} CPU, {serving_memory / 2**30:.3f} GiB")
    print(
        f"  KServe, cert-manager (as set in the charts' values): {charts_cpu:.3f} CPU, "
        f"{charts_memory / 2**30:.3f} GiB"
    )
    print(
        f"  long-running in all: {total_cpu:.3f} CPU, {total_memory / 2**30:.3f} GiB"
        "  (target: <= 2 CPU, <= 4 GiB)"
    )
    print(f"  one-off Jobs:      {job_cpu:.3f} CPU, {job_memory / 2**30:.3f} GiB")

    # The kind job's golden path adds, at its peak, the largest training task and the
    # InferenceService's predictor and transformer.
    from workloads.serving.inference_service import Target
    from workloads.training.workflow import LARGE

    target = Target()
    task_cpu, task_memory = quantity(LARGE.cpu), quantity(LARGE.mem)
    isvc_cpu = sum(
        quantity(r["requests"]["cpu"])
        for r in (target.predictor_resources, target.transformer_resources)
    )
    isvc_memory = sum(
        quantity(r["requests"]["memory"])
        for r in (target.predictor_resources, target.transformer_resources)
    )
    peak_cpu = total_cpu + task_cpu + isvc_cpu
    peak_memory = total_memory + task_memory + isvc_memory
    print(
        f"\nkind job peak (the stack, one training task, predictor and transformer): "
        f"{peak_cpu:.3f} CPU, {peak_memory / 2**30:.3f} GiB, beside kind's own pods"
    )
    for runner, (cpus, gib) in RUNNERS.items():
        print(
            f"  {runner} ({cpus} CPU, {gib} GiB): {peak_cpu / cpus:.0%} of its CPU, "
            f"{peak_memory / 2**30 / gib:.0%} of its memory"
        )


if __name__ == "__main__":
    main()
