"""One SQLite database file: its connection, lock, transactions, background threads, and the
one place where `sqlite3` errors become `StoreError`.

`SQLiteStore` composes one of these (as eventsourcing's recorders compose a datastore):
the store says what to read and write; this says how, safely. Every statement runs through
`execute`, `query` or `transaction`, all of which map errors in `_mapped`, so no raw
`sqlite3` error ever reaches a caller.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from coordination.errors import StoreError
from coordination.stores._leases import Heartbeat
from coordination.stores._sqlite_schema import APPLICATION, SCHEMA, SCHEMA_VERSION, UPGRADES

__all__ = ["CHECKPOINT_BYTES", "SQLiteDatabase"]

#: WAL size past which the background checkpointer copies it back (~1,000 pages).
CHECKPOINT_BYTES = 4 * 1024 * 1024

#: What to tell the user, by SQLite's error name (prefix): the cause and what to do.
_HINTS = (
    ("SQLITE_FULL", "the disk is full; free space, then call recover() to go on"),
    ("SQLITE_IOERR", "the disk reported an I/O error; check it, then call recover()"),
    ("SQLITE_READONLY", "the file or its folder is read-only; open a writable copy"),
    ("SQLITE_CANTOPEN", "the file cannot be opened; check the path and its permissions"),
    ("SQLITE_BUSY", "another process held the database longer than busy_timeout"),
    ("SQLITE_LOCKED", "another connection holds a lock on the database"),
    ("SQLITE_CORRUPT", "the file is corrupt; restore it from a backup"),
    ("SQLITE_NOTADB", "the file is not a SQLite database"),
    ("SQLITE_CONSTRAINT", "a record with that key is already stored"),
)


#: What a statement can raise: sqlite3's errors, and the UnicodeDecodeError sqlite3 raises
#: when it decodes an error message of SQLite's that quotes a damaged file's bytes (a
#: malformed schema's names): both mean the file cannot be used as it is.
FAILURES = (sqlite3.Error, UnicodeDecodeError)


def store_error(error: sqlite3.Error | UnicodeDecodeError, path: Path, doing: str) -> StoreError:
    """The `StoreError` a caller sees for `error` while `doing` something with `path`."""
    name = getattr(error, "sqlite_errorname", "") or ""
    hint = next((text for prefix, text in _HINTS if name.startswith(prefix)), None)
    if hint is None and "disk is full" in str(error):
        hint = _HINTS[0][1]
    suffix = f"; {hint}" if hint else ""
    return StoreError(f"SQLite store {path}: {doing} failed ({error}){suffix}")


class Duplicate(StoreError):
    """A unique key was already present (mapped here so callers can word the error)."""


class SQLiteDatabase:
    """The file, one connection shared by this process's threads, and its background work."""

    def __init__(self, path: Path, *, synchronous: str, busy_timeout: float, lease: float) -> None:
        self.path = path
        self.lease = lease
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._closed = threading.Event()
        #: Claims this process holds, their leases renewed by one fenced statement a beat.
        self.heartbeat = Heartbeat(lease, self._renew, name="coordination:lease-heartbeat")
        self._checkpointer: threading.Thread | None = None
        self._background_checkpoints = synchronous == "NORMAL"
        _create_private(path)
        with self._mapped("opening the file"):
            self._connection = sqlite3.connect(
                path,
                timeout=busy_timeout,
                isolation_level=None,  # autocommit: one statement, one commit; BEGIN for more
                check_same_thread=False,
            )
        self._connection.text_factory = _text
        try:
            self._open(synchronous)
        except BaseException:
            self._connection.close()
            raise
        if self._background_checkpoints:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="coordination:checkpoint", daemon=True
            )
            self._checkpointer.start()

    # -- the one place errors are mapped ----------------------------------------------------

    @contextlib.contextmanager
    def _mapped(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as error:
            raise Duplicate(str(store_error(error, self.path, doing))) from error
        except FAILURES as error:
            raise store_error(error, self.path, doing) from error

    # -- opening --------------------------------------------------------------------------

    def _open(self, synchronous: str) -> None:
        untouched = "it was left untouched"
        try:
            tables = {
                row[0]
                for row in self._connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
        except FAILURES as error:
            raise StoreError(
                f"{self.path} is not a readable SQLite database ({error}); {untouched}: point "
                f"SQLiteStore at a new file or a coordination store"
            ) from error
        if tables and "coordination_meta" not in tables:
            raise StoreError(
                f"{self.path} is a SQLite database of something else (tables: "
                f"{', '.join(sorted(tables)[:10])}); {untouched}: use a separate file"
            )
        version = self._check_version() if tables else SCHEMA_VERSION
        with self._mapped("preparing the database"):
            mode = self._into_wal()
            if not mode or str(mode[0]).lower() != "wal":
                raise StoreError(
                    f"{self.path}: this file system does not support SQLite's WAL mode "
                    f"(journal_mode stayed {mode[0] if mode else None!r}); put the store on "
                    f"a local disk"
                )
            self._connection.execute(f"PRAGMA synchronous = {synchronous}")
            if self._background_checkpoints:
                # Checkpoints (copying the WAL back into the file) run on a thread of their
                # own, not in whichever commit crosses the threshold: measured, they added
                # ~40 µs to every workflow's path when done in line. (With FULL, their
                # flushes compete with the commits' own: measured slower, so in line.)
                self._connection.execute("PRAGMA wal_autocheckpoint = 0")
        if not tables:
            with self.transaction("creating the schema") as cursor:
                # Another process opening the new file may have created it since the read
                # above; holding the write lock now, look again.
                found = cursor.execute("SELECT 1 FROM sqlite_master").fetchone() is not None
                if not found:
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            cursor.execute(statement)
                    cursor.executemany(
                        "INSERT INTO coordination_meta (key, value) VALUES (?, ?)",
                        [("application", APPLICATION), ("schema", str(SCHEMA_VERSION))],
                    )
            if found:
                self._check_version()
        elif version < SCHEMA_VERSION:
            self._upgrade()

    def _upgrade(self) -> None:
        """Bring a file of an earlier schema version up to this one, in one transaction
        (another process opening it at the same time may have done so already)."""
        with self.transaction("upgrading the schema") as cursor:
            (text,) = cursor.execute(
                "SELECT value FROM coordination_meta WHERE key = 'schema'"
            ).fetchone()
            for version in range(int(text), SCHEMA_VERSION):
                for statement in UPGRADES[version].split(";"):
                    if statement.strip():
                        cursor.execute(statement)
            cursor.execute(
                "UPDATE coordination_meta SET value = ? WHERE key = 'schema'",
                (str(SCHEMA_VERSION),),
            )

    def _into_wal(self) -> Any:
        """`PRAGMA journal_mode = WAL`, waiting for other openers of a new file: converting
        it needs the file to itself, and SQLite answers SQLITE_BUSY at once (its busy
        handler is not called) while another connection reads it."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return self._connection.execute("PRAGMA journal_mode = WAL").fetchone()
            except sqlite3.OperationalError as error:
                busy = getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(0.002)

    def _check_version(self) -> int:
        """The file's schema version: this one's, or an earlier one it can be upgraded
        from; `StoreError` for anything else."""
        untouched = "it was left untouched"
        try:
            rows = self._connection.execute("SELECT key, value FROM coordination_meta").fetchall()
        except FAILURES as error:
            raise StoreError(
                f"{self.path} has a coordination_meta table of another shape ({error}); "
                f"{untouched}: it is not a coordination store"
            ) from error
        meta = {str(key): value for key, value in rows}
        if meta.get("application") != APPLICATION:
            raise StoreError(f"{self.path} is not a coordination store; {untouched}")
        version = meta.get("schema")
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses; and a number
        # short enough for int() (which refuses more than 4,300 digits).
        if not (
            isinstance(version, str)
            and version.isascii()
            and version.isdigit()
            and len(version) <= 9
        ):
            raise StoreError(
                f"{self.path} has an unreadable schema version {version!r}; {untouched}"
            )
        if int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this coordination "
                f"(which reads up to {SCHEMA_VERSION}); {untouched}: upgrade coordination"
            )
        if int(version) < SCHEMA_VERSION and int(version) not in UPGRADES:
            raise StoreError(
                f"{self.path} has schema version {version}, written by an earlier "
                f"coordination; {untouched}: finish its runs with that version, or start a "
                f"new file"
            )
        return int(version)

    # -- statements -----------------------------------------------------------------------

    def execute(self, sql: str, parameters: Sequence[Any], doing: str) -> int:
        """Run one statement as its own transaction (autocommit); the rows it changed."""
        with self._lock, self._mapped(doing):
            return self._connection.execute(sql, parameters).rowcount

    def query(self, sql: str, parameters: Sequence[Any], doing: str) -> list[tuple[Any, ...]]:
        with self._lock, self._mapped(doing):
            return self._connection.execute(sql, parameters).fetchall()

    @contextlib.contextmanager
    def transaction(self, doing: str, *, read_only: bool = False) -> Iterator[sqlite3.Cursor]:
        """One transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error.

        `read_only`: a deferred transaction, so several reads see one state without taking
        the write lock. An exception raised by the body (a fenced-out write's `LeaseLost`)
        rolls back and passes through unchanged.
        """
        with self._lock:
            cursor = self._connection.cursor()
            with self._mapped(doing):
                cursor.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
            try:
                with self._mapped(doing):
                    yield cursor
            except BaseException:
                with contextlib.suppress(*FAILURES):
                    cursor.execute("ROLLBACK")
                raise
            try:
                with self._mapped(doing):
                    cursor.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(*FAILURES):
                    cursor.execute("ROLLBACK")
                raise

    # -- leases -------------------------------------------------------------------------------

    def _renew(self, claims: dict[str, int], expires: float) -> None:
        with self.transaction("renewing leases") as cursor:
            cursor.executemany(
                "UPDATE runs SET lease_expires = ? WHERE workflow_id = ? AND token = ? "
                "AND owner IS NOT NULL",
                [(expires, workflow_id, token) for workflow_id, token in claims.items()],
            )

    def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database whenever it grew past ~4 MB (PASSIVE: never
        blocks writers), on a connection of its own."""
        wal = Path(f"{self.path}-wal")
        try:
            connection = sqlite3.connect(self.path, timeout=5, check_same_thread=True)
        except FAILURES:
            return
        try:
            while not self._closed.wait(0.05):
                try:
                    if wal.stat().st_size > CHECKPOINT_BYTES:
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except (OSError, *FAILURES):
                    continue  # retried at the next tick
        finally:
            connection.close()

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the background threads and close the connection (the file stays as it is)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.heartbeat.close()
        checkpointer = self._checkpointer
        if checkpointer is not None and checkpointer is not threading.current_thread():
            checkpointer.join(timeout=5)
        with self._lock:
            with contextlib.suppress(*FAILURES):
                self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._connection.close()


def _text(data: bytes) -> str | bytes:
    """A TEXT cell as str or, if it is not UTF-8 (a damaged row), as its bytes, which every
    reader refuses by type (a `StoreError` naming the run) instead of the whole query failing,
    and with it every run it lists."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def _create_private(path: Path) -> bool:
    """Create the file owner-only (0600) if it does not exist; True if it was created.

    SQLite gives its `-wal` and `-shm` files the permissions of the database file, so they
    are private too, whatever the process's umask.
    """
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    except OSError as error:
        raise StoreError(f"cannot create SQLite store {path}: {error}") from error
    os.close(descriptor)
    return True
