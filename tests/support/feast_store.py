"""The platform's Feast store on loopback: the rendered feature_store.yaml and the apply Job's
env, with in-cluster addresses swapped for the local Postgres and Redis."""

from __future__ import annotations

from pathlib import Path

from mlops import render
from tests.support.rendering import pod_container
from tests.support.servers import LocalPostgres, LocalRedis, local_env


def platform_store(
    rendering: render.Rendering, pg: LocalPostgres, redis: LocalRedis, config_dir: Path
) -> dict[str, str]:
    """Writes the rendered store config into `config_dir` (what pods mount at /etc/feast) and
    returns the Feast variables of the apply Job's env, pointing at it."""
    addresses = {
        "postgres.mlops.svc.cluster.local:5432": f"{pg.host}:{pg.port}",
        "redis.mlops.svc.cluster.local:6379": f"{redis.host}:{redis.port}",
    }
    text = rendering.find("ConfigMap", "feast").inputs["data"]["feature_store.yaml"]
    text = text.replace("host: postgres.mlops.svc.cluster.local", f"host: {pg.host}")
    text = text.replace("port: 5432", f"port: {pg.port}")
    for cluster, local in addresses.items():
        text = text.replace(cluster, local)
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "feature_store.yaml").write_text(text)
    env = local_env(rendering, pod_container(rendering, "Job", "feast-apply"), addresses)
    env["FEAST_REDIS_PASSWORD"] = redis.password
    env["FEAST_FS_YAML_FILE_PATH"] = str(config_dir / "feature_store.yaml")
    env.pop("HOME")
    return env
