"""The golden path's platform and first training, shared by the workload tests that serve or
monitor the trained model (tests/support/golden.py); one per session, as they build on each
other's registry: the golden path's versions first, then the monitoring loop's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.golden import Stack, loopback_platform


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh platform on loopback: databases and buckets from the rendered Jobs, the
    seeded data in the offline store, the feature repo applied and materialized, MLflow up."""
    with loopback_platform(tmp_path_factory.mktemp("golden")) as platform:
        yield platform


@pytest.fixture(scope="session")
def first(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.monotonic()
    outputs = stack.train()
    print(f"first training run: {time.monotonic() - started:.1f} s")
    return outputs
