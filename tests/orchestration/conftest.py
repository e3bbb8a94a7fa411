"""What the orchestration tests share: `each_store`, the same test on memory and PostgreSQL."""

from __future__ import annotations

import pytest

from coordination.stores import MemoryStore
from tests.orchestration.flows import Harness


@pytest.fixture(params=["memory", "postgres"])
def each_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every `Harness` of the test gets a new store: a MemoryStore, or a PostgresStore in a
    schema of its own (skipped, as every PostgreSQL test is, without a test server)."""
    if request.param == "memory":
        monkeypatch.setattr(Harness, "default_store", staticmethod(MemoryStore))
    else:
        server = request.getfixturevalue("postgres")
        monkeypatch.setattr(Harness, "default_store", staticmethod(server.store))
    return request.param
