"""The SQLite store's reads of runs: decoded only by the codec, never imported or executed.

A run is read with its steps in one read transaction, so a read sees one snapshot (what a
write committed, whole or not at all). Every stored payload goes through the `Codec`; a
row it cannot read is a `StoreError` naming the run, with the row left as it is. A flow's
shape is stored once per version and read once per process (`shapes`, shared with the
store, which learns of the shapes it writes).
"""

from __future__ import annotations

from typing import Any

from coordination._status import WorkflowStatus
from coordination.errors import StoreError
from coordination.stores._codec import (
    INTEGER,
    MAYBE_NUMBER,
    MAYBE_TEXT,
    NUMBER,
    TEXT,
    Codec,
    column,
)
from coordination.stores._records import OwedRun, RunRecord, StepOutcome, StepRecord
from coordination.stores._sqlite_database import SQLiteDatabase
from coordination.stores._sqlite_schema import RUN_COLUMNS

__all__ = ["SQLiteReads"]


class SQLiteReads:
    """`get_run`, `list_runs` and `owed_runs` of a `SQLiteStore`."""

    __slots__ = ("_codec", "_db", "_shapes")

    def __init__(self, db: SQLiteDatabase, codec: Codec, shapes: dict[str, str]) -> None:
        self._db = db
        self._codec = codec
        #: Shape id -> text, of shapes known to be stored (the store adds those it wrote).
        self._shapes = shapes

    def _shape_text(self, workflow_id: str, shape_id: Any) -> str | None:
        if shape_id is None:
            return None
        column(shape_id, TEXT, workflow_id, "shape id")
        known = self._shapes.get(shape_id)
        if known is not None:
            return known
        rows = self._db.query(
            "SELECT shape FROM shapes WHERE id = ?", (shape_id,), "reading a shape"
        )
        if not rows:  # without it, a changed flow would resume it unchecked
            raise StoreError(
                f"run {workflow_id!r}: its flow shape {shape_id!r} is missing; the row is left "
                f"intact"
            )
        text: str = column(rows[0][0], TEXT, workflow_id, "flow shape")
        self._shapes[shape_id] = text
        return text

    def record(self, row: tuple[Any, ...], steps: list[tuple[Any, ...]]) -> RunRecord:
        (workflow_id, flow, start, status, owner, token, lease_expires, owed, created_at,
         updated_at, finished_at, output, error, compensation_error, recoveries,
         recovery_step, shape, parked_reason) = row  # fmt: skip
        codec = self._codec
        column(workflow_id, TEXT, workflow_id, "id")
        try:
            run_status = WorkflowStatus(status)
        except ValueError as bad:
            raise StoreError(
                f"run {workflow_id!r} has an unknown status {status!r}; the row is left intact"
            ) from bad
        record = RunRecord(
            workflow_id=workflow_id,
            flow=column(flow, TEXT, workflow_id, "flow"),
            start=codec.read_message(start, workflow_id, "start message"),
            status=run_status,
            owner=column(owner, MAYBE_TEXT, workflow_id, "owner"),
            created_at=column(created_at, NUMBER, workflow_id, "created_at"),
            updated_at=column(updated_at, NUMBER, workflow_id, "updated_at"),
            token=column(token, INTEGER, workflow_id, "token"),
            lease_expires=column(lease_expires, MAYBE_NUMBER, workflow_id, "lease_expires"),
            finished_at=column(finished_at, MAYBE_NUMBER, workflow_id, "finished_at"),
            output=codec.read_output(output, workflow_id, "output"),
            error=codec.read_error(error, workflow_id),
            compensation_error=codec.read_error(compensation_error, workflow_id),
            shape=self._shape_text(workflow_id, shape),
            recoveries=column(recoveries, INTEGER, workflow_id, "recoveries"),
            recovery_step=column(recovery_step, MAYBE_TEXT, workflow_id, "recovery_step"),
            owed=bool(column(owed, INTEGER, workflow_id, "owed")),
            parked_reason=column(parked_reason, MAYBE_TEXT, workflow_id, "parked_reason"),
        )
        for key, outcome, attempts, step_output, step_error, rows in steps:
            column(key, TEXT, workflow_id, "step key")
            try:
                step_outcome = StepOutcome(outcome)
            except ValueError as bad:
                raise StoreError(
                    f"run {workflow_id!r}: step {key!r} has an unknown outcome {outcome!r}"
                ) from bad
            record.add_step(
                StepRecord(
                    key,
                    step_outcome,
                    column(attempts, INTEGER, workflow_id, f"attempts of {key}"),
                    codec.read_output(step_output, workflow_id, f"output of {key}"),
                    column(step_error, MAYBE_TEXT, workflow_id, f"error of {key}"),
                    codec.read_rows(rows, workflow_id, key),
                )
            )
        return record

    def get_run(self, workflow_id: str) -> RunRecord | None:
        with self._db.transaction(f"reading run {workflow_id!r}", read_only=True) as cursor:
            row = cursor.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ?", (workflow_id,)
            ).fetchone()
            if row is None:
                return None
            steps = cursor.execute(
                "SELECT key, outcome, attempts, output, error, rows FROM steps "
                "WHERE workflow_id = ? ORDER BY seq",
                (workflow_id,),
            ).fetchall()
        return self.record(row, steps)

    def list_runs(
        self, *, flow: str | None = None, status: WorkflowStatus | None = None
    ) -> list[RunRecord]:
        clauses: list[str] = []
        parameters: list[Any] = []
        if flow is not None:
            clauses.append("flow = ?")
            parameters.append(flow)
        if status is not None:
            clauses.append("status = ?")
            parameters.append(status.value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        ids = self._db.query(
            f"SELECT workflow_id FROM runs{where} ORDER BY created_at, workflow_id",
            parameters,
            "listing runs",
        )
        records = [self.get_run(workflow_id) for (workflow_id,) in ids]
        return [record for record in records if record is not None]

    def owed_runs(self, flow: str) -> list[OwedRun]:
        rows = self._db.query(
            "SELECT workflow_id, status, owner, lease_expires, token FROM runs "
            "INDEXED BY runs_owed WHERE flow = ? AND owed = 1 ORDER BY created_at",
            (flow,),
            "listing runs that owe work",
        )
        owed: list[OwedRun] = []
        for workflow_id, status, owner, lease_expires, token in rows:
            if not isinstance(workflow_id, str):
                continue  # a damaged id names no run that could be claimed
            try:
                run_status = WorkflowStatus(status)
            except ValueError:
                continue  # a tampered status: get_run names it when this run is read
            # A damaged owner (not text) is nobody's, here as in the claim: the read that
            # follows the claim reports the row.
            holder = owner if isinstance(owner, str) else None
            owed.append(OwedRun(workflow_id, run_status, holder, lease_expires, token))
        return owed
