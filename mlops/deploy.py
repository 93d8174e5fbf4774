"""`mlops up`, `preview` and `down`: a stack's Pulumi lifecycle, with everything it needs
around it (the cluster, the backend, the secrets, the images), checked before anything is made."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from typing import Any

from pulumi import automation as auto

from infra import config
from mlops import cluster, console, images, kube, secrets, stackfile, state, tools, workspace
from mlops.errors import UserError

# What a deploy labels as the platform's, in the kinds it creates; none may be left by `down`.
SELECTOR = "app.kubernetes.io/part-of=mlops-platform"
LEFTOVER_KINDS = (
    "namespaces",
    "clusterroles",
    "clusterrolebindings",
    "persistentvolumeclaims",
    "persistentvolumes",
    "pods",
    "secrets",
    "configmaps",
    "services",
    "serviceaccounts",
    "networkpolicies",
)


def read_stack(stack: str) -> stackfile.StackFile:
    """The stack file, its plain config validated as `pulumi up` would."""
    stack_file = stackfile.read(stack)
    stack_file.config()
    return stack_file


def record_of(stack: str) -> state.StackRecord:
    """The stack's record here, or (on a pipeline's runner) the environment's."""
    pinned = stackfile.read(stack).values.get(cluster.CONTEXT_KEY)
    return state.require(stack, pinned)


def ensure_record(stack: str) -> state.StackRecord:
    """The stack's record, made (unpinned, in its backend) when it has none: its secrets can
    be set before its first `up`."""
    found = state.load(stack)
    if found is not None:
        return found
    if os.environ.get("PULUMI_BACKEND_URL") or os.environ.get("PULUMI_ACCESS_TOKEN"):
        backend = state.backend_for(stack)
    else:
        backend = state.local_backend()
    record = state.StackRecord(stack, backend, state.passphrase_for(backend, stack), "", "")
    workspace.open_stack(record, tools.pulumi_tools(), create=True)
    record.save()
    return record


def target_of(record: state.StackRecord) -> cluster.Target:
    return cluster.Target(record.cluster, record.context, record.kubeconfig)


def kube_of(record: state.StackRecord) -> kube.Kube:
    return kube.Kube(tools.kubectl(), record.context, record.kubeconfig)


def pulumi_for(target: cluster.Target) -> tools.PulumiTools:
    """The local control plane's stacks use the toolchain that runs it; others any CLI."""
    return tools.pulumi_tools(toolchain_only=target.cluster == cluster.LOCAL)


def check_chart_repositories(stack_file: stackfile.StackFile) -> None:
    """A Helm release that cannot fetch its chart would stop a deploy halfway: every chart
    repository the stack installs from must answer first."""
    for repository in stackfile.chart_repositories(stack_file):
        if repository.startswith("oci://"):
            host = repository.removeprefix("oci://").split("/")[0]
            probe = f"https://{host}/v2/"
        else:
            probe = repository.rstrip("/") + "/index.yaml"
        try:
            urllib.request.urlopen(probe, timeout=20).close()
        except urllib.error.HTTPError:
            continue  # it answered (a registry asks for a token first)
        except (urllib.error.URLError, OSError) as error:
            raise UserError(
                f"the chart repository {repository} cannot be reached ({probe}: {error}): point "
                "kserve.chartRepository / kserve.certManager.chartRepository at a mirror, or set "
                "kserve.install: false if KServe and cert-manager are already installed"
            ) from error


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UserError(f"{question} needs a confirmation: not a terminal, so pass --yes")
    answer = console.err.input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UserError("stopped: nothing was changed")


@dataclass(frozen=True)
class Deployed:
    record: state.StackRecord
    outputs: dict[str, Any]
    changes: str


def up(
    stack: str, context: str | None = None, yes: bool = False, build_images: bool = True
) -> Deployed:
    """Stands the stack up (or updates it) on its pinned cluster."""
    stack_file = read_stack(stack)
    record = state.load(stack)
    pinned = target_of(record) if record is not None and record.context else None
    own = cluster.OWN_CLUSTER.get(stack)
    docker = pinned is not None or own != cluster.KIND or tools.docker_ready()
    target = cluster.resolve(stack_file, pinned, context, docker)
    if pinned is None and target.cluster == cluster.CONTEXT:
        # Secrets only the user knows, missing: said now, before any stack exists.
        missing = secrets.missing_supplied(stack)
        if missing:
            raise UserError(secrets.supply_message(stack, missing))
    check_chart_repositories(stack_file)
    if target.cluster == cluster.LOCAL:
        cluster.build_toolchain()
    pulumi = pulumi_for(target)
    console.say(f"stack {stack} → {target.describe()}; Pulumi CLI: {pulumi.source}")
    cluster.prepare(target)
    reason = kube.Kube(tools.kubectl(), target.context, target.kubeconfig).reachable()
    if reason is not None:
        raise UserError(f"kube context {target.context} does not answer: {reason}")

    if record is None:
        backend = state.backend_for(stack)
        record = state.StackRecord(
            stack,
            backend,
            state.passphrase_for(backend, stack),
            target.cluster,
            target.context,
            target.kubeconfig,
        )
    elif pinned is None:
        record = replace(
            record, cluster=target.cluster, context=target.context, kubeconfig=target.kubeconfig
        )
    live = workspace.open_stack(record, pulumi, create=True)
    record.save()
    if (
        record.passphrase_file != state.PASSPHRASE_FROM_ENVIRONMENT
        and record.backend == state.local_backend()
    ):
        console.say(f"secrets passphrase: {record.passphrase_file} (back it up)")
    secrets.bootstrap(record, pulumi)
    in_config = live.get_all_config().get(cluster.CONTEXT_KEY)
    if in_config is None:
        live.set_config(cluster.CONTEXT_KEY, auto.ConfigValue(target.context))
    elif in_config.value != target.context:
        raise UserError(
            f"stack {stack}'s config pins kube context '{in_config.value}', its record here "
            f"'{target.context}' ({record.path}): remove the stale one"
        )
    if target.cluster == cluster.KIND and build_images:
        images.load(images.of_stack(stack), cluster.kind_cluster(target.context))

    if not yes:
        preview(stack, record=record, pulumi=pulumi)
        confirm(f"deploy these changes to stack {stack}?", yes=False)
    with workspace.progress(f"pulumi up of stack {stack}") as (on_event, tally):
        try:
            result = live.up(on_event=on_event, color="never", suppress_outputs=True)
        except auto.CommandError as error:
            raise workspace.failure(f"pulumi up of stack {stack}", error, tally) from error
    return Deployed(record, workspace.outputs(live), tally.summary() or str(result.summary.result))


@dataclass(frozen=True)
class Previewed:
    changes: dict[str, int]
    steps: list[dict[str, Any]]

    def changed(self) -> dict[str, int]:
        return {op: n for op, n in self.changes.items() if op != "same" and n}


def preview(
    stack: str,
    record: state.StackRecord | None = None,
    pulumi: tools.PulumiTools | None = None,
    policy_pack: str | None = None,
    expect_no_changes: bool = False,
) -> Previewed:
    """What `up` would change, resource by resource."""
    record = record or record_of(stack)
    pulumi = pulumi or pulumi_for(target_of(record))
    live = workspace.open_stack(record, pulumi)
    steps: list[dict[str, Any]] = []

    def keep(event: auto.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            op = meta.op.value if hasattr(meta.op, "value") else str(meta.op)
            steps.append({"op": op, "urn": meta.urn, "type": meta.type})

    with workspace.progress(f"preview of stack {stack}") as (on_event, tally):

        def both(event: auto.EngineEvent) -> None:
            keep(event)
            on_event(event)

        try:
            result = live.preview(
                on_event=both,
                color="never",
                policy_packs=[policy_pack] if policy_pack else None,
                expect_no_changes=expect_no_changes or None,
            )
        except auto.CommandError as error:
            raise workspace.failure(f"preview of stack {stack}", error, tally) from error
    found = Previewed(
        {str(getattr(op, "value", op)): n for op, n in result.change_summary.items()}, steps
    )
    console.say(
        f"stack {stack}: "
        + (", ".join(f"{n} to {op}" for op, n in found.changed().items()) or "no changes")
    )
    return found


def leftovers(k: kube.Kube) -> list[str]:
    """Everything labelled as the platform's that is still there."""
    found = []
    for kind in LEFTOVER_KINDS:
        result = k.run("get", kind, "-A", "-l", SELECTOR, "--no-headers", "-o", "name", timeout=60)
        found += [line for line in result.stdout.split() if line]
    return found


def down(stack: str, yes: bool = False, delete_cluster: bool = False, wait: float = 300) -> None:
    """Destroys the stack, then checks that nothing labelled as the platform's is left."""
    record = record_of(stack)
    pulumi = pulumi_for(target_of(record))
    live = workspace.open_stack(record, pulumi)
    confirm(f"destroy every resource of stack {stack} ({target_of(record).describe()})?", yes)
    with workspace.progress(f"pulumi destroy of stack {stack}") as (on_event, tally):
        try:
            live.destroy(on_event=on_event, color="never")
        except auto.CommandError as error:
            raise workspace.failure(f"pulumi destroy of stack {stack}", error, tally) from error
    k = kube_of(record)
    deadline = time.monotonic() + wait
    left = leftovers(k)
    while left and time.monotonic() < deadline:
        time.sleep(5)
        left = leftovers(k)
    if left:
        raise UserError(
            f"destroyed, but these objects labelled {SELECTOR} are still there after "
            f"{wait:.0f} s:\n  " + "\n  ".join(left)
        )
    console.say(f"stack {stack}: destroyed; nothing labelled {SELECTOR} remains")
    if delete_cluster:
        cluster.teardown(target_of(record))


def namespace_of(stack: str) -> str:
    return stackfile.read(stack).config().namespace


def config_of(stack: str) -> config.PlatformConfig:
    return stackfile.read(stack).config()
