"""The rendered flyte-binary config files, checked key by key against flyte-binary v1.16."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from tests.contract.flyte_v1_16_keys import LEAVES, MAPS, STATIC_CLIENT_KEYS, STOW_S3_KEYS
from tests.support.rendering import secret_data, stack_rendering


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


def test_static_clients_use_only_fosite_client_keys() -> None:
    for stack in ("dev", "ci", "staging", "prod"):
        clients: dict[str, dict[str, Any]] = {}
        for content in rendered_files(stack).values():
            found = content.get("auth", {}).get("appAuth", {}).get("selfAuthServer", {})
            for name, client in found.get("staticClients", {}).items():
                clients.setdefault(name, {}).update(client)
        assert set(clients) == {"flytepropeller", "mlops-ci"}, stack
        for name, client in clients.items():
            assert set(client) <= STATIC_CLIENT_KEYS, (stack, name)
            assert {"id", "client_secret", "grant_types", "scopes"} <= set(client), (stack, name)


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
        "004-auth.yaml",
        "013-storage-secrets.yaml",
        "014-auth-secrets.yaml",
    ]
