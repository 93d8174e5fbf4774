"""Creates or updates an InferenceService with the task pod's own ServiceAccount, which the
platform allows to get, create and patch InferenceServices in the model namespace only, and
waits until KServe's controller has made it Ready.

What goes wrong surfaces as a DeployError naming the InferenceService and KServe's own words:
the admission webhook's refusal, the controller's verdict on the spec (no runtime supports the
model format, the runtime is unknown or disabled) or, at the deadline, every condition that is
not yet True with its reason.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
# How long the deploy step waits for Ready: the storage initializer downloads the model first.
READY_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 2.0
# The controller's model states that no waiting will change (v1beta1 TransitionStatus).
FAILED_TRANSITIONS = ("InvalidSpec", "BlockedByFailedLoad")


class DeployError(RuntimeError):
    """The InferenceService was refused, or KServe could not make it Ready."""


@dataclass(frozen=True)
class Readiness:
    state: Literal["ready", "failed", "pending"]
    detail: str


def _api() -> client.CustomObjectsApi:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        # KUBECONFIG as it is now: the client library reads it once, at import.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return client.CustomObjectsApi()


def refusal(error: ApiException) -> str:
    """The API server's message for a refused request (an admission webhook's is in it)."""
    try:
        body = json.loads(error.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"{error.status} {error.reason}"


def apply_inference_service(manifest: dict[str, Any]) -> str:
    """'created' or 'updated'; a refusal raises DeployError with the server's message."""
    api = _api()
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    try:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as error:
            if error.status != 404:
                raise
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
            return "created"
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, manifest)
        return "updated"
    except ApiException as error:
        if error.status is not None and 400 <= error.status < 500:
            raise DeployError(
                f"InferenceService {namespace}/{name} was refused: {refusal(error)}"
            ) from None
        raise


def readiness(isvc: dict[str, Any]) -> Readiness:
    """Where the controller stands on the InferenceService. (Its status.observedGeneration is
    the predictor Deployment's in Standard mode, not the InferenceService's: no use here.)"""
    status = isvc.get("status") or {}
    model = status.get("modelStatus") or {}
    if model.get("transitionStatus") in FAILED_TRANSITIONS:
        failure = model.get("lastFailureInfo") or {}
        reason = failure.get("reason", model["transitionStatus"])
        return Readiness("failed", f"{reason}: {failure.get('message', 'no message')}")
    conditions = status.get("conditions") or []
    if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
        return Readiness("ready", "Ready")
    waiting = [
        f"{c['type']}={c['status']}"
        + (f" ({c.get('reason', '')}: {c['message']})" if c.get("message") else "")
        for c in conditions
        if c["status"] != "True"
    ]
    return Readiness("pending", "; ".join(waiting) or "no conditions reported yet")


def wait_until_ready(
    name: str,
    namespace: str,
    timeout: float = READY_TIMEOUT_SECONDS,
    poll: float = POLL_SECONDS,
    fetch: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The InferenceService once Ready; DeployError as soon as the controller finds its spec
    invalid, or with what is still missing when `timeout` seconds have passed."""
    if fetch is None:
        api = _api()

        def fetch() -> dict[str, Any]:
            found: dict[str, Any] = api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
            return found

    deadline = time.monotonic() + timeout
    while True:
        isvc = fetch()
        verdict = readiness(isvc)
        if verdict.state == "ready":
            return isvc
        if verdict.state == "failed":
            raise DeployError(f"InferenceService {namespace}/{name} cannot run: {verdict.detail}")
        if time.monotonic() >= deadline:
            raise DeployError(
                f"InferenceService {namespace}/{name} not Ready after {timeout:.0f}s: "
                f"{verdict.detail}"
            )
        time.sleep(poll)


def deploy_inference_service(
    manifest: dict[str, Any], timeout: float = READY_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """Applies the InferenceService and returns it once Ready (DeployError otherwise)."""
    apply_inference_service(manifest)
    metadata = manifest["metadata"]
    return wait_until_ready(metadata["name"], metadata["namespace"], timeout)
