"""Shared test configuration: hypothesis profiles chosen by environment."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

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
