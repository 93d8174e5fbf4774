"""Pulumi entry point: stack config -> Platform -> stack outputs."""

import sys
from pathlib import Path

# Pulumi runs this file by path; make the `infra` package importable from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra import config, platform

platform.deploy(config.from_pulumi())
