"""The offline renderer: files, redaction, determinism, and clean errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra import config
from mlops import render
from tests.support.rendering import stack_rendering

ROOT = Path(__file__).resolve().parents[2]


def run_render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops", "render", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_writes_one_file_per_object_and_the_outputs(tmp_path: Path) -> None:
    result = run_render("dev", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml"))
    assert "_cluster/namespace-mlops.yaml" in files
    assert "mlops/statefulset-postgres.yaml" in files
    assert "outputs.yaml" in files
    rendering = stack_rendering("dev")
    assert len(files) == len(rendering.objects()) + len(rendering.charts()) + 1
    assert "charts/kserve-resources.yaml" in files
    secret = yaml.safe_load((tmp_path / "mlops/secret-redis.yaml").read_text())
    assert set(secret["stringData"].values()) == {render.REDACTED}
    assert f"rendered stack dev: {len(files)} files" in result.stderr


def test_render_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    render.write(render.render_stack("staging"), first)
    render.write(render.render_stack("staging"), second)
    for path in first.rglob("*.yaml"):
        assert path.read_text() == (second / path.relative_to(first)).read_text(), path


def test_numbers_are_written_as_integers(tmp_path: Path) -> None:
    render.write(render.render_stack("dev"), tmp_path)
    text = (tmp_path / "mlops/service-postgres.yaml").read_text()
    assert "port: 5432\n" in text and "5432.0" not in text


def test_unknown_stack_is_a_clean_error(tmp_path: Path) -> None:
    result = run_render("qa", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "known stacks: ci, dev, kind, prod, staging" in result.stderr


def test_bad_stack_config_is_a_clean_error(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.bad.yaml").write_text("config:\n  mlops-platform:profile: huge\n")
    with pytest.raises(config.ConfigError) as refused:
        render.render_stack("bad", stacks)
    assert str(refused.value) == (
        "invalid stack config:\n"
        "  mlops-platform:profile = 'huge': must be one of small, standard, ha"
    )


def test_helm_releases_render_as_chart_records() -> None:
    release = render.Resource(
        type=render.HELM_RELEASE,
        name="kserve",
        urn="urn",
        parent="",
        protect=False,
        delete_before_replace=False,
        depends_on=[],
        inputs={
            "name": "kserve",
            "namespace": "kserve",
            "chart": "kserve-crd",
            "version": "v0.20.0",
            "repositoryOpts": {"repo": "oci://example/charts"},
            "values": {"replicas": 1.0},
        },
    )
    assert not release.is_kubernetes_object
    assert release.chart_record() == {
        "name": "kserve",
        "namespace": "kserve",
        "chart": "kserve-crd",
        "repository": "oci://example/charts",
        "version": "v0.20.0",
        "values": {"replicas": 1},
    }
