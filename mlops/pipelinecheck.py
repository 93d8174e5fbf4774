"""`mlops pipeline check`: for each stack deploy.yml deploys, what its jobs need and whether it
is there. GitHub's side is read with `gh`; without it, each check it could not make says how to
make it by hand."""

from __future__ import annotations

from dataclasses import dataclass

from mlops import cluster, deploy, github, stackfile, state, workspace
from mlops.errors import UserError
from mlops.pipelinesetup import (
    KUBECONFIG_DATA,
    PASSPHRASE,
    READ_SUFFIX,
    backend_secret,
    environments,
    pipeline_stacks,
    read_kubeconfig_by_hand,
    reviewed_stack,
    reviewers_by_hand,
    stack_file_changed,
    unreachable,
)

OK, MISSING, UNCHECKED = "ok", "missing", "not checked"


@dataclass(frozen=True)
class Item:
    """One need of one stack: `state` ok, missing or not checked; `todo` what to do when not ok."""

    stack: str
    what: str
    state: str
    detail: str = ""
    todo: str = ""


def check(repo: str | None) -> list[Item]:
    gh = github.find()
    hub = github.GitHub(gh, github.repository(gh, repo)) if gh else None
    items = []
    if hub is None:
        why = github.missing_reason()
        items.append(
            Item("all", "the GitHub CLI", UNCHECKED, why, f"{github.INSTALL}, check again")
        )
    for stack in pipeline_stacks():
        record = _record(stack)
        items += stack_items(stack, record)
        items += github_items(stack, record.backend if record else None, hub)
    return items


def _record(stack: str) -> state.StackRecord | None:
    try:
        return deploy.record_of(stack)
    except UserError:
        return None


def first_up(stack: str) -> str:
    return (
        "deploy it once with the backend the pipeline will use: PULUMI_BACKEND_URL=<url> "
        f"mlops up {stack} --context <context>, then commit and push stacks/Pulumi.{stack}.yaml"
    )


def stack_items(stack: str, record: state.StackRecord | None) -> list[Item]:
    """The stack's side: pinned, its secrets committed, in a backend a runner reaches."""
    stack_file = stackfile.read(stack)
    path = f"stacks/Pulumi.{stack}.yaml"
    pinned = stack_file.values.get(cluster.CONTEXT_KEY)
    items = [
        Item(stack, "pinned to a kube context", OK, pinned)
        if pinned
        else Item(stack, "pinned to a kube context", MISSING, f"{path} pins none", first_up(stack))
    ]
    lacking = [
        k for k, a in stackfile.secret_plan(stack_file).items() if a not in ("set", "unused")
    ]
    if lacking:
        named = ", ".join(lacking[:3]) + (", ..." if len(lacking) > 3 else "")
        todo = f"mlops secrets bootstrap {stack}, then commit and push {path}" if pinned else ""
        items.append(
            Item(
                stack,
                "secrets in the stack file",
                MISSING,
                f"lacks {len(lacking)}: {named}",
                todo or first_up(stack),
            )
        )
    elif stack_file_changed(stack):
        items.append(
            Item(stack, "stack file committed", MISSING, "changed", f"commit and push {path}")
        )
    else:
        items.append(Item(stack, "secrets in the stack file", OK, "committed"))
    items.append(backend_item(stack, record, pinned is not None))
    return items


def backend_item(stack: str, record: state.StackRecord | None, pinned: bool) -> Item:
    what = "stack in its backend"
    if record is None:
        if not pinned:
            return Item(stack, what, MISSING, "never deployed", first_up(stack))
        return Item(
            stack,
            what,
            UNCHECKED,
            "no record of it on this machine",
            f"check it where it was deployed from, or here: PULUMI_BACKEND_URL=<url> "
            f"{PASSPHRASE}=<passphrase> mlops pipeline check",
        )
    why = unreachable(record)
    if why is not None:
        return Item(stack, what, MISSING, why, first_up(stack))
    try:
        pulumi = deploy.pulumi_for(deploy.target_of(record))
    except UserError as error:
        return Item(stack, what, UNCHECKED, str(error), "install the Pulumi CLI, check again")
    try:
        workspace.open_stack(record, pulumi)
    except UserError as error:
        return Item(stack, what, MISSING, str(error), first_up(stack))
    return Item(stack, what, OK, record.backend)


def needed_secrets(stack: str, backend: str | None) -> list[tuple[str, ...]]:
    """Each secret a job needs, as the names any one of which will do."""
    needed = [backend_secret(backend)]
    if state.passphrase_needed(stack, backend or ""):
        needed.append((PASSPHRASE,))
    return [*needed, (KUBECONFIG_DATA,)]


def github_items(stack: str, backend: str | None, hub: github.GitHub | None) -> list[Item]:
    """GitHub's side: both environments, their secrets, the reviewers of the last one."""
    items = []
    needed = needed_secrets(stack, backend)
    names = " and ".join(" or ".join(n) for n in needed)
    for name in environments(stack):
        reviewed = name == reviewed_stack()
        if hub is None:
            why = "needs gh"
            settings = f"Settings → Environments → {name}"
            items += [
                Item(
                    stack,
                    f"environment {name}",
                    UNCHECKED,
                    why,
                    f"Settings → Environments: is there an environment {name}?",
                ),
                Item(
                    stack,
                    f"secrets of {name}",
                    UNCHECKED,
                    why,
                    f"{settings} → Environment secrets: {names}",
                ),
            ]
            if reviewed:
                items.append(
                    Item(
                        stack,
                        f"reviewers of {name}",
                        UNCHECKED,
                        why,
                        f"{settings} → Required reviewers: at least one person or team",
                    )
                )
            continue
        found = hub.environment(name)
        if found is None:
            items.append(
                Item(stack, f"environment {name}", MISSING, "", f"mlops pipeline setup {stack}")
            )
            if reviewed:
                todo = reviewers_by_hand(hub.repo, name)
                items.append(Item(stack, f"reviewers of {name}", MISSING, "", todo))
            continue
        items.append(Item(stack, f"environment {name}", OK))
        have = hub.secret_names(name)
        lacking = [" or ".join(n) for n in needed if not have.intersection(n)]
        todo = f"mlops pipeline setup {stack}"
        if lacking == [KUBECONFIG_DATA] and name.endswith(READ_SUFFIX):
            todo = read_kubeconfig_by_hand(hub.repo, stack)
        items.append(
            Item(stack, f"secrets of {name}", MISSING, "lacks " + ", ".join(lacking), todo)
            if lacking
            else Item(stack, f"secrets of {name}", OK, ", ".join(sorted(have)))
        )
        if reviewed:
            items.append(
                Item(stack, f"reviewers of {name}", OK, ", ".join(found.reviewers))
                if found.reviewers
                else Item(
                    stack, f"reviewers of {name}", MISSING, "", reviewers_by_hand(hub.repo, name)
                )
            )
    return items
