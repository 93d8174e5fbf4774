"""Redis: auth always on, AOF on a volume, exporter, external mode."""

from __future__ import annotations

import pytest

from infra import config, versions
from infra.components import redis
from mlops import render
from tests.support.rendering import (
    SENTINELS,
    component_objects,
    env_of,
    evaluate,
    raw_config,
    secret_data,
)


def _server(values: dict[str, object]) -> dict[str, object]:
    return evaluate(values).find("StatefulSet", "redis").manifest()


def test_password_auth_and_aof_persistence_are_on() -> None:
    rendering = evaluate({})
    conf = rendering.find("ConfigMap", "redis-config").inputs["data"]["redis.conf"]
    assert "appendonly yes" in conf.splitlines()
    assert "include /run/redis/auth.conf" in conf.splitlines()
    server = rendering.find("StatefulSet", "redis").manifest()["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert server["image"] == versions.REDIS_IMAGE
    assert "requirepass %s" in server["command"][-1]
    assert env_of(server)["REDIS_PASSWORD"] == {
        "secretKeyRef": {"name": "redis", "key": "password"}
    }
    assert {"name": "data", "mountPath": "/data"} in server["volumeMounts"]
    assert secret_data(rendering, "redis")["password"] == SENTINELS["redisPassword"]


def test_probes_authenticate_and_fail_on_error_replies() -> None:
    server = _server({})["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert server["readinessProbe"]["exec"]["command"] == redis.PING
    assert "-e" in redis.PING
    assert env_of(server)["REDISCLI_AUTH"] == {"secretKeyRef": {"name": "redis", "key": "password"}}


def test_exporter_reads_the_local_server() -> None:
    exporter = _server({})["spec"]["template"]["spec"]["containers"][1]  # type: ignore[index]
    assert exporter["image"] == versions.REDIS_EXPORTER_IMAGE
    assert env_of(exporter)["REDIS_ADDR"] == "redis://127.0.0.1:6379"
    assert exporter["ports"] == [{"name": "metrics", "containerPort": redis.METRICS_PORT}]


def test_external_redis_creates_no_server() -> None:
    rendering = evaluate({"redis": {"external": {"host": "cache.example.com", "port": 6380}}})
    assert [o["kind"] for o in component_objects(rendering, "redis")] == ["Secret"]
    assert secret_data(rendering, "redis") == {
        "password": SENTINELS["redisPassword"],
        "host": "cache.example.com",
        "port": "6380",
    }
    assert rendering.outputs["redis"] == {
        "host": "cache.example.com",
        "port": 6380,
        "tls": False,
        "secret": "redis",
    }


def test_disabled_redis_leaves_no_object() -> None:
    secrets = {k: v for k, v in SENTINELS.items() if config.SECRET_KEYS[k] != "redis"}
    rendering = evaluate({"redis": {"enabled": False}, "feast": {"enabled": False}}, secrets)
    assert component_objects(rendering, "redis") == []
    assert "redis" not in rendering.outputs


def test_storage_override_reaches_the_volume_claim() -> None:
    claim = _server({"redis": {"storageSize": "3Gi"}})["spec"]["volumeClaimTemplates"][0]  # type: ignore[index]
    assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"


def test_a_config_change_rolls_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    def annotation() -> str:
        # Rendered anew each time: `evaluate` would return the render of the same config.
        fresh = render.evaluate("test", *raw_config({}))
        template = fresh.find("StatefulSet", "redis").manifest()["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/config"]  # type: ignore[no-any-return]

    before = annotation()
    monkeypatch.setattr(redis, "SERVER_CONF", redis.SERVER_CONF + "maxclients 100\n")
    assert annotation() != before


def _conf(values: dict[str, object], stack: str = "test") -> list[str]:
    rendering = evaluate(values, stack=stack)
    return rendering.find("ConfigMap", "redis-config").inputs["data"]["redis.conf"].splitlines()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("profile", "limit", "max_bytes"),
    [
        ("small", "256Mi", 160 * 2**20),
        ("standard", "1Gi", 640 * 2**20),
        ("ha", "4Gi", 2560 * 2**20),
    ],
)
def test_the_profile_bounds_memory_below_the_limit(
    profile: str, limit: str, max_bytes: int
) -> None:
    conf = _conf({"profile": profile})
    assert f"maxmemory {max_bytes}" in conf
    assert "maxmemory-policy volatile-lru" in conf
    server = evaluate({"profile": profile}).find("StatefulSet", "redis").manifest()
    container = server["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == limit


def test_memory_and_eviction_policy_can_be_set() -> None:
    conf = _conf({"redis": {"maxMemory": "100M", "evictionPolicy": "allkeys-lfu"}})
    assert conf[-2:] == ["maxmemory 100000000", "maxmemory-policy allkeys-lfu"]


def test_a_memory_change_rolls_the_pod() -> None:
    def digest(values: dict[str, object]) -> str:
        template = evaluate(values).find("StatefulSet", "redis").manifest()["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/config"]  # type: ignore[no-any-return]

    assert digest({"redis": {"maxMemory": "100Mi"}}) != digest({"redis": {"maxMemory": "120Mi"}})


def test_memory_at_or_above_the_limit_is_refused() -> None:
    raw, keys = raw_config({"redis": {"maxMemory": "256Mi"}})
    with pytest.raises(config.ConfigError) as caught:
        config.load("dev", raw, keys)
    assert str(caught.value).endswith(
        "mlops-platform:redis.maxMemory = '256Mi': must be below resources.limits.memory (256Mi)"
    )


def test_an_unknown_eviction_policy_is_refused() -> None:
    raw, keys = raw_config({"redis": {"evictionPolicy": "allkeys-newest"}})
    with pytest.raises(config.ConfigError) as caught:
        config.load("dev", raw, keys)
    message = str(caught.value)
    assert "mlops-platform:redis.evictionPolicy = 'allkeys-newest'" in message
    assert "volatile-lru" in message and "noeviction" in message


def test_external_redis_needs_no_memory_bound_below_a_limit() -> None:
    external = {"external": {"host": "cache.example.com"}, "maxMemory": "8Gi"}
    assert config.load("dev", *raw_config({"redis": external})).redis is not None
