"""Fixtures shared by every test tier."""

from __future__ import annotations

import pytest

from infra import render
from tests.support import STACKS, stack_rendering


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> render.Rendering:
    """Each stack file rendered under mocks, with sentinel secret values."""
    return stack_rendering(request.param)
