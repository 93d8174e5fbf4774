"""The scripts' behaviour where no cluster, Docker or backend is needed to see it."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PULUMI = "github.com/pulumi/pulumi/pkg/v3"
UV_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"][
    "required-version"
].removeprefix("==")


def fake_bin(tmp_path: Path, **commands: str) -> Path:
    """A directory of stand-in commands (name -> shell body), put first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in commands.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def run(script: str, *args: str, path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The script with `path` first on PATH (or, given PATH in `env`, that PATH alone)."""
    return subprocess.run(
        [str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{path}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def path_without(tmp_path: Path, *commands: str) -> str:
    """This PATH with the commands hidden: each directory that holds one is replaced by a
    directory of links to everything else in it."""
    directories = []
    for index, directory in enumerate(os.environ["PATH"].split(os.pathsep)):
        if not directory or not Path(directory).is_dir():
            continue
        if not any(os.access(Path(directory) / c, os.X_OK) for c in commands):
            directories.append(directory)
            continue
        shadow = Path(tempfile.mkdtemp(prefix=f"path-{index}-", dir=tmp_path))
        for entry in Path(directory).iterdir():
            if entry.name not in commands:
                (shadow / entry.name).symlink_to(entry)
        directories.append(str(shadow))
    path = os.pathsep.join(directories)
    assert all(shutil.which(c, path=path) is None for c in commands)
    return path


def test_kind_test_stops_before_creating_anything_without_docker(tmp_path: Path) -> None:
    stack_file = ROOT / "stacks" / "Pulumi.kind.yaml"
    before = stack_file.read_text()
    # A `docker` whose engine does not answer, and a `kind` that records any call.
    calls = tmp_path / "kind-calls"
    path = fake_bin(
        tmp_path,
        docker="echo 'Cannot connect to the Docker daemon' >&2; exit 1",
        kind=f'echo "$@" >> {calls}',
    )
    artifacts = tmp_path / "artifacts"
    result = run("kind-test.sh", path=path, MLOPS_KIND_ARTIFACTS=str(artifacts))
    assert result.returncode == 2, result.stderr
    assert "no Docker engine answers (docker info)" in result.stderr
    assert "Nothing was created." in result.stderr
    assert "./scripts/test.sh -m integration" in result.stderr
    assert not calls.exists() and not artifacts.exists()
    assert stack_file.read_text() == before


def go_mod_pin(go_mod: str, module: str) -> str:
    """The version a go.mod's text requires of a module (a `require` line or block entry)."""
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+v(\S+)", go_mod, re.MULTILINE)
    assert found, f"go.mod requires no {module}"
    return found.group(1)


def test_pulumi_cli_version_is_the_toolchain_pin_without_go(tmp_path: Path) -> None:
    result = run("pulumi-cli.sh", "version", path=tmp_path, PATH=path_without(tmp_path, "go"))
    assert result.returncode == 0, result.stderr
    go_mod = (ROOT / "tools" / "pulumi" / "go.mod").read_text()
    assert result.stdout == f"{go_mod_pin(go_mod, PULUMI)}\n"


def pinned_version(tmp_path: Path, go_mod: str) -> subprocess.CompletedProcess[str]:
    """scripts/lib/go-tools.sh's pinned_version of the Pulumi module, over this go.mod text."""
    (tmp_path / "pulumi").mkdir(exist_ok=True)
    (tmp_path / "pulumi" / "go.mod").write_text(go_mod)
    return subprocess.run(
        [
            "bash",
            "-c",
            'source scripts/lib/go-tools.sh; TOOLS_DIR="$1"; pinned_version pulumi "$2"',
            "-",
            str(tmp_path),
            PULUMI,
        ],
        cwd=ROOT,
        env={**os.environ, "PATH": path_without(tmp_path, "go")},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_pin_is_read_from_a_require_line_or_block_and_a_missing_one_is_named(
    tmp_path: Path,
) -> None:
    block = (
        "module m\n\nrequire (\n\tgithub.com/pulumi/pulumi/sdk/v3 v3.200.0\n"
        f"\t{PULUMI} v3.274.1 // indirect\n)\n"
    )
    assert pinned_version(tmp_path, block).stdout == "v3.274.1\n"
    line = f"module m\n\nrequire {PULUMI} v3.275.0\n\nrequire (\n\tother v1.0.0\n)\n"
    assert pinned_version(tmp_path, line).stdout == "v3.275.0\n"
    missing = pinned_version(tmp_path, "module m\n\n// github.com/pulumi/pulumi/pkg/v3 v3.1.0\n")
    assert missing.returncode == 1
    assert missing.stderr == f"tools/pulumi/go.mod requires no {PULUMI}\n"


def uv_wheel(directory: Path, calls: Path) -> None:
    """A wheel named uv at the pinned version, laid out as PyPI's (the `uv` binary among the
    wheel's scripts); its `uv` answers --version and records every other call."""
    name = f"uv-{UV_VERSION}"
    files = {
        f"{name}.data/scripts/uv": (
            f'#!/bin/sh\nif [ "$1" = --version ]; then echo "uv {UV_VERSION}"; exit 0; fi\n'
            f'echo "$0 $*" >> {calls}\n'
        ),
        f"{name}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: uv\nVersion: {UV_VERSION}\n",
        f"{name}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: false\nTag: py3-none-any\n"
        ),
    }

    def hashed(text: str) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        return f"sha256={digest.decode()},{len(text.encode())}"

    record = "".join(f"{path},{hashed(text)}\n" for path, text in files.items())
    directory.mkdir()
    with zipfile.ZipFile(directory / f"{name}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            entry = zipfile.ZipInfo(path)
            # Executable, as the binary is in PyPI's wheel: pip keeps the mode.
            entry.external_attr = (stat.S_IFREG | (0o755 if "/scripts/" in path else 0o644)) << 16
            wheel.writestr(entry, text)
        wheel.writestr(f"{name}.dist-info/RECORD", record + f"{name}.dist-info/RECORD,,\n")


def externally_managed_python(tmp_path: Path, refused: Path) -> Path:
    """A python3 that, as Debian 12's and Ubuntu 24.04's, refuses `pip install` (PEP 668)."""
    real = os.path.realpath(sys.executable)
    return fake_bin(
        tmp_path,
        python3=(
            'if [ "$1" = -m ] && [ "$2" = pip ]; then\n'
            f'  echo "python3 $*" >> {refused}\n'
            '  echo "error: externally-managed-environment" >&2\n'
            "  exit 1\n"
            "fi\n"
            f'exec {real} "$@"'
        ),
    )


def test_setup_installs_the_pinned_uv_into_a_private_venv_where_pip_is_refused(
    tmp_path: Path,
) -> None:
    """No uv on PATH and a system Python that refuses pip: setup.sh makes a virtualenv under
    the cache, installs uv there (from a local index standing in for PyPI) and syncs with it."""
    calls, refused = tmp_path / "uv-calls", tmp_path / "refused"
    uv_wheel(tmp_path / "index", calls)
    bin_dir = externally_managed_python(tmp_path, refused)
    environment = {
        "PATH": f"{bin_dir}:{path_without(tmp_path, 'uv')}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(tmp_path / "index"),
    }
    # The stand-in does refuse what setup.sh used to run.
    pip = subprocess.run(
        ["python3", "-m", "pip", "install", f"uv=={UV_VERSION}"],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        check=False,
    )
    assert pip.returncode == 1 and "externally-managed-environment" in pip.stderr
    refused.unlink()

    private_uv = tmp_path / "cache" / "mlops-platform" / "uv" / UV_VERSION / "bin" / "uv"
    result = run("setup.sh", path=bin_dir, **environment)
    assert result.returncode == 0, result.stderr
    assert f"installing uv {UV_VERSION} from PyPI into {private_uv.parent.parent}" in result.stderr
    assert calls.read_text() == f"{private_uv} sync --locked --quiet --group workloads\n"
    assert not refused.exists()
    # The next run finds it there and installs nothing.
    result = run("setup.sh", path=bin_dir, **environment)
    assert result.returncode == 0, result.stderr
    assert "installing uv" not in result.stderr
    assert calls.read_text().splitlines()[-1] == (
        f"{private_uv} sync --locked --quiet --group workloads"
    )


def test_setup_uses_a_uv_of_the_pinned_version_on_path(tmp_path: Path) -> None:
    calls = tmp_path / "uv-calls"
    bin_dir = fake_bin(
        tmp_path,
        uv=(
            f'if [ "$1" = --version ]; then echo "uv {UV_VERSION}"; exit 0; fi\n'
            f'echo "$0 $*" >> {calls}'
        ),
    )
    result = run("setup.sh", path=bin_dir, XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    assert calls.read_text() == f"{bin_dir}/uv sync --locked --quiet --group workloads\n"
    assert not (tmp_path / "cache").exists()


def test_setup_without_python3_venv_names_the_package_to_install(tmp_path: Path) -> None:
    """Debian's python3 without python3-venv: no ensurepip, so `python3 -m venv` fails."""
    real = os.path.realpath(sys.executable)
    bin_dir = fake_bin(
        tmp_path,
        python3=(
            'if [ "$1" = -m ] && [ "$2" = venv ]; then\n'
            '  echo "The virtual environment was not created successfully because ensurepip is '
            'not available." >&2\n'
            "  exit 1\n"
            "fi\n"
            'case "$2" in *ensurepip*)\n'
            "  echo \"ModuleNotFoundError: No module named 'ensurepip'\" >&2\n"
            "  exit 1 ;;\n"
            "esac\n"
            f'exec {real} "$@"'
        ),
    )
    cache = tmp_path / "cache"
    result = run(
        "setup.sh",
        path=bin_dir,
        PATH=f"{bin_dir}:{path_without(tmp_path, 'uv')}",
        XDG_CACHE_HOME=str(cache),
    )
    assert result.returncode == 1
    message = result.stderr.splitlines()[-1]
    assert message.startswith("[setup] python3 -m venv cannot work without ensurepip: ")
    assert "install the python3-venv package (sudo apt-get install python3-venv" in message
    assert "https://docs.astral.sh/uv/getting-started/installation/" in message
    assert "The virtual environment was not created" not in result.stderr
    assert not (cache / "mlops-platform" / "uv" / UV_VERSION).exists()


def test_prerequisites_add_python3_venv_only_where_python3_lacks_ensurepip(
    tmp_path: Path,
) -> None:
    real = os.path.realpath(sys.executable)
    installs = tmp_path / "apt-get-calls"
    bin_dir = fake_bin(
        tmp_path,
        python3=(
            f'case "$2" in *ensurepip*) [ -e {tmp_path}/no-ensurepip ] && exit 1 ;; esac\n'
            f'exec {real} "$@"'
        ),
        **{"apt-get": f'echo "$*" >> {installs}', "sudo": '"$@"'},
    )
    assert shutil.which("apt-get", path=f"{bin_dir}:{os.environ['PATH']}") == str(
        bin_dir / "apt-get"
    )
    (tmp_path / "no-ensurepip").touch()
    result = run("install-prerequisites.sh", path=bin_dir)
    assert result.returncode == 0, result.stderr
    (install,) = [c for c in installs.read_text().splitlines() if c.startswith("install")]
    assert "python3-venv" in install.split()

    (tmp_path / "no-ensurepip").unlink()
    installs.unlink(missing_ok=True)
    result = run("install-prerequisites.sh", path=bin_dir)
    assert result.returncode == 0, result.stderr
    calls = installs.read_text() if installs.exists() else ""
    assert "python3-venv" not in calls
