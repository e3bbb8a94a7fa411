"""The stores keep the Store, EventLog and WorkQueue contracts shipped in coordination.testing."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordination.stores import MemoryStore, PostgresStore, SQLiteStore
from coordination.testing import EventLogContract, StoreContract, WorkQueueContract
from tests.postgres import PostgresServer


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


class TestSQLiteWorkQueue(_OnDisk, WorkQueueContract):
    pass


class _OnPostgres:
    @pytest.fixture(autouse=True)
    def _server(self, postgres: PostgresServer) -> None:
        self.server = postgres
        self.schema = postgres.new_schema()

    def create_store(self) -> PostgresStore:
        return self.server.store(self.schema)


class TestPostgresStore(_OnPostgres, StoreContract):
    pass


class TestPostgresEventLog(_OnPostgres, EventLogContract):
    pass


class TestPostgresWorkQueue(_OnPostgres, WorkQueueContract):
    pass
