"""Shared test configuration: hypothesis profiles chosen by environment."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from coordination.testing import settle_late_results

# CI machines are noisy: no deadlines there. `make test-long` asks for many more examples.
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.register_profile(
    "long",
    deadline=None,
    max_examples=2_000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

#: `pytester` runs pytest on throwaway test files (the plugin's own tests use it).
pytest_plugins = ["pytester"]

from tests.postgres import (  # noqa: E402, F401  (fixtures)
    dedicated_postgres,
    durable_backend,
    postgres,
    postgres_backend,
)

#: How long a thread a test started may take to end after it (a timed-out attempt's
#: thread returning late, a store's heartbeat noticing it was closed).
THREAD_GRACE = 10.0


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread of its own running (the runners' timed attempts,
    the stores' heartbeats and checkpointers, the bus's workers all must end)."""
    before = set(threading.enumerate())
    yield
    settle_late_results()
    deadline = time.monotonic() + THREAD_GRACE
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in left:
        thread.join(max(0.0, deadline - time.monotonic()))
    leaked = [t.name for t in left if t.is_alive()]
    assert not leaked, f"the test left threads running: {leaked}"
