"""Both stores keep the Store and EventLog contracts shipped in coordination.testing."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordination.stores import MemoryStore, SQLiteStore
from coordination.testing import EventLogContract, StoreContract


class TestMemoryStore(StoreContract):
    def create_store(self) -> MemoryStore:
        return MemoryStore()


class TestMemoryEventLog(EventLogContract):
    def create_store(self) -> MemoryStore:
        return MemoryStore()


class _OnDisk:
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def create_store(self) -> SQLiteStore:
        return SQLiteStore(self.directory / "store.db")


class TestSQLiteStore(_OnDisk, StoreContract):
    pass


class TestSQLiteEventLog(_OnDisk, EventLogContract):
    pass
