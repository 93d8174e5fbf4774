"""`pyflyte package`: the workflows serialize for registration with the workload image, so a
broken registration fails here rather than on a cluster."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from infra import versions

ROOT = Path(__file__).resolve().parents[2]


def _package(package: str, out: Path) -> tuple[list[str], bytes]:
    """`pyflyte package` of a package: the archive's file names and its files' bytes."""
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "pyflyte"),
            "--pkgs",
            package,
            "package",
            "--image",
            versions.WORKLOADS_IMAGE,
            "--output",
            str(out),
            "--force",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    with tarfile.open(out) as archive:
        names = archive.getnames()
        blobs = b"".join(
            archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isfile()
        )
    return names, blobs


def test_training_workflow_and_weekly_plan_serialize_with_the_workload_image(
    tmp_path: Path,
) -> None:
    names, blobs = _package("workloads.training", tmp_path / "flyte-package.tgz")
    assert any(n.endswith("workloads.training.workflow.training_2.pb") for n in names), names
    assert any("training_weekly" in n for n in names), names
    assert versions.WORKLOADS_IMAGE.encode() in blobs
    assert b"0 3 * * 1" in blobs


def test_drift_check_and_hourly_plan_serialize_with_the_workload_image(tmp_path: Path) -> None:
    names, blobs = _package("workloads.monitoring", tmp_path / "flyte-package.tgz")
    assert any(n.endswith("workloads.monitoring.workflow.drift_check_2.pb") for n in names), names
    assert any("drift_hourly" in n for n in names), names
    assert versions.WORKLOADS_IMAGE.encode() in blobs
    assert b"0 * * * *" in blobs
