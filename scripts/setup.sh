#!/usr/bin/env bash
# Creates .venv at the repository root (the one Pulumi.yaml names) from uv.lock.
#
#   ./scripts/setup.sh              # the Pulumi program and the test tools
#   ./scripts/setup.sh --group workloads   # also the ML workload libraries
set -euo pipefail
cd "$(dirname "$0")/.."

# uv's version is pinned once, in pyproject.toml ([tool.uv] required-version).
uv_version=$(python3 -c 'import tomllib
with open("pyproject.toml", "rb") as f:
    print(tomllib.load(f)["tool"]["uv"]["required-version"].removeprefix("=="))')
if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | awk '{print $2}')" != "$uv_version" ]; then
  echo "[setup] installing uv $uv_version from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
fi
uv sync --locked --quiet "$@"
echo "[setup] .venv ready: $(.venv/bin/python --version), $(.venv/bin/python -c 'import pulumi, importlib.metadata as m; print("pulumi", m.version("pulumi"), "pulumi-kubernetes", m.version("pulumi-kubernetes"))')" >&2
