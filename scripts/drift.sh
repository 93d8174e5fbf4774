#!/usr/bin/env bash
# Drift detection: compares a deployed stack's state with its cluster, changing neither
# (`pulumi refresh --preview-only`), and fails naming each resource that drifted.
#
#   scripts/drift.sh <stack>
#
# Needs the stack's backend and the cluster's credentials, as a deploy does (the scheduled
# drift job of .github/workflows/deploy.yml, or by hand). Exit status: 0 no drift, 1 drift (the
# resources are listed, and added to the job summary in GitHub Actions), 2 the check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

stack="${1:?usage: scripts/drift.sh <stack>}"
command -v pulumi >/dev/null 2>&1 || { echo "error: the pulumi CLI is not on PATH" >&2; exit 2; }
[ -x .venv/bin/python ] || ./scripts/setup.sh

report="$(mktemp)"
trap 'rm -f "$report"' EXIT
rc=0
pulumi refresh --preview-only --json --stack "$stack" --non-interactive >"$report" || rc=$?
.venv/bin/python - "$stack" "$report" "$rc" <<'PY'
import json, os, sys

stack, path, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    digest = json.load(open(path))
except ValueError:
    digest = None
if rc != 0 or not isinstance(digest, dict):
    print(f"drift: the refresh preview of {stack} failed (exit {rc})", file=sys.stderr)
    if isinstance(digest, dict):
        for d in digest.get("diagnostics") or []:
            print(f"  {d.get('severity')}: {d.get('message', '').strip()}", file=sys.stderr)
    sys.exit(2)


def change(step):
    """What a refresh found for one resource: None when the cluster matches its state."""
    old, new = step.get("oldState") or {}, step.get("newState")
    if step.get("op") in ("same", "read"):
        return None
    if step.get("op") != "refresh":
        reasons = ", ".join(map(str, step.get("diffReasons") or []))
        return f"{step['op']} {reasons}".strip()
    if new is None:
        return "gone"
    changed = sorted(
        key
        for key in set(old.get("outputs") or {}) | set(new.get("outputs") or {})
        if (old.get("outputs") or {}).get(key) != (new.get("outputs") or {}).get(key)
    )
    return f"changed {', '.join(changed)}" if changed else None


# A URN ends with `<parent types>$<type>::<name>`.
drifted = [
    (found, step["urn"].split("::")[-2].split("$")[-1], step["urn"].split("::")[-1])
    for step in digest.get("steps") or []
    if (found := change(step)) is not None
]
unexplained = {k: v for k, v in (digest.get("changeSummary") or {}).items() if k != "same" and v}
if unexplained and not drifted:
    drifted = [(f"{n} to {op}", "(pulumi refresh --preview-only)", "") for op, n in unexplained.items()]
if not drifted:
    print(f"drift: {stack} matches its cluster")
    sys.exit(0)
lines = [f"drift: {len(drifted)} resource(s) of {stack} differ from their state:"]
lines += [f"  {kind} {name}: {found}" for found, kind, name in drifted]
print("\n".join(lines), file=sys.stderr)
summary = os.environ.get("GITHUB_STEP_SUMMARY")
if summary:
    with open(summary, "a") as out:
        out.write(f"### Drift in `{stack}`\n\n| type | name | change |\n|---|---|---|\n")
        out.writelines(f"| `{kind}` | `{name}` | {found} |\n" for found, kind, name in drifted)
sys.exit(1)
PY
