"""The rendered flyte-binary config files, checked key by key against flyte-binary v1.16."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from infra.components import flyte
from tests.contract.flyte_v1_16_keys import LEAVES, MAPS, STOW_S3_KEYS
from tests.support.rendering import evaluate, secret_data, stack_rendering


def key_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every leaf; free-form maps count as one leaf each."""
    if isinstance(value, dict) and prefix not in MAPS:
        for key, child in value.items():
            yield from key_paths(child, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def rendered_files(name: str = "ci") -> dict[str, Any]:
    rendering = stack_rendering(name)
    files = dict(rendering.find("ConfigMap", "flyte-config").inputs["data"])
    files.update(secret_data(rendering, "flyte-config-secret"))
    return {file: yaml.safe_load(text) for file, text in files.items()}


def test_every_rendered_key_is_one_flyte_binary_1_16_reads() -> None:
    for stack in ("dev", "ci", "staging", "prod"):
        for file, content in rendered_files(stack).items():
            unknown = [p for p in key_paths(content) if p not in LEAVES and p not in MAPS]
            assert unknown == [], f"{stack}: {file} has keys flyte-binary 1.16 ignores: {unknown}"


def test_stow_config_uses_only_s3_client_keys() -> None:
    merged: dict[str, Any] = {}
    for content in rendered_files().values():
        merged.update(content.get("storage", {}).get("stow", {}).get("config", {}))
    assert set(merged) <= STOW_S3_KEYS
    assert {"access_key_id", "secret_key", "endpoint", "auth_type"} <= set(merged)


def test_the_check_catches_a_misspelt_key() -> None:
    content = {"propeller": {"rawoutput_prefix": "s3://x"}, "storage": {"stow": {"config": {}}}}
    assert [p for p in key_paths(content) if p not in LEAVES | MAPS] == [
        "propeller.rawoutput_prefix"
    ]


def test_files_load_in_the_order_the_binary_merges_them() -> None:
    names = sorted(rendered_files())
    assert names == [
        "000-core.yaml",
        "001-plugins.yaml",
        "002-database.yaml",
        "003-storage.yaml",
        "013-storage-secrets.yaml",
    ]


def test_cluster_resource_templates_are_valid_yaml_with_their_variables() -> None:
    templates = evaluate({}).find("ConfigMap", "flyte-cluster-resource-templates").inputs["data"]
    namespace = yaml.safe_load(templates["001-namespace.yaml"])
    assert namespace["metadata"]["name"] == "{{ namespace }}"
    secret = yaml.safe_load(templates["002-task-storage.yaml"])
    assert secret["metadata"]["name"] == flyte.TASK_STORAGE_SECRET
    assert set(secret["stringData"].values()) == {"{{ s3AccessKeyId }}", "{{ s3SecretAccessKey }}"}
