"""Offline render (`mlops render <stack> --out <dir>`): evaluate the program under Pulumi mocks
and write every object as YAML.

Needs no cluster and no Pulumi CLI. Secret values are redacted. Stack files keep secrets
encrypted, so the render substitutes a placeholder for each; reviews, GitOps diffs and policy
scanners see the objects exactly as `pulumi up` would send them, less the secret values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from infra import config, network, platform
from infra.observability import Telemetry
from mlops import stackfile

REDACTED = "[redacted]"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


@dataclass
class Resource:
    """One registered resource, as the engine would receive it."""

    type: str
    name: str
    urn: str
    parent: str
    inputs: dict[str, Any]
    protect: bool
    delete_before_replace: bool
    depends_on: list[str]

    @property
    def is_kubernetes_object(self) -> bool:
        return self.type.startswith("kubernetes:") and self.type != HELM_RELEASE

    def manifest(self) -> dict[str, Any]:
        """The Kubernetes object with secret values redacted and numbers normalised."""
        manifest: dict[str, Any] = _clean(self.inputs)
        return manifest

    def chart_record(self) -> dict[str, Any]:
        """A Helm release as chart, repository, version and values."""
        inputs = _clean(self.inputs)
        return {
            "name": inputs.get("name", self.name),
            "namespace": inputs.get("namespace"),
            "chart": inputs.get("chart"),
            "repository": inputs.get("repositoryOpts", {}).get("repo"),
            "version": inputs.get("version"),
            "values": inputs.get("values", {}),
        }


@dataclass
class Rendering:
    stack: str
    config: config.PlatformConfig
    resources: list[Resource]
    outputs: dict[str, Any] = field(default_factory=dict)
    # What the enabled components declared to the monitoring stack.
    telemetry: tuple[Telemetry, ...] = ()
    # Who may talk to whom, as the components declared it.
    graph: network.Graph | None = None

    def objects(self) -> list[dict[str, Any]]:
        return [r.manifest() for r in self.resources if r.is_kubernetes_object]

    def of_type(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.is_kubernetes_object and r.inputs["kind"] == kind]

    def find(self, kind: str, name: str) -> Resource:
        for resource in self.of_type(kind):
            if resource.inputs["metadata"]["name"] == name:
                return resource
        raise KeyError(f"no {kind} named {name} in stack {self.stack}")

    def charts(self) -> list[dict[str, Any]]:
        return [r.chart_record() for r in self.resources if r.type == HELM_RELEASE]


def is_secret(value: Any) -> bool:
    """Whether a raw input is wrapped in Pulumi's secret marker (how mocks deliver secrets)."""
    return rpc.is_rpc_secret(value)


def _redact(value: Any) -> Any:
    if is_secret(value):
        return _redact(value["value"])
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return REDACTED


def _clean(value: Any) -> Any:
    if is_secret(value):
        return _redact(value["value"])
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also keeping what the engine is told: options and dependencies."""

    def __init__(self) -> None:
        super().__init__(Mocks())
        self.recorded: list[Resource] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.recorded.append(
                Resource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                    protect=bool(request.protect),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    depends_on=list(request.dependencies),
                )
            )
        return response


def stack_config(
    stack: str, stacks_dir: Path = stackfile.STACKS_DIR
) -> tuple[dict[str, str], frozenset[str]]:
    """A stack file's raw config; its secrets, encrypted there, become placeholders."""
    return stackfile.read(stack, stacks_dir).with_placeholders()


async def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        if await value.is_secret():
            return REDACTED
        return await _resolve(await value.future())
    if isinstance(value, Mapping):
        return {k: await _resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [await _resolve(v) for v in value]
    return value


def evaluate(
    stack: str,
    raw: Mapping[str, str],
    secret_keys: frozenset[str],
    monitor: RecordingMonitor | None = None,
) -> Rendering:
    """Runs the program for one stack under mocks and returns what it registered."""
    monitor = monitor or RecordingMonitor()
    # A new root stack resource for each evaluation.
    pulumi.runtime.reset_options(project=config.PROJECT, stack=stack)
    pulumi.runtime.set_all_config(dict(raw), sorted(secret_keys))
    pulumi.runtime.set_mocks(
        monitor.mocks, project=config.PROJECT, stack=stack, preview=False, monitor=monitor
    )
    outputs: dict[str, Any] = {}
    loaded: list[config.PlatformConfig] = []
    built: list[platform.Platform] = []

    async def resolve(exported: dict[str, Any]) -> None:
        outputs.update(await _resolve(exported))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> Any:
        loaded.append(config.load(stack, raw, secret_keys))
        built.append(platform.Platform("mlops", loaded[0]))
        return asyncio.ensure_future(resolve(platform.export(built[0])))

    program()
    return Rendering(
        stack, loaded[0], monitor.recorded, outputs, built[0].telemetry(), built[0].graph
    )


def render_stack(stack: str, stacks_dir: Path = stackfile.STACKS_DIR) -> Rendering:
    raw, secret_keys = stack_config(stack, stacks_dir)
    return evaluate(stack, raw, secret_keys)


def _file_name(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    folder = meta.get("namespace") or "_cluster"
    return f"{folder}/{obj['kind'].lower()}-{meta['name']}.yaml"


_HEAD = ("apiVersion", "kind", "metadata")


def _ordered(value: Any) -> Any:
    """Sorted keys (apiVersion, kind and metadata first), so renders diff cleanly."""
    if isinstance(value, dict):
        keys = [k for k in _HEAD if k in value] + sorted(k for k in value if k not in _HEAD)
        return {k: _ordered(value[k]) for k in keys}
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def _dump(data: Any) -> str:
    return yaml.safe_dump(_ordered(data), sort_keys=False, default_flow_style=False)


def write(rendering: Rendering, out: Path) -> list[Path]:
    """Writes one file per object (plus Helm chart records and the stack outputs)."""
    written = []
    for obj in rendering.objects():
        written.append(out / _file_name(obj))
        written[-1].parent.mkdir(parents=True, exist_ok=True)
        written[-1].write_text(_dump(obj))
    for chart in rendering.charts():
        written.append(out / "charts" / f"{chart['name']}.yaml")
        written[-1].parent.mkdir(parents=True, exist_ok=True)
        written[-1].write_text(_dump(chart))
    written.append(out / "outputs.yaml")
    written[-1].write_text(_dump(rendering.outputs))
    return written
