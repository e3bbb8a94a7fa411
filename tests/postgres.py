"""The tests' PostgreSQL: stores on the server `make test` starts, one fresh schema each.

`postgres` is a fixture (re-exported by tests/conftest.py): a test asks it for stores, each
in a schema of its own that is dropped afterwards, with every store it made closed first.
Without COORDINATION_TEST_POSTGRES (a plain `pytest` outside make) these tests are skipped,
as tests/test_postgres_server.py is; with it set, a server that cannot be reached fails them.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from coordination.stores import PostgresStore

URL = os.environ.get("COORDINATION_TEST_POSTGRES")
SKIP_REASON = "no test server: run `make test` (it starts one) or set it yourself"

_numbers = itertools.count()


class PostgresServer:
    """Stores on the test server, closed and dropped when the test ends."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._stores: list[PostgresStore] = []
        self._schemas: list[str] = []

    def new_schema(self) -> str:
        """A schema name no other test uses (created by the first store opened in it)."""
        name = f"t{os.getpid()}_{next(_numbers)}_{uuid.uuid4().hex[:6]}"
        self._schemas.append(name)
        return name

    def store(self, schema: str | None = None, **options: Any) -> PostgresStore:
        """A store in `schema` (a new one by default), closed when the test ends."""
        store = PostgresStore(self.url, schema=schema or self.new_schema(), **options)
        self._stores.append(store)
        return store

    def connect(self) -> Any:
        """A plain psycopg connection (autocommit), to look at or damage what is stored."""
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def cleanup(self) -> None:
        for store in self._stores:
            store.close()
        if self._schemas:
            with self.connect() as connection:
                for schema in self._schemas:
                    connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def server_or_skip() -> PostgresServer:
    """The test server, or a skip without one; a set but unreachable server fails."""
    if URL is None:
        pytest.skip(SKIP_REASON)
    server = PostgresServer(URL)
    try:
        server.connect().close()
    except Exception as error:
        pytest.fail(f"COORDINATION_TEST_POSTGRES={URL} cannot be reached: {error}")
    return server


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """Stores on the test server, each in a fresh schema, closed and dropped afterwards."""
    server = server_or_skip()
    try:
        yield server
    finally:
        server.cleanup()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "postgres.sh")


class DedicatedServer:
    """A server of the test's own (scripts/postgres.sh on a free port), to stop and restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _script(self, command: str) -> None:
        import subprocess

        result = subprocess.run(
            ["bash", SCRIPT, command],
            env={**os.environ, "PGTEST_PORT": str(self.port)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"postgres.sh {command}: {result.stderr}"

    def start(self) -> None:
        self._script("start")

    def down(self) -> None:
        """Stop the server, keeping its data."""
        self._script("down")

    def up(self) -> None:
        """Start it again on the same data and port."""
        self._script("up")

    def stop(self) -> None:
        self._script("stop")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def dedicated_postgres() -> Iterator[DedicatedServer]:
    """A PostgreSQL server of this test's own, stopped and deleted afterwards."""
    server_or_skip().cleanup()  # the same rule: skipped without a test server, else required
    server = DedicatedServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Backend:
    """One durable store's data (a SQLite file, or a PostgreSQL schema), opened as often as a
    test likes: each `open()` is a new store on the same data, as a new process would make."""

    def __init__(self, kind: str, opener: Any, spec: str, server: Any = None) -> None:
        self.kind = kind
        self._server = server
        self._opener = opener
        #: What a subprocess is told to open (tests.postgres.open_spec reads it).
        self.spec = spec

    def open(self, **options: Any) -> Any:
        return self._opener(**options)

    def connect(self) -> Any:
        """A psycopg connection to a PostgreSQL backend's schema (autocommit)."""
        server, schema = self._server
        connection = server.connect()
        connection.execute(f'SET search_path TO "{schema}"')
        return connection

    def tamper(self, statement: str, parameters: tuple[Any, ...] = ()) -> None:
        """Change the stored rows behind the store's back (`?` marks the parameters)."""
        if self.kind == "sqlite":
            import sqlite3

            connection = sqlite3.connect(self.spec)
            with connection:
                connection.execute(statement, parameters)
            connection.close()
            return
        with self.connect() as connection:
            connection.execute(statement.replace("?", "%s"), parameters)


def open_spec(spec: str, **options: Any) -> Any:
    """The store a subprocess opens: `postgres:<schema>` (on COORDINATION_TEST_POSTGRES) or
    a SQLite file's path."""
    from coordination.stores import SQLiteStore

    kind, _, schema = spec.partition(":")
    if kind == "postgres" and URL is not None:
        return PostgresStore(URL, schema=schema, **options)
    return SQLiteStore(spec, **options)


def postgres_backend_of(server: PostgresServer) -> Backend:
    """A backend on a new schema of `server`."""
    schema = server.new_schema()
    return Backend(
        "postgres",
        lambda **options: server.store(schema, **options),
        f"postgres:{schema}",
        (server, schema),
    )


@pytest.fixture
def postgres_backend(postgres: PostgresServer) -> Backend:
    """A PostgreSQL schema to open stores on, as `durable_backend` gives (PostgreSQL only)."""
    return postgres_backend_of(postgres)


@pytest.fixture(params=["sqlite", "postgres"])
def durable_backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    """The same test on a SQLite file and on a PostgreSQL schema (skipped, as every
    PostgreSQL test is, without a test server)."""
    from coordination.stores import SQLiteStore

    if request.param == "sqlite":
        path = tmp_path / "s.db"
        opened: list[SQLiteStore] = []

        def open_sqlite(**options: Any) -> SQLiteStore:
            store = SQLiteStore(path, **options)
            opened.append(store)  # closed when the test ends, as the PostgreSQL ones are
            return store

        yield Backend("sqlite", open_sqlite, str(path))
        for store in opened:
            store.close()
        return
    yield postgres_backend_of(request.getfixturevalue("postgres"))
