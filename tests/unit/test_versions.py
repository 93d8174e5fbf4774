"""Pins that live in two places agree: the images of infra/versions.py and the tools the test
tiers build (tools/<tool>/go.mod), the Pulumi tools and the Python SDK (uv.lock)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from infra import versions

ROOT = Path(__file__).resolve().parents[2]


def go_requirement(tool: str, module: str) -> str:
    """The version `tools/<tool>/go.mod` requires of a module."""
    text = (ROOT / "tools" / tool / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    assert found, f"tools/{tool}/go.mod requires no {module}"
    return found.group(1)


def locked(package: str) -> tuple[int, ...]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (version,) = [p["version"] for p in lock["package"] if p["name"] == package]
    return semver(version)


def semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.removeprefix("v").split("-")[0].split("."))


def test_promtool_and_the_prometheus_image_are_the_same_release() -> None:
    # Prometheus 3 publishes its Go module as v0.<major*100+minor>.<patch>.
    _, module_minor, patch = semver(
        go_requirement("prometheus", "github.com/prometheus/prometheus")
    )
    major, minor, image_patch = semver(versions.PROMETHEUS_VERSION)
    assert (module_minor, patch) == (major * 100 + minor, image_patch)


def test_amtool_and_the_alertmanager_image_are_the_same_release() -> None:
    module = go_requirement("alertmanager", "github.com/prometheus/alertmanager")
    assert module == f"v{versions.ALERTMANAGER_VERSION}"
    assert versions.ALERTMANAGER_IMAGE.endswith(f":{module}")


def test_the_pushgateway_binary_and_image_are_the_same_release() -> None:
    module = go_requirement("pushgateway", "github.com/prometheus/pushgateway")
    assert module == f"v{versions.PUSHGATEWAY_VERSION}"
    assert versions.PUSHGATEWAY_IMAGE.endswith(f":{module}")


def test_the_control_plane_is_the_newest_kubernetes_the_schemas_are_checked_against() -> None:
    major, minor, _ = semver(go_requirement("kubernetes", "k8s.io/kubernetes"))
    assert f"{major}.{minor}" == versions.KUBERNETES_VERSIONS[-1]


def test_the_language_host_speaks_the_python_sdks_protocol_version() -> None:
    host_sdk = semver(go_requirement("pulumi-language-python", "github.com/pulumi/pulumi/sdk/v3"))
    assert host_sdk == locked("pulumi")


def test_the_pulumi_cli_is_not_older_than_the_python_sdk() -> None:
    cli = semver(go_requirement("pulumi", "github.com/pulumi/pulumi/pkg/v3"))
    assert cli >= locked("pulumi")


def test_the_kserve_controller_is_the_release_the_platform_installs() -> None:
    # The control-plane tier reconciles with this controller what the charts install elsewhere,
    # and the images it injects carry the same release's tag.
    assert go_requirement("kserve", "github.com/kserve/kserve") == versions.KSERVE_VERSION
    for image in (
        versions.KSERVE_STORAGE_INITIALIZER_IMAGE,
        versions.KSERVE_AGENT_IMAGE,
        versions.KSERVE_ROUTER_IMAGE,
    ):
        assert image.endswith(f":{versions.KSERVE_VERSION}"), image
