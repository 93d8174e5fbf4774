"""Fixtures shared by every test tier, and each test's tier marker."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from mlops import render
from tests.support.rendering import STACKS, stack_rendering

# Generated inputs are the same on every run (derandomized, no example database), so a defect
# one run finds, every run finds, here and in CI; a failure prints the example that shows it.
settings.register_profile("mlops", derandomize=True, database=None, deadline=None)
settings.load_profile("mlops")

TIERS = ("unit", "contract", "workloads", "integration")
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks each test with its tier, the folder it is in: `pytest -m unit` runs one tier."""
    for item in items:
        tier = item.path.resolve().relative_to(HERE).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in one of tests/{TIERS}")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> render.Rendering:
    """Each stack file rendered under mocks, with sentinel secret values."""
    return stack_rendering(request.param)
