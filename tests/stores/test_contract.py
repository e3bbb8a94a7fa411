"""Both stores keep the Store contract shipped in coordination.testing."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordination.stores import MemoryStore, SQLiteStore, Store
from coordination.testing import StoreContract


class TestMemoryStore(StoreContract):
    def create_store(self) -> Store:
        return MemoryStore()


class TestSQLiteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def create_store(self) -> Store:
        return SQLiteStore(self.directory / "store.db")
