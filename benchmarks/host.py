"""What benchmarks/inference.py reads and changes on this machine (Linux): processes' CPU time
from /proc, CPU limits as cgroups with a CFS quota, and network namespaces joined by veth
pairs. The last two need root; every cgroup and namespace made here is removed on the way out.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The cpu controller's hierarchy: cgroup v1's, else the unified (v2) one.
CGROUPS = next(
    (
        p
        for p in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup"))
        if (p / "cgroup.procs").exists()
    ),
    Path("/sys/fs/cgroup"),
)
CGROUP_V2 = (CGROUPS / "cgroup.controllers").exists()


def family(root: int) -> set[int]:
    """A process and every process below it (/proc, Linux)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    members, frontier = {root}, [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        members.update(frontier)
    return members


def cpu_seconds(root: int) -> float:
    """CPU time so far of a process and of every process below it."""
    total = 0.0
    for pid in family(root):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def peak_memory(root: int) -> float:
    """The peak resident memory (VmHWM) of a process and the processes below it, summed:
    what their container's memory limit has to hold, in bytes."""
    return _memory(root, "VmHWM:")


def resident_memory(root: int) -> float:
    """The resident memory now (VmRSS) of a process and the processes below it, in bytes."""
    return _memory(root, "VmRSS:")


def _memory(root: int, field: str) -> float:
    total = 0.0
    for pid in family(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1]) * 1024
    return total


def cpus(quantity: str) -> float:
    """A Kubernetes CPU quantity in CPUs: "1" is 1.0, "500m" is 0.5."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@contextmanager
def cpu_limit(pid: int, limit: float, name: str) -> Iterator[Path]:
    """The process (and what it starts later) in a cgroup of its own with a CFS quota of
    `limit` CPUs per 100 ms period, as the kubelet applies a container's CPU limit."""
    group = CGROUPS / "mlops-bench" / name
    group.mkdir(parents=True)
    if CGROUP_V2:
        (group / "cpu.max").write_text(f"{int(limit * 100_000)} 100000")
    else:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(int(limit * 100_000)))
    (group / "cgroup.procs").write_text(str(pid))
    try:
        yield group
    finally:
        for member in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (CGROUPS / "cgroup.procs").write_text(member)
        group.rmdir()
        with contextlib.suppress(OSError):
            group.parent.rmdir()


def throttling(group: Path | None) -> tuple[int, int]:
    """CFS periods so far in which the group ran, and in which it was throttled."""
    if group is None:
        return 0, 0
    stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
    return int(stat["nr_periods"]), int(stat["nr_throttled"])


@contextmanager
def pod_network(index: int) -> Iterator[tuple[str, str]]:
    """A network namespace joined to this one by a veth pair, as a pod on the same node is
    reached over its CNI bridge (without a Service's NAT): its name and its address."""
    namespace, host, pod = f"mlops-bench-{index}", f"mlopsbh{index}", f"mlopsbp{index}"
    subnet = f"10.254.{index}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", namespace)
    try:
        ip("link", "add", host, "type", "veth", "peer", "name", pod)
        ip("link", "set", pod, "netns", namespace)
        ip("addr", "add", f"{subnet}.1/30", "dev", host)
        ip("link", "set", host, "up")
        for command in (
            ("addr", "add", f"{subnet}.2/30", "dev", pod),
            ("link", "set", pod, "up"),
            ("link", "set", "lo", "up"),
        ):
            ip("netns", "exec", namespace, "ip", *command)
        yield namespace, f"{subnet}.2"
    finally:
        # Deleting the namespace deletes the veth pair with it.
        subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
