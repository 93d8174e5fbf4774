"""Stack files (`stacks/Pulumi.<stack>.yaml`) read without the Pulumi CLI: the plain config
validated as `pulumi up` would, the secret plan (`set`: the stack has it, `generate`: a random
value will do, `generate-rsa`: an RSA private key, `supply`: only its owner knows it, an external
service's login or a registry token, `unused`: its component is off), the project images and
the Helm chart repositories a deploy pulls from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra import config

STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"
# Passes every secret rule, the URL-shaped ones (alert receivers' URLs) included.
PLACEHOLDER = "https://placeholder.invalid/{key}"


@dataclass(frozen=True)
class StackFile:
    stack: str
    # Plain values in Pulumi's raw form (`project:key` -> string, objects as JSON).
    values: dict[str, str]
    # Full names of the keys stored encrypted (`secure:`); their values cannot be read here.
    secure: frozenset[str]

    def with_placeholders(self) -> tuple[dict[str, str], frozenset[str]]:
        """Raw config with a placeholder for every secret, stored or not, and the secret keys."""
        raw = dict(self.values)
        keys = set(self.secure)
        for _, key, marker in config.SECRETS:
            full_key = f"{config.PROJECT}:{key}"
            if full_key not in raw:
                raw[full_key] = marker.shape.format(PLACEHOLDER.format(key=key))
                keys.add(full_key)
        return raw, frozenset(keys)

    def config(self) -> config.PlatformConfig:
        """The stack's plain config, validated as `pulumi up` would, secrets as placeholders."""
        return config.load(self.stack, *self.with_placeholders())


def read(stack: str, stacks_dir: Path = STACKS_DIR) -> StackFile:
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(p.name.split(".")[1] for p in stacks_dir.glob("Pulumi.*.yaml"))
        raise config.ConfigError(f"no stack file {path}; known stacks: {', '.join(known)}")
    document = yaml.safe_load(path.read_text()) or {}
    values: dict[str, str] = {}
    secure: set[str] = set()
    for key, value in (document.get("config") or {}).items():
        full_key = key if ":" in key else f"{config.PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            secure.add(full_key)
        else:
            values[full_key] = value if isinstance(value, str) else json.dumps(value)
    return StackFile(stack, values, frozenset(secure))


def secret_plan(stack_file: StackFile) -> dict[str, str]:
    """What each secret key needs; validates the stack's plain config on the way."""
    cfg = stack_file.config()
    plan = {}
    for section_key, key, marker in config.SECRETS:
        section = config.section(cfg, section_key)
        external = getattr(section, "external", None) is not None
        if f"{config.PROJECT}:{key}" in stack_file.secure:
            plan[key] = "set"
        elif section is None:
            plan[key] = "unused"
        elif not marker.generated or (external and marker.supplied_with_external):
            plan[key] = "supply"
        else:
            plan[key] = "generate" if marker.kind == "token" else f"generate-{marker.kind}"
    return plan


def chart_repositories(stack_file: StackFile) -> list[str]:
    """The Helm chart repositories a deploy of the stack pulls from (none when KServe is off
    or already installed; not cert-manager's when the cluster runs its own)."""
    kserve = stack_file.config().kserve
    if kserve is None or not kserve.install:
        return []
    cert_manager = [kserve.cert_manager.chart_repository] if kserve.cert_manager.install else []
    return [*cert_manager, kserve.chart_repository]


def project_images(stack_file: StackFile) -> dict[str, str]:
    """The workloads/Dockerfile target of each project image, and the reference the stack
    runs it under."""
    images = stack_file.config().images
    return {"workloads": images.workloads, "serving": images.serving}
