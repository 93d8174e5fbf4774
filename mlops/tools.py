"""The external tools a stack's commands run, found (or built, or downloaded) in one place: the
Pulumi CLI with its kubernetes plugin, kubectl, Docker and kind.

The Pulumi CLI, in this order: the control-plane toolchain when it is built
(scripts/toolchain.sh: CLI, language host and the kubernetes plugin in its own PULUMI_HOME);
else a `pulumi` on PATH that is not older than the SDK in uv.lock; else the released CLI of
the version tools/pulumi/go.mod pins, downloaded once into ~/.cache/mlops-platform/pulumi.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mlops.errors import UserError
from mlops.paths import SCRIPTS

_EXPORT = re.compile(r'^export ([A-Z_][A-Z0-9_]*)="(.*)"$')


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlops-platform"


def pulumi_cli_pin() -> str:
    """The Pulumi CLI version tools/pulumi/go.mod pins (scripts/pulumi-cli.sh reads it; no Go
    needed)."""
    result = subprocess.run(
        [str(SCRIPTS / "pulumi-cli.sh"), "version"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise UserError(f"the pinned Pulumi CLI version: {result.stderr.strip()}")
    return result.stdout.strip()


def parse_exports(text: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The variables of `export NAME="value"` lines, `${NAME}` expanded from `base`."""
    values: dict[str, str] = {}
    lookup = {**(base if base is not None else os.environ), **values}
    for line in text.splitlines():
        match = _EXPORT.match(line.strip())
        if match is None:
            continue
        name, value = match.groups()
        value = re.sub(r"\$\{([A-Z_][A-Z0-9_]*)\}", lambda m: lookup.get(m.group(1), ""), value)
        values[name] = value
        lookup[name] = value
    return values


def toolchain_env() -> dict[str, str] | None:
    """The built toolchain's environment (PATH, PULUMI_HOME, ...), or None if not built."""
    result = subprocess.run(
        [str(SCRIPTS / "toolchain.sh"), "env"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return None
    return parse_exports(result.stdout)


@dataclass(frozen=True)
class PulumiTools:
    """A Pulumi CLI and the environment it runs in.

    root: the directory holding bin/pulumi (None: the `pulumi` on PATH).
    env: variables every Pulumi command of a stack runs with (PATH, PULUMI_HOME, ...).
    source: where it came from, for messages.
    """

    root: Path | None
    env: dict[str, str] = field(default_factory=dict)
    source: str = "PATH"

    @property
    def pulumi(self) -> str:
        return str(self.root / "bin" / "pulumi") if self.root else "pulumi"

    @property
    def home(self) -> str | None:
        return self.env.get("PULUMI_HOME")

    def exports(self) -> dict[str, str]:
        """What a shell needs to run this same CLI (and find its plugins)."""
        found = dict(self.env)
        if self.root is not None and "PATH" not in found:
            found["PATH"] = f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        return found


def _version(pulumi: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [pulumi, "version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    numbers = re.match(r"v?(\d+)\.(\d+)\.(\d+)", out.strip())
    return tuple(int(n) for n in numbers.groups()) if numbers else None


def _sdk_version() -> tuple[int, ...]:
    # The pulumi package has no __version__: its distribution metadata has the version.
    from importlib.metadata import version

    return tuple(int(n) for n in re.findall(r"\d+", version("pulumi"))[:3])


def pulumi_tools(*, toolchain_only: bool = False) -> PulumiTools:
    """The Pulumi CLI to run, as the module docstring orders them."""
    built = toolchain_env()
    if built is not None:
        return PulumiTools(Path(built["MLOPS_TOOLCHAIN_DIR"]), built, "the toolchain")
    if toolchain_only:
        raise UserError(
            "the control-plane toolchain is not built: run scripts/toolchain.sh (about 30 "
            "minutes the first time; needs Go 1.26)"
        )
    on_path = shutil.which("pulumi")
    if on_path:
        have = _version(on_path)
        if have is not None and have >= _sdk_version():
            return PulumiTools(None, {"PULUMI_SKIP_UPDATE_CHECK": "true"}, f"PATH ({on_path})")
    return download_pulumi()


def download_pulumi() -> PulumiTools:
    """The released CLI of the pinned version, downloaded once from get.pulumi.com."""
    from pulumi.automation import PulumiCommand
    from semver import VersionInfo

    version = pulumi_cli_pin()
    root = cache_dir() / "pulumi" / version
    try:
        PulumiCommand.install(root=str(root), version=VersionInfo.parse(version))
    except Exception as error:
        raise UserError(
            f"no Pulumi CLI: none on PATH at the SDK's version or newer, and the released "
            f"CLI {version} could not be downloaded ({error}); install it "
            "(https://www.pulumi.com/docs/install/) or build it: scripts/toolchain.sh"
        ) from error
    return PulumiTools(root, {"PULUMI_SKIP_UPDATE_CHECK": "true"}, f"the released CLI {version}")


def kubectl(tools: PulumiTools | None = None) -> str:
    """kubectl: the one on PATH, else the toolchain's."""
    found = shutil.which("kubectl")
    if found:
        return found
    built = toolchain_env()
    if built is not None:
        path = Path(built["MLOPS_TOOLCHAIN_DIR"]) / "bin" / "kubectl"
        if path.exists():
            return str(path)
    raise UserError(
        "kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/) or build "
        "the toolchain: scripts/toolchain.sh"
    )


def docker_ready() -> bool:
    """Whether a Docker engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=30, check=False
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def kind() -> str:
    """The kind CLI that tools/kind/go.mod pins (built with Go), else the one on PATH."""
    result = subprocess.run(
        [str(SCRIPTS / "kind.sh"), "path"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise UserError(result.stderr.strip() or "kind cannot be found or built")
    return result.stdout.strip()
