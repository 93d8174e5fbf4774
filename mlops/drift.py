"""`mlops drift <stack>`: a `pulumi refresh --preview-only --json` of the stack, read for the
resources that differ from their state. Exit status: 0 nothing drifted, 1 drift (one line per
resource on standard error, and a table in $GITHUB_STEP_SUMMARY when set), 2 the refresh failed
(its diagnostics, or the end of its error output, are printed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from mlops.paths import ROOT


@dataclass(frozen=True)
class Drift:
    type: str
    name: str
    change: str


def change(step: dict[str, Any]) -> str | None:
    """What the refresh found for one resource; None when the cluster matches its state."""
    op = step.get("op")
    if op in ("same", "read"):
        return None
    if op != "refresh":
        reasons = ", ".join(map(str, step.get("diffReasons") or []))
        return f"{op} {reasons}".strip()
    old, new = step.get("oldState") or {}, step.get("newState")
    if new is None:
        return "gone"
    before, after = old.get("outputs") or {}, new.get("outputs") or {}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return f"changed {', '.join(changed)}" if changed else None


def drifted(digest: dict[str, Any]) -> list[Drift]:
    """Every resource that differs; the engine's change summary backs up a step list that
    names none."""
    found = []
    for step in digest.get("steps") or []:
        what = change(step)
        if what is not None:
            # A URN ends with `<parent types>$<type>::<name>`.
            *_, types, name = step["urn"].split("::")
            found.append(Drift(types.split("$")[-1], name, what))
    summary = {k: v for k, v in (digest.get("changeSummary") or {}).items() if k != "same" and v}
    if summary and not found:
        found = [Drift("(unnamed)", "", f"{n} to {op}") for op, n in summary.items()]
    return found


def check(stack: str) -> int:
    """Runs the refresh preview of a deployed stack with its backend, passphrase and cluster,
    and judges it."""
    from mlops import deploy, workspace

    record = deploy.record_of(stack)
    pulumi = deploy.pulumi_for(deploy.target_of(record))
    workspace.open_stack(record, pulumi)
    command = ["refresh", "--preview-only", "--json", "--stack", stack, "--non-interactive"]
    result = subprocess.run(
        [pulumi.pulumi, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **workspace.environment(record, pulumi)},
        check=False,
    )
    return judge(stack, result.stdout, result.returncode, result.stderr)


def judge(stack: str, text: str, status: int, errors: str = "") -> int:
    """Reads the report of `pulumi refresh --preview-only --json` (its text, exit status and
    error output), says what drifted, and returns 0 (none), 1 (drift) or 2 (the refresh
    failed)."""
    try:
        digest = json.loads(text)
    except ValueError:
        digest = None
    if status != 0 or not isinstance(digest, dict):
        print(f"drift: the refresh preview of {stack} failed (exit {status})", file=sys.stderr)
        diagnostics = (digest or {}).get("diagnostics") if isinstance(digest, dict) else None
        for d in diagnostics or []:
            print(f"  {d.get('severity')}: {d.get('message', '').strip()}", file=sys.stderr)
        if not diagnostics:
            # Without a JSON report (no stack, no backend) the reason is on standard error.
            for line in errors.strip().splitlines()[-10:]:
                print(f"  {line}", file=sys.stderr)
        return 2
    found = drifted(digest)
    if not found:
        print(f"drift: {stack} matches its cluster")
        return 0
    print(f"drift: {len(found)} resource(s) of {stack} differ from their state:", file=sys.stderr)
    for d in found:
        print(f"  {d.type} {d.name}: {d.change}", file=sys.stderr)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as out:
            out.write(f"### Drift in `{stack}`\n\n| type | name | change |\n|---|---|---|\n")
            out.writelines(f"| `{d.type}` | `{d.name}` | {d.change} |\n" for d in found)
    return 1
