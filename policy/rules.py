"""The platform's rules over Kubernetes objects, as plain functions.

Each resource rule takes one object (a manifest: apiVersion, kind, metadata, spec) and returns
what is wrong with it, one message per finding, naming the container or key and what is allowed;
the stack rule takes every object of a stack. They import nothing but the standard library: the
unit tier runs them over every rendered stack, and the pack (__main__.py) runs them on the objects
of a real preview, where values arrive as read-only Mapping and Sequence proxies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

Object = Mapping[str, Any]
# A resource rule: what is wrong with one object.
Rule = Callable[[Object], list[str]]

# Kinds whose pods run until stopped (probes apply) and kinds that run to completion.
LONG_RUNNING = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"})
RUN_TO_COMPLETION = frozenset({"Job", "CronJob"})
WORKLOADS = LONG_RUNNING | RUN_TO_COMPLETION


def pod_spec(obj: Object) -> Mapping[str, Any] | None:
    """The pod spec a workload object creates pods from, or None for other kinds."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    if kind in WORKLOADS:
        return (spec.get("template") or {}).get("spec") or {}
    return None


def pod_labels(obj: Object) -> Mapping[str, str]:
    """The labels of the pods a workload object creates."""
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("labels") or {}
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def containers(obj: Object) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """Every container of a workload's pods: (name, container, is an init container)."""
    spec = pod_spec(obj)
    if spec is None:
        return
    for container in spec.get("initContainers") or ():
        yield container.get("name", "?"), container, True
    for container in spec.get("containers") or ():
        yield container.get("name", "?"), container, False


def restricted_pod_security(obj: Object) -> list[str]:
    """The restricted Pod Security Standard, plus a read-only root filesystem."""
    spec = pod_spec(obj)
    if spec is None:
        return []
    found = []
    pod = spec.get("securityContext") or {}
    if pod.get("runAsNonRoot") is not True:
        found.append("pod securityContext.runAsNonRoot must be true")
    run_as_user = pod.get("runAsUser")
    if not isinstance(run_as_user, int | float) or run_as_user <= 0:
        shown = "not set" if run_as_user is None else repr(run_as_user)
        found.append(f"pod securityContext.runAsUser is {shown}: set a non-zero user id")
    if (pod.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        found.append("pod securityContext.seccompProfile.type must be RuntimeDefault")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"pod {field} must be false")
    for volume in spec.get("volumes") or ():
        if "hostPath" in volume:
            found.append(f"volume {volume.get('name')}: hostPath volumes are not allowed")
    for name, container, _ in containers(obj):
        ctx = container.get("securityContext") or {}
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"container {name}: allowPrivilegeEscalation must be false")
        if ctx.get("privileged"):
            found.append(f"container {name}: privileged must be false")
        capabilities = ctx.get("capabilities") or {}
        if list(capabilities.get("drop") or ()) != ["ALL"] or capabilities.get("add"):
            found.append(f"container {name}: capabilities must drop [ALL] and add none")
        if ctx.get("runAsNonRoot") is not True:
            found.append(f"container {name}: runAsNonRoot must be true")
        if ctx.get("readOnlyRootFilesystem") is not True:
            found.append(f"container {name}: readOnlyRootFilesystem must be true")
        if (ctx.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            found.append(f"container {name}: seccompProfile.type must be RuntimeDefault")
    return found


def requests_and_limits(obj: Object) -> list[str]:
    """Every container, init containers too, requests and limits cpu and memory."""
    found = []
    for name, container, _ in containers(obj):
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind) or {})
            if missing:
                found.append(
                    f"container {name}: resources.{kind} lacks {', '.join(sorted(missing))}"
                )
    return found


def probes(obj: Object) -> list[str]:
    """Containers of long-running pods have readiness and liveness probes (not Jobs, not init)."""
    if obj.get("kind") not in LONG_RUNNING:
        return []
    return [
        f"container {name}: no {probe}"
        for name, container, init in containers(obj)
        if not init
        for probe in ("readinessProbe", "livenessProbe")
        if not container.get(probe)
    ]


# A version tag: after the last "/" a ":" and a tag holding a digit (so not latest, main, stable).
_VERSION_TAG = re.compile(r":[A-Za-z0-9_.-]*[0-9][A-Za-z0-9_.-]*$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_is_pinned(image: str) -> bool:
    if _DIGEST.search(image):
        return True
    last = image.rsplit("/", 1)[-1]
    return bool(_VERSION_TAG.search(last)) and not last.endswith(":latest")


def pinned_images(obj: Object) -> list[str]:
    """Every image names a version tag (not latest) or a sha256 digest."""
    return [
        f"container {name}: image {container.get('image')!r} is not pinned: "
        "give a version tag (not latest) or an @sha256 digest"
        for name, container, _ in containers(obj)
        if not image_is_pinned(str(container.get("image") or ""))
    ]


# Names of settings that hold a credential (env vars, ConfigMap keys): ending in password, secret,
# token or credentials (PGPASSWORD, FLASK_SECRET_KEY), or in a word pass, pwd, auth or key; an
# `_ID` suffix (AWS_ACCESS_KEY_ID) is read past. Names of files and paths holding one
# (PASSWORD_FILE, password_file) are references, not credentials.
_CREDENTIAL_NAME = re.compile(
    r"((password|passwd|secret|token|credentials?|apikey)|(^|[^a-z0-9])(pass|pwd|auth|key))"
    r"([-_.]?id)?$",
    re.IGNORECASE,
)
# Credential material inside a ConfigMap value.
_CREDENTIAL_VALUE = {
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "an AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a password inside a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I),
}
# `password: value` or `password = value` lines of a config file in a ConfigMap; a value that is
# empty, quoted empty or a reference (${VAR}, $(VAR), {{ }}, a file path) is not a credential.
_CREDENTIAL_SETTING = re.compile(
    r"^[ \t]*[\"']?([A-Za-z0-9_.-]+)[\"']?[ \t]*[:=][ \t]*[\"']?([^\s\"'#]+)", re.MULTILINE
)
_REFERENCE = re.compile(r"^(\$|\{\{|/|\[redacted\]$|(null|none|true|false|~)$)", re.IGNORECASE)


def is_credential_name(name: str) -> bool:
    return bool(_CREDENTIAL_NAME.search(name))


def no_secret_literals(obj: Object) -> list[str]:
    """Credentials reach containers by secretKeyRef and never sit in a ConfigMap."""
    found = []
    for name, container, _ in containers(obj):
        for env in container.get("env") or ():
            env_name = str(env.get("name", ""))
            if not is_credential_name(env_name):
                continue
            if "secretKeyRef" not in (env.get("valueFrom") or {}):
                found.append(
                    f"container {name}: env {env_name} looks like a credential: "
                    "take it from a Secret (valueFrom.secretKeyRef), not a literal or a ConfigMap"
                )
    if obj.get("kind") == "ConfigMap":
        found.extend(_configmap_credentials(obj))
    return found


def _configmap_credentials(configmap: Object) -> Iterator[str]:
    for key, value in (configmap.get("data") or {}).items():
        text = str(value)
        if is_credential_name(key) and text.strip():
            yield f"key {key} looks like a credential: keep it in a Secret"
            continue
        for what, pattern in _CREDENTIAL_VALUE.items():
            if pattern.search(text):
                yield f"key {key} holds {what}: keep it in a Secret"
        for match in _CREDENTIAL_SETTING.finditer(text):
            setting, literal = match.groups()
            if is_credential_name(setting) and not _REFERENCE.match(literal):
                yield f"key {key} sets {setting} to a literal value: read it from a Secret"


def label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects these labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression.get("key"), expression.get("operator")
        values = set(expression.get("values") or ())
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _namespace(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def uncovered_workloads(objects: Iterable[Object]) -> list[Object]:
    """The workload objects whose pods no NetworkPolicy in their namespace selects."""
    objects = list(objects)
    selectors: dict[str, list[Mapping[str, Any]]] = {}
    for obj in objects:
        if obj.get("kind") == "NetworkPolicy":
            spec = obj.get("spec") or {}
            selectors.setdefault(_namespace(obj), []).append(spec.get("podSelector") or {})
    return [
        obj
        for obj in objects
        if pod_spec(obj) is not None
        and not any(
            label_selector_matches(s, pod_labels(obj)) for s in selectors.get(_namespace(obj), [])
        )
    ]


def uncovered_message(obj: Object) -> str:
    return (
        f"{obj.get('kind')} {_namespace(obj)}/{(obj.get('metadata') or {}).get('name')}: "
        f"no NetworkPolicy in namespace {_namespace(obj)} selects its pods "
        f"(labels {dict(pod_labels(obj))})"
    )


def network_policy_coverage(objects: Iterable[Object]) -> list[str]:
    """Every workload's pods are selected by a NetworkPolicy in their namespace."""
    return [uncovered_message(obj) for obj in uncovered_workloads(objects)]


# name -> (what it enforces, the rule): the pack's resource policies and the unit tier's checks.
RESOURCE_RULES: Mapping[str, tuple[str, Rule]] = {
    "restricted-pod-security": (
        "Pods meet the restricted Pod Security Standard and have a read-only root filesystem.",
        restricted_pod_security,
    ),
    "requests-and-limits": (
        "Every container requests and limits cpu and memory.",
        requests_and_limits,
    ),
    "probes": (
        "Containers of long-running pods have readiness and liveness probes.",
        probes,
    ),
    "pinned-images": (
        "Every image names a version tag (not latest) or a digest.",
        pinned_images,
    ),
    "no-secret-literals": (
        "Credentials come from Secrets: no credential in an env literal or a ConfigMap.",
        no_secret_literals,
    ),
}
STACK_RULES: Mapping[str, tuple[str, Callable[[Iterable[Object]], list[str]]]] = {
    "network-policy-coverage": (
        "Every pod is selected by a NetworkPolicy in its namespace.",
        network_policy_coverage,
    ),
}


def violations(objects: Sequence[Object]) -> dict[str, list[str]]:
    """Every rule over a stack's objects: rule name -> findings, each naming its object."""
    found: dict[str, list[str]] = {}
    for rule, (_, check) in RESOURCE_RULES.items():
        found[rule] = [
            f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')}: {message}"
            for obj in objects
            for message in check(obj)
        ]
    for rule, (_, stack_check) in STACK_RULES.items():
        found[rule] = stack_check(objects)
    return found
