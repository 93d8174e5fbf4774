"""Fixtures shared by every test tier."""

from __future__ import annotations

import pytest

from infra import render
from tests.support import STACKS, stack_rendering


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> render.Rendering:
    """Each stack file rendered under mocks, with sentinel secret values."""
    return stack_rendering(request.param)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints how long the real Pulumi operations took, when the integration tier ran."""
    from tests.integration.test_pulumi_up import TIMINGS

    if TIMINGS:
        terminalreporter.section("pulumi timings")
        for step, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:7.1f} s  {step}")
