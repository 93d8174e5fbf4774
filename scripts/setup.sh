#!/usr/bin/env bash
# Creates .venv at the repository root (the one Pulumi.yaml names) from uv.lock: the Pulumi
# program, the mlops command, the test tools and the ML workloads' clients (pyflyte, feast,
# mlflow), so every command in the README runs from it and no later run drops a group.
#
#   ./scripts/setup.sh              # .venv
#   ./scripts/setup.sh --serving    # .venv-serving: the model server (dependency group serving)
#   ./scripts/setup.sh --policy     # .venv-policy: the policy pack (dependency group policy)
#
# The serving group conflicts with the workloads group (mlserver 1.7 pins an older fastapi), so
# it gets its own environment, as it gets its own image (workloads/Dockerfile). So does the policy
# group (pulumi-policy pins an older protobuf than kserve), which policy/PulumiPolicy.yaml names.
set -euo pipefail
cd "$(dirname "$0")/.."

# uv's version is pinned once, in pyproject.toml ([tool.uv] required-version). Without that uv on
# PATH, it goes into a private virtualenv: Debian 12 and Ubuntu 23.04+ refuse `pip install` into
# the system Python (PEP 668, externally-managed-environment).
uv_version=$(python3 -c 'import tomllib
with open("pyproject.toml", "rb") as f:
    print(tomllib.load(f)["tool"]["uv"]["required-version"].removeprefix("=="))')
uv=uv
if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | awk '{print $2}')" != "$uv_version" ]; then
  uv_venv="${XDG_CACHE_HOME:-$HOME/.cache}/mlops-platform/uv/$uv_version"
  uv="$uv_venv/bin/uv"
  if [ "$("$uv" --version 2>/dev/null | awk '{print $2}')" != "$uv_version" ]; then
    echo "[setup] installing uv $uv_version from PyPI into $uv_venv" >&2
    rm -rf "$uv_venv"
    if ! venv_output=$(python3 -m venv "$uv_venv" 2>&1); then
      rm -rf "$uv_venv"
      # Debian and Ubuntu ship ensurepip, which venv needs, in the python3-venv package.
      if python3 -c 'import ensurepip' 2>/dev/null; then
        echo "$venv_output" >&2
        echo "[setup] python3 -m venv $uv_venv failed (above): uv $uv_version is not installed" >&2
      else
        echo "[setup] python3 -m venv cannot work without ensurepip: install the python3-venv" \
          "package (sudo apt-get install python3-venv, or ./scripts/install-prerequisites.sh)," \
          "or install uv $uv_version yourself (https://docs.astral.sh/uv/getting-started/installation/)" >&2
      fi
      exit 1
    fi
    "$uv_venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
  fi
fi
if [ "${1:-}" = "--serving" ]; then
  UV_PROJECT_ENVIRONMENT=.venv-serving "$uv" sync --locked --quiet --no-default-groups --group serving
  echo "[setup] .venv-serving ready: $(.venv-serving/bin/python -c 'import importlib.metadata as m; print("mlserver", m.version("mlserver"), "mlflow", m.version("mlflow"))')" >&2
  exit 0
fi
if [ "${1:-}" = "--policy" ]; then
  UV_PROJECT_ENVIRONMENT=.venv-policy "$uv" sync --locked --quiet --no-default-groups --group policy
  echo "[setup] .venv-policy ready: $(.venv-policy/bin/python -c 'import importlib.metadata as m; print("pulumi-policy", m.version("pulumi-policy"), "pulumi", m.version("pulumi"))')" >&2
  exit 0
fi
if [ $# -gt 0 ]; then
  echo "usage: ./scripts/setup.sh [--serving | --policy] (unknown: $*)" >&2
  exit 2
fi
"$uv" sync --locked --quiet --group workloads
echo "[setup] .venv ready: $(.venv/bin/python --version), $(.venv/bin/python -c 'import pulumi, importlib.metadata as m; print("pulumi", m.version("pulumi"), "pulumi-kubernetes", m.version("pulumi-kubernetes"))')" >&2
