"""What every `mlops demo` step needs, checked before anything is made: a known stack that
runs the golden path's components, deployed from this machine to a cluster that answers and
runs containers, and the workload libraries in this environment."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops import kube
from mlops.errors import UserError

if TYPE_CHECKING:
    from infra import config

# The components the golden path runs through: features, tracking, training, serving.
GOLDEN_PATH = ("feast", "mlflow", "flyte", "kserve")
# What the steps import from the workloads dependency group: the seeded data (pandas),
# Flyte's client, and KServe's readiness as the training's deploy task reads it.
WORKLOAD_MODULES = ("pandas", "flytekit", "kubernetes")


@dataclass(frozen=True)
class DemoTarget:
    """A deployed stack the golden path can run on: its config and kubectl on its context."""

    stack: str
    config: config.PlatformConfig
    kube: kube.Kube

    @property
    def namespace(self) -> str:
        return self.config.namespace

    @property
    def model_namespace(self) -> str:
        assert self.config.kserve is not None, "checked by target_of"
        return self.config.kserve.model_namespace


def components_off(cfg: config.PlatformConfig) -> list[str]:
    """The golden path's components the stack turns off."""
    return [name for name in GOLDEN_PATH if getattr(cfg, name) is None]


def require_components(stack: str, cfg: config.PlatformConfig) -> None:
    off = components_off(cfg)
    if off:
        raise UserError(
            f"stack {stack} turns off {' and '.join(off)}: the demo's golden path runs through "
            f"{', '.join(GOLDEN_PATH)}. Turn {'it' if len(off) == 1 else 'them'} on in "
            f"stacks/Pulumi.{stack}.yaml (docs/configuration.md) and run mlops up {stack}; "
            "nothing was created"
        )


def require_workload_libraries() -> None:
    missing = [name for name in WORKLOAD_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(
            f"mlops demo needs the workloads dependency group ({', '.join(missing)} missing "
            "here): ./scripts/setup.sh; nothing was created"
        )


def containers_refusal(context: str, nodes: list[dict[str, Any]]) -> str | None:
    """Why the golden path cannot run on these nodes (none runs a container), or None."""
    if kube.runs_containers(nodes):
        return None
    key, value = kube.FAKE_NODE
    found = (
        f"every node is a kwok fake node (annotated {key}: {value})" if nodes else "it has no node"
    )
    return (
        f"no container runs on kube context {context}: {found}, and the golden path needs real "
        "pods to seed, train and serve. Run it on a cluster with real nodes, such as the kind "
        "stack (mlops up kind, with Docker); nothing was created"
    )


def require_containers(k: kube.Kube) -> None:
    found = k.run("get", "nodes", "-o", "json", timeout=60)
    if found.returncode != 0:
        if "forbidden" in found.stderr.lower():
            return  # a login without the right to list nodes: the steps themselves will tell
        raise UserError(f"kubectl get nodes on context {k.context}: {found.stderr.strip()}")
    refusal = containers_refusal(k.context, json.loads(found.stdout).get("items") or [])
    if refusal is not None:
        raise UserError(refusal)


def target_of(stack: str) -> DemoTarget:
    """The stack, checked in the order a user fixes things: its file, its components, this
    environment, its record here, its cluster."""
    from mlops import deploy

    cfg = deploy.config_of(stack)
    require_components(stack, cfg)
    require_workload_libraries()
    k = deploy.kube_of(deploy.record_of(stack))
    reason = k.reachable()
    if reason is not None:
        raise UserError(f"stack {stack}'s kube context {k.context} does not answer: {reason}")
    require_containers(k)
    return DemoTarget(stack, cfg, k)
