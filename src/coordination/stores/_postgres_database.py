"""One PostgreSQL schema: its connection pool, transactions, lease heartbeat, and the one place
where psycopg's errors become `StoreError`.

`PostgresStore` composes one of these, as `SQLiteStore` composes its `SQLiteDatabase`: the
store says what to read and write; this says how, safely. Every statement runs through
`fetch`, `execute` or `run`, all of which map errors in `_mapped`, so no psycopg error ever
reaches a caller. psycopg is imported here, when a store is made, never when
`coordination.stores` is: the core works without the `postgres` extra.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from coordination.errors import StoreError
from coordination.stores._leases import Heartbeat
from coordination.stores._postgres_schema import (
    APPLICATION,
    SCHEMA,
    SCHEMA_VERSION,
    TABLES,
    UPGRADES,
    check_meta,
)

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["Duplicate", "PostgresDatabase"]

T = TypeVar("T")

#: What to tell the user, by SQLSTATE (prefix): the cause and what to do.
_HINTS = (
    ("08", "the server cannot be reached; check it runs, then call recover()"),
    ("57P", "the server shut down or restarted; call recover() once it is back"),
    ("53100", "the server's disk is full; free space, then call recover() to go on"),
    ("53", "the server ran out of a resource (connections, memory); lower max_connections"),
    ("55P03", "another process held a lock on the run longer than busy_timeout"),
    ("40", "a conflicting transaction kept aborting this one; call recover() to go on"),
    ("42501", "the user lacks a privilege on the store's schema; grant it, or use another"),
    ("28", "the server refused the credentials; check the DSN's user and password"),
    ("3D000", "the DSN names a database that does not exist; create it first"),
    ("23505", "a record with that key is already stored"),
    ("22", "a value cannot be stored in PostgreSQL (text with a NUL character?)"),
)
#: Deadlocks and serialization failures roll a whole transaction back: it is run again.
_RETRIED = ("40001", "40P01")
_ATTEMPTS = 3


class Duplicate(StoreError):
    """A unique key was already present (mapped here so callers can word the error)."""


class _Retry(StoreError):
    """The server aborted a transaction that may simply be run again (nothing committed)."""


def _driver() -> tuple[Any, Any]:
    """psycopg and psycopg_pool, or `StoreError` saying to install the extra."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as error:
        raise StoreError(
            f"PostgresStore needs the postgres extra ({error}): pip install "
            f"'coordination[postgres]'"
        ) from error
    return psycopg, psycopg_pool


class PostgresDatabase:
    """A pool of connections to one database, set to one schema, and the store's heartbeat."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str,
        lease: float,
        busy_timeout: float,
        connect_timeout: float,
        max_connections: int,
    ) -> None:
        driver, pool_module = _driver()
        self._psycopg = driver
        self._dsn = dsn
        self._connect_timeout = max(1, math.ceil(connect_timeout))
        self.schema = schema
        try:
            parts = driver.conninfo.conninfo_to_dict(dsn)
        except driver.Error as error:
            # Not `_mapped`: its message may quote the DSN, password included.
            raise StoreError(
                "PostgresStore(dsn=...) is not a valid connection string or URL"
            ) from error
        place = f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}"
        self.where = f"PostgreSQL schema {schema!r} on {place}/{parts.get('dbname') or ''}"
        self._busy_ms = max(1, round(busy_timeout * 1000))
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = (
            pool_module.ConnectionPool(
                dsn,
                min_size=1,
                max_size=max_connections,
                open=False,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": max(1, math.ceil(connect_timeout)),
                    "application_name": f"coordination:{schema}"[:63],
                },
                configure=self._configure,
                # A connection handed out is checked first: after a server restart every
                # pooled one is broken, and each is replaced instead of failing a write.
                check=pool_module.ConnectionPool.check_connection,
                timeout=connect_timeout,
                reconnect_timeout=connect_timeout,
                name=f"coordination:{schema}",
            )
        )
        try:
            with self._mapped("connecting"):
                self._pool.open(wait=True, timeout=connect_timeout)
            self._open()
        except BaseException:
            self._pool.close()
            raise
        self.heartbeat = Heartbeat(lease, self._renew, name="coordination:lease-heartbeat")

    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        sql = self._psycopg.sql
        connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        connection.execute(f"SET lock_timeout = {self._busy_ms}")

    # -- the one place errors are mapped ----------------------------------------------------

    @contextlib.contextmanager
    def _mapped(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (self._psycopg.Error, UnicodeError) as error:
            # UnicodeError: a str psycopg cannot encode (a lone surrogate in an id).
            state = getattr(error, "sqlstate", None) or ""
            hint = next((text for prefix, text in _HINTS if state.startswith(prefix)), None)
            if hint is None and isinstance(error, self._psycopg.OperationalError):
                hint = "no usable connection to the server; check it runs, then call recover()"
            message = f"{self.where}: {doing} failed ({str(error).strip()})"
            message += f"; {hint}" if hint else ""
            if state == "23505":
                raise Duplicate(message) from error
            if state in _RETRIED:
                raise _Retry(message) from error
            raise StoreError(message) from error

    # -- statements -----------------------------------------------------------------------

    def run(self, doing: str, body: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`body(connection)` in one transaction, run again if the server aborted it as a
        deadlock or serialization failure. An exception of the body (a fenced-out write's
        `LeaseLost`) rolls back and passes through unchanged; the body must change nothing
        outside the database, since it may run twice."""
        for attempt in range(_ATTEMPTS):
            try:
                with (
                    self._mapped(doing),
                    self._pool.connection() as connection,
                    connection.transaction(),
                ):
                    return body(connection)
            except _Retry:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def fetch(self, sql: str, parameters: Sequence[Any], doing: str) -> list[tuple[Any, ...]]:
        """One statement as its own transaction; the rows it returned (SELECT, RETURNING)."""
        for attempt in range(_ATTEMPTS):
            try:
                with self._mapped(doing), self._pool.connection() as connection:
                    cursor = connection.execute(sql, parameters)
                    return cursor.fetchall() if cursor.description is not None else []
            except _Retry:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def execute(self, sql: str, parameters: Sequence[Any], doing: str) -> int:
        """One statement as its own transaction; how many rows it changed."""
        for attempt in range(_ATTEMPTS):
            try:
                with self._mapped(doing), self._pool.connection() as connection:
                    changed: int = connection.execute(sql, parameters).rowcount
                    return changed
            except _Retry:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def listen(self, channel: str, stop: threading.Event) -> Iterator[str]:
        """The payloads notified on `channel`, on a connection of its own (a listener holds
        one for as long as it listens), until `stop` is set; `StoreError` when it breaks."""
        sql = self._psycopg.sql
        doing = f"listening for work on {channel!r}"
        with self._mapped(doing):
            connection = self._psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name=f"coordination:{self.schema}:listen"[:63],
            )
        try:
            with self._mapped(doing):
                connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            while not stop.is_set():
                with self._mapped(doing):
                    payloads = [n.payload for n in connection.notifies(timeout=0.25)]
                yield from payloads
        finally:
            connection.close()

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        """Create the schema in a new (or empty) namespace, or check the one found.

        Openers of one schema queue on an advisory lock, so two processes opening a new
        schema at once never both create it; a foreign or newer schema is refused with the
        transaction rolled back: nothing is changed.
        """
        sql = self._psycopg.sql
        untouched = "it was left untouched"

        def body(connection: psycopg.Connection[Any]) -> None:
            connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{APPLICATION}:{self.schema}",)
            )
            found = {
                name
                for (name,) in connection.execute(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
                    "c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', "
                    "'m', 'f')",
                    (self.schema,),
                )
            }
            if not found:
                connection.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.cursor().executemany(
                    "INSERT INTO coordination_meta (key, value) VALUES (%s, %s)",
                    [("application", APPLICATION), ("schema", str(SCHEMA_VERSION))],
                )
                return
            if "coordination_meta" not in found:
                raise StoreError(
                    f"{self.where} holds something else (tables: "
                    f"{', '.join(sorted(found)[:10])}); {untouched}: use another schema"
                )
            columns = {
                name
                for (name,) in connection.execute(
                    "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = "
                    "to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                    (f'"{self.schema}".coordination_meta',),
                )
            }
            if not {"key", "value"} <= columns:
                raise StoreError(
                    f"{self.where} has a coordination_meta table of another shape; "
                    f"{untouched}: it is not a coordination store"
                )
            rows = connection.execute("SELECT key, value FROM coordination_meta").fetchall()
            version = check_meta({str(key): value for key, value in rows}, self.where)
            upgrades = [UPGRADES[earlier] for earlier in range(version, SCHEMA_VERSION)]
            added = {table for _, tables in upgrades for table in tables}
            missing = [table for table in TABLES if table not in found | added]
            if missing:
                raise StoreError(
                    f"{self.where} lacks the tables {missing}; {untouched}: restore it from a "
                    f"backup, or use another schema"
                )
            for statements, _ in upgrades:
                for statement in statements.split(";"):
                    if statement.strip():
                        connection.execute(statement)
            if upgrades:
                connection.execute(
                    "UPDATE coordination_meta SET value = %s WHERE key = 'schema'",
                    (str(SCHEMA_VERSION),),
                )

        self.run("opening the store", body)

    # -- leases ---------------------------------------------------------------------------

    def _renew(self, claims: dict[str, int], expires: float) -> None:
        ids = sorted(claims)
        self.execute(
            "UPDATE runs AS r SET lease_expires = %s FROM unnest(%s::text[], %s::bigint[]) "
            "AS c(id, token) WHERE r.workflow_id = c.id AND r.token = c.token "
            "AND r.owner IS NOT NULL",
            (expires, ids, [claims[workflow_id] for workflow_id in ids]),
            "renewing leases",
        )

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the heartbeat and close every connection (the data stays as it is)."""
        self.heartbeat.close()
        self._pool.close(timeout=5)
