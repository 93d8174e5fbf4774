"""Upgrades: every Job that prepares a store (schema migrations, logins, buckets, feature
definitions) runs before the rollout that needs it, and runs again when what it prepares
changes (docs/operations.md, Upgrading).

Pulumi waits for a Job to complete before it touches what depends on it, so "runs before" is
"the rollout depends on the Job" in the resource graph. A workload needs a Job when the Job
belongs to its component, or when both read a key of a Secret of the Job's component (the logins
postgres-init sets), unless the Job works on that workload (it depends on the workload: the
Postgres server its init Job logs into).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from infra import config, versions
from mlops import render
from tests.support.rendering import (
    STACKS,
    evaluate,
    pod_template,
    raw_config,
    secret_refs,
    stack_rendering,
)

ROLLOUTS = ("Deployment", "StatefulSet", "CronJob", "DaemonSet")


def _template(obj: dict[str, Any]) -> dict[str, Any]:
    template = pod_template(obj)
    assert template is not None, obj["kind"]
    return template


def secrets_read(obj: dict[str, Any]) -> set[tuple[str, str | None]]:
    """The Secret keys a pod template reads, as (Secret, key); key None: the whole Secret."""
    return set(secret_refs(_template(obj)["spec"]))


def _shared(
    reads: set[tuple[str, str | None]], others: set[tuple[str, str | None]]
) -> set[tuple[str, str | None]]:
    """The keys both read; a whole Secret shares every key of it."""
    whole = {name for name, key in others if key is None}
    mine_whole = {name for name, key in reads if key is None}
    return {
        (name, key)
        for name, key in reads
        if (name, key) in others or name in whole or (name in mine_whole and name in dict(others))
    }


def upstream(rendering: render.Rendering) -> dict[str, set[str]]:
    """Each resource's transitive dependencies (what Pulumi finishes before it)."""
    direct = {r.urn: set(r.depends_on) for r in rendering.resources}
    closed: dict[str, set[str]] = {}

    def walk(urn: str) -> set[str]:
        if urn not in closed:
            closed[urn] = set()
            for dependency in direct.get(urn, ()):
                closed[urn] |= {dependency, *walk(dependency)}
        return closed[urn]

    for urn in direct:
        walk(urn)
    return closed


def _component(resource: render.Resource) -> str:
    return resource.inputs["metadata"]["labels"]["app.kubernetes.io/name"]  # type: ignore[no-any-return]


def needs(rendering: render.Rendering) -> Iterator[tuple[render.Resource, render.Resource]]:
    """(Job, rollout) pairs where the rollout needs what the Job prepares: the Job is of the
    rollout's component, or both read a key of a Secret of the Job's component (the login
    postgres-init sets, the registry feast-apply writes)."""
    before = upstream(rendering)
    owner = {s.inputs["metadata"]["name"]: _component(s) for s in rendering.of_type("Secret")}
    for job in rendering.of_type("Job"):
        prepared = {
            (n, k) for n, k in secrets_read(job.manifest()) if owner.get(n) == _component(job)
        }
        for kind in ROLLOUTS:
            for rollout in rendering.of_type(kind):
                if rollout.urn in before[job.urn]:
                    continue  # the Job works on it
                if _component(job) == _component(rollout) or _shared(
                    prepared, secrets_read(rollout.manifest())
                ):
                    yield job, rollout


@pytest.mark.parametrize("stack", STACKS)
def test_every_job_runs_before_the_rollouts_that_need_it(stack: str) -> None:
    rendering = stack_rendering(stack)
    before = upstream(rendering)
    pairs = list(needs(rendering))
    unordered = [
        f"{rollout.inputs['kind']}/{rollout.inputs['metadata']['name']} does not wait for "
        f"Job/{job.inputs['metadata']['name']}"
        for job, rollout in pairs
        if job.urn not in before[rollout.urn]
    ]
    assert unordered == []
    # The graph finds the migrations it is about.
    found = {(j.inputs["metadata"]["name"], r.inputs["metadata"]["name"]) for j, r in pairs}
    assert {("mlflow-db-upgrade", "mlflow"), ("postgres-init", "flyte")} <= found
    assert {("postgres-init", "feast"), ("feast-apply", "feast")} <= found


# The component label of each provider config.NEEDS names.
PROVIDERS = {"postgres": "postgres", "redis": "redis", "objectStore": "seaweedfs"}


@pytest.mark.parametrize("stack", STACKS)
def test_a_service_starts_after_its_providers_jobs(stack: str) -> None:
    """The logins postgres-init creates and the buckets seaweedfs-buckets creates exist before
    any Job or rollout of a service that stands on them (config.NEEDS) starts."""
    rendering = stack_rendering(stack)
    before = upstream(rendering)
    unordered = []
    for service, providers in config.NEEDS.items():
        users = [
            r
            for kind in ("Job", *ROLLOUTS)
            for r in rendering.of_type(kind)
            if _component(r) == service
        ]
        for provider in providers:
            for job in rendering.of_type("Job"):
                if _component(job) != PROVIDERS[provider]:
                    continue
                unordered += [
                    f"{u.inputs['kind']}/{u.inputs['metadata']['name']} does not wait for "
                    f"Job/{job.inputs['metadata']['name']}"
                    for u in users
                    if job.urn not in before[u.urn]
                ]
    assert unordered == []


def test_a_rollout_that_skips_its_migration_is_found() -> None:
    rendering = stack_rendering("dev")
    server = rendering.find("Deployment", "mlflow")
    migration = rendering.find("Job", "mlflow-db-upgrade")
    cut = [
        render.Resource(**{**vars(r), "depends_on": []}) if r is server else r
        for r in rendering.resources
    ]
    broken = render.Rendering(rendering.stack, rendering.config, cut)
    assert migration.urn not in upstream(broken)[server.urn]
    assert (migration.urn, server.urn) in [(j.urn, r.urn) for j, r in needs(broken)]


def test_the_migration_runs_the_image_it_migrates_for() -> None:
    """Bumping MLflow's pin changes the Job with the server: the migration re-runs first."""
    rendering = stack_rendering("prod")
    job = _template(rendering.find("Job", "mlflow-db-upgrade").manifest())["spec"]
    server = _template(rendering.find("Deployment", "mlflow").manifest())["spec"]
    assert job["containers"][0]["image"] == server["containers"][0]["image"]


def test_a_new_server_version_replaces_the_migration_job(monkeypatch: pytest.MonkeyPatch) -> None:
    def migration() -> render.Resource:
        return render.evaluate("test", *raw_config({})).find("Job", "mlflow-db-upgrade")

    old = migration()
    monkeypatch.setattr(versions, "MLFLOW_IMAGE", versions.MLFLOW_IMAGE + "-next")
    new = migration()
    assert _template(new.manifest()) != _template(old.manifest())
    # A Job's template is immutable: Pulumi replaces it, deleting the old one first.
    assert new.delete_before_replace


def test_flyte_migrates_in_process_with_no_old_pod_beside_it() -> None:
    """flyte-binary runs its migrations at start (cmd/single/start.go): Recreate stops the old
    version before the new one migrates."""
    flyte = evaluate({}).find("Deployment", "flyte").manifest()
    assert flyte["spec"]["strategy"] == {"type": "Recreate"}
    assert flyte["spec"]["replicas"] == 1
