"""Render helpers for tests: stack config built in-test, renders under mocks (each built once
per session), and walkers over the rendered objects."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from infra import config
from mlops import render

STACKS = ("dev", "ci", "staging", "prod")

# Secret values no rendered file may contain; each is long and unique so a leak is unambiguous,
# in the shape its key takes (an RSA key's PEM lines).
SENTINELS: Mapping[str, str] = {
    key: marker.shape.format(f"S3NT1NEL-{key}-4f9c2e7a1b") for _, key, marker in config.SECRETS
}


# URL-shaped secrets (the sentinels are not URLs), unique so a leak is unambiguous.
RECEIVER_SECRETS = {
    **SENTINELS,
    "alertmanagerWebhookUrl": "https://hooks.example.com/S3NT1NEL-webhook-4f9c2e7a1b",
    "alertmanagerSlackApiUrl": "https://hooks.slack.com/services/S3NT1NEL-slack-4f9c2e7a1b",
}
# Every Alertmanager receiver, with the secrets above.
ALL_RECEIVERS = {
    "monitoring": {
        "alertmanager": {
            "receivers": {
                "webhook": {},
                "slack": {"channel": "#mlops-alerts"},
                "email": {
                    "to": ["oncall@example.com", "ml@example.com"],
                    "from": "alertmanager@example.com",
                    "smarthost": "smtp.example.com:587",
                    "username": "alertmanager",
                },
            }
        }
    }
}


def raw_config(
    values: Mapping[str, Any], secrets: Mapping[str, str] = SENTINELS
) -> tuple[dict[str, str], frozenset[str]]:
    """Pulumi's raw form of a stack config: `project:key` names, strings, objects as JSON."""
    raw = {
        f"{config.PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in values.items()
    }
    raw.update({f"{config.PROJECT}:{key}": value for key, value in secrets.items()})
    return raw, frozenset(f"{config.PROJECT}:{key}" for key in secrets)


def evaluate(
    values: Mapping[str, Any], secrets: Mapping[str, str] = SENTINELS, stack: str = "test"
) -> render.Rendering:
    """The program rendered under mocks with this config; the same config renders once."""
    return _evaluate(json.dumps(values, sort_keys=True), json.dumps(dict(secrets)), stack)


@cache
def _evaluate(values: str, secrets: str, stack: str) -> render.Rendering:
    raw, secret_keys = raw_config(json.loads(values), json.loads(secrets))
    return render.evaluate(stack, raw, secret_keys)


@cache
def stack_rendering(name: str) -> render.Rendering:
    """A stack file's config with sentinel secrets, so leak checks know what to look for."""
    raw, _ = render.stack_config(name)
    plain = {k: v for k, v in raw.items() if k.split(":")[-1] not in config.SECRET_KEYS}
    values = {k.split(":", 1)[1]: v for k, v in plain.items() if k.startswith(config.PROJECT)}
    decoded = {k: v if not v.startswith(("{", "[")) else json.loads(v) for k, v in values.items()}
    return evaluate(decoded, stack=name)


def containers(rendering: render.Rendering) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every container of every pod template: (owner, container, runs to completion).

    Job containers and init containers run to completion; probes do not apply to them.
    """
    for obj in rendering.objects():
        template = pod_template(obj)
        if template is None:
            continue
        spec = template["spec"]
        owner = f"{obj['kind']}/{obj['metadata']['name']}"
        is_job = obj["kind"] in ("Job", "CronJob")
        for c in spec.get("initContainers", []):
            yield f"{owner}/{c['name']}", c, True
        for c in spec["containers"]:
            yield f"{owner}/{c['name']}", c, is_job


def pod_specs(rendering: render.Rendering) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in rendering.objects():
        template = pod_template(obj)
        if template is not None:
            yield f"{obj['kind']}/{obj['metadata']['name']}", template["spec"]


def pod_template(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload object (a CronJob's Job's); None for other kinds."""
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]  # type: ignore[no-any-return]
    return (
        spec.get("template")
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
        else None
    )


def secret_refs(pod: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(Secret, key) of every secret value a pod spec reads: env, envFrom and volumes (projected
    ones too); key None: the whole Secret."""
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield ref["name"], ref["key"]
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                yield source["secretRef"]["name"], None
    for volume in pod.get("volumes", []):
        sources = [volume] if "secret" in volume else volume.get("projected", {}).get("sources", [])
        for source in sources:
            if "secret" not in source:
                continue
            ref = source["secret"]
            name = ref.get("secretName", ref.get("name"))
            items = ref.get("items")
            if items:
                yield from ((name, item["key"]) for item in items)
            else:
                yield name, None


def component_objects(rendering: render.Rendering, component: str) -> list[dict[str, Any]]:
    """Objects labelled as part of one component."""
    return [
        o
        for o in rendering.objects()
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == component
    ]


def unwrap(value: Any) -> Any:
    """A raw input value with Pulumi's secret markers removed (the real values)."""
    if render.is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def secret_data(rendering: render.Rendering, name: str) -> dict[str, str]:
    """The real (unredacted) string data of a Secret, as the program sent it."""
    return unwrap(rendering.find("Secret", name).inputs["stringData"])  # type: ignore[no-any-return]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def pod_container(rendering: render.Rendering, kind: str, name: str) -> dict[str, Any]:
    """The first container of a rendered workload's pod template."""
    spec = rendering.find(kind, name).manifest()["spec"]["template"]["spec"]
    return spec["containers"][0]  # type: ignore[no-any-return]


def declared_metrics(rendering: render.Rendering, component: str) -> frozenset[str]:
    """The series a component's telemetry says its targets expose."""
    return next(t.metrics for t in rendering.telemetry if t.component == component)


# A config with every service's Ingress on, TLS from cert-manager, each as a user would set it.
INGRESSES = {
    "mlflow": {
        "ingress": {
            "hosts": ["mlflow.example.com", "tracking.example.com"],
            "className": "nginx",
            "tls": {"clusterIssuer": "letsencrypt"},
        }
    },
    "flyte": {
        "ingress": {
            "hosts": ["flyte.example.com"],
            "annotations": {"nginx.ingress.kubernetes.io/auth-url": "http://oauth2-proxy/auth"},
            "tls": {"issuer": "platform-ca"},
        }
    },
    "monitoring": {
        "grafana": {"ingress": {"hosts": ["grafana.example.com"]}},
        "prometheusIngress": {
            "enabled": True,
            "hosts": ["prometheus.example.com"],
            "allowUnauthenticated": True,
        },
    },
}


def ingress_of(rendering: render.Rendering, name: str) -> dict[str, Any]:
    """A rendered Ingress as the cluster would receive it."""
    return rendering.find("Ingress", name).manifest()
