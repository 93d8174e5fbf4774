"""The checkout `mlops` drives: it sits one level above this package."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACKS_DIR = ROOT / "stacks"
SCRIPTS = ROOT / "scripts"
