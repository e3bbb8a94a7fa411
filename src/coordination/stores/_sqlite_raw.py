"""A SQLite store read as it is, for operators: type names and raw JSON, nothing decoded.

`coordination runs list|show` must show a file's runs whatever messages the reading process
has imported (reading never imports: an unknown type name stays a name). So this reader
opens the file read-only, checks it is a coordination store of this schema version, and
returns each run's columns with its messages as their type name and JSON text; journal rows
are checked like the store checks them (they hold no messages). It writes nothing, never
creates a file, and maps every `sqlite3` error to `StoreError`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordination._journal import EntryKind, Journal, Rows, row
from coordination._status import WorkflowStatus
from coordination.errors import StoreError
from coordination.stores._codec import Codec
from coordination.stores._records import StepOutcome, StepRecord
from coordination.stores._sqlite_schema import APPLICATION, SCHEMA_VERSION

__all__ = ["RawRun", "read_run", "read_runs"]


@dataclass(frozen=True, slots=True)
class RawRun:
    """One stored run, its messages left as JSON text (a `RunView` for the renderings)."""

    workflow_id: str
    flow: str
    status: WorkflowStatus
    start_type: str  #: the start message's stored type name
    start: str  #: the start message as stored (JSON)
    created_at: float
    updated_at: float
    finished_at: float | None
    owner: str | None
    error: str | None  #: as stored (JSON)
    parked_reason: str | None
    journal: Journal
    steps: tuple[StepRecord, ...]  #: outputs left as stored (JSON text)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict: messages as parsed JSON, entries as their fields."""
        return {
            "workflow_id": self.workflow_id,
            "flow": self.flow,
            "status": self.status.value,
            "start_type": self.start_type,
            "start": _parsed(self.start),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "owner": self.owner,
            "error": _parsed(self.error),
            "parked_reason": self.parked_reason,
            "steps": [
                {
                    "key": step.key,
                    "outcome": step.outcome.value,
                    "attempts": step.attempts,
                    "output": _parsed(step.output),
                    "error": step.error,
                }
                for step in self.steps
            ],
            "journal": [entry._asdict() | {"kind": entry.kind.value} for entry in self.journal],
        }


def _parsed(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _type_name(text: Any) -> str:
    document = _parsed(text)
    name = document.get("type") if isinstance(document, dict) else None
    return name if isinstance(name, str) else "?"


@contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.is_file():
        raise StoreError(f"{path} does not exist (or is not a file)")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open {path}: {error}") from error
    try:
        try:
            rows = connection.execute("SELECT key, value FROM coordination_meta").fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"{path} is not a coordination store ({error})") from error
        meta = {str(key): value for key, value in rows}
        if meta.get("application") != APPLICATION:
            raise StoreError(f"{path} is not a coordination store")
        if meta.get("schema") != str(SCHEMA_VERSION):
            raise StoreError(
                f"{path} has schema version {meta.get('schema')!r}; this coordination reads "
                f"version {SCHEMA_VERSION}"
            )
        yield connection
    except sqlite3.Error as error:
        raise StoreError(f"cannot read {path}: {error}") from error
    finally:
        connection.close()


_COLUMNS = (
    "workflow_id, flow, start, status, created_at, updated_at, finished_at, owner, error, "
    "parked_reason"
)


def _run(connection: sqlite3.Connection, columns: tuple[Any, ...]) -> RawRun:
    workflow_id, flow, start, status, created, updated, finished, owner, error, parked = columns
    try:
        run_status = WorkflowStatus(status)
    except ValueError as bad:
        raise StoreError(f"run {workflow_id!r} has an unknown status {status!r}") from bad
    steps = connection.execute(
        "SELECT key, outcome, attempts, output, error, rows FROM steps "
        "WHERE workflow_id = ? ORDER BY seq",
        (workflow_id,),
    ).fetchall()
    start_type = _type_name(start)
    # As RunRecord.journal frames the steps' rows: opened and, once finished, closed.
    chunks: list[Rows] = [
        row(
            EntryKind.WORKFLOW_STARTED, str(flow), "", str(workflow_id), at=float(created),
            detail=re.split(r"[.:]", start_type)[-1],
        )
    ]  # fmt: skip
    records = []
    for key, outcome, attempts, output, step_error, rows in steps:
        chunks.append(Codec.read_rows(rows, str(workflow_id), str(key)))
        try:
            step_outcome = StepOutcome(outcome)
        except ValueError as bad:
            raise StoreError(f"run {workflow_id!r}: step {key!r} has outcome {outcome!r}") from bad
        if step_outcome is not StepOutcome.NOTED:
            records.append(StepRecord(str(key), step_outcome, int(attempts), output, step_error))
    if finished is not None:
        chunks.append(
            row(
                EntryKind.WORKFLOW_FINISHED, str(flow), "", str(workflow_id), at=float(finished),
                error=parked, detail=run_status.value,
            )
        )  # fmt: skip
    return RawRun(
        workflow_id=str(workflow_id),
        flow=str(flow),
        status=run_status,
        start_type=start_type,
        start=str(start),
        created_at=float(created),
        updated_at=float(updated),
        finished_at=None if finished is None else float(finished),
        owner=owner,
        error=error,
        parked_reason=parked,
        journal=Journal.from_rows(chunks),
        steps=tuple(records),
    )


def read_runs(
    path: Path,
    *,
    flow: str | None = None,
    status: WorkflowStatus | None = None,
    since: float | None = None,
) -> list[RawRun]:
    """The runs of the store at `path`, oldest first, optionally filtered."""
    clauses: list[str] = []
    parameters: list[Any] = []
    if flow is not None:
        clauses.append("flow = ?")
        parameters.append(flow)
    if status is not None:
        clauses.append("status = ?")
        parameters.append(status.value)
    if since is not None:
        clauses.append("created_at >= ?")
        parameters.append(since)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    with _reading(path) as connection:
        rows = connection.execute(
            f"SELECT {_COLUMNS} FROM runs{where} ORDER BY created_at, workflow_id", parameters
        ).fetchall()
        return [_run(connection, row) for row in rows]


def read_run(path: Path, workflow_id: str) -> RawRun | None:
    """The run `workflow_id` of the store at `path`, or None."""
    with _reading(path) as connection:
        row = connection.execute(
            f"SELECT {_COLUMNS} FROM runs WHERE workflow_id = ?", (workflow_id,)
        ).fetchone()
        return None if row is None else _run(connection, row)
