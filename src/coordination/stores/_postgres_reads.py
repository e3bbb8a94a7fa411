"""The PostgreSQL store's reads of runs: one statement per read, decoded only by the codec.

A run is read with its shape's text and its steps in one statement, so a read sees one
snapshot (what a write committed, whole or not at all) without a transaction of its own.
Every stored payload goes through the `Codec`: nothing read is imported or executed, and
a row it cannot read is a `StoreError` naming the run, with the row left as it is.
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
from coordination.stores._postgres_database import PostgresDatabase
from coordination.stores._postgres_schema import RUN_COLUMNS
from coordination.stores._records import OwedRun, RunRecord, StepOutcome, StepRecord

__all__ = ["PostgresReads"]

_SELECT_RUNS = (
    f"SELECT {RUN_COLUMNS}, s.keys, s.outcomes, s.attempts, s.outputs, s.errors, s.journals "
    "FROM runs r LEFT JOIN shapes sh ON sh.id = r.shape LEFT JOIN LATERAL (SELECT "
    "array_agg(key ORDER BY steps.seq) AS keys, "
    "array_agg(outcome ORDER BY steps.seq) AS outcomes, "
    "array_agg(attempts ORDER BY steps.seq) AS attempts, "
    "array_agg(output ORDER BY steps.seq) AS outputs, "
    "array_agg(error ORDER BY steps.seq) AS errors, "
    "array_agg(journal ORDER BY steps.seq) AS journals "
    "FROM steps WHERE steps.workflow_id = r.workflow_id) s ON true"
)


class PostgresReads:
    """`get_run`, `list_runs` and `owed_runs` of a `PostgresStore`."""

    __slots__ = ("_codec", "_db")

    def __init__(self, db: PostgresDatabase, codec: Codec) -> None:
        self._db = db
        self._codec = codec

    def record(self, row: tuple[Any, ...]) -> RunRecord:
        (workflow_id, flow, start, status, owner, token, lease_expires, owed, created_at,
         updated_at, finished_at, output, error, compensation_error, recoveries,
         recovery_step, shape_id, shape, parked_reason, keys, outcomes, attempts, outputs,
         errors, journals) = row  # fmt: skip
        codec = self._codec
        try:
            run_status = WorkflowStatus(status)
        except ValueError as bad:
            raise StoreError(
                f"run {workflow_id!r} has an unknown status {status!r}; the row is left intact"
            ) from bad
        if shape_id is not None and shape is None:  # a changed flow would resume it unchecked
            raise StoreError(
                f"run {workflow_id!r}: its flow shape {shape_id!r} is missing; the row is left "
                f"intact"
            )
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
            shape=shape,
            recoveries=column(recoveries, INTEGER, workflow_id, "recoveries"),
            recovery_step=column(recovery_step, MAYBE_TEXT, workflow_id, "recovery_step"),
            owed=bool(owed),
            parked_reason=column(parked_reason, MAYBE_TEXT, workflow_id, "parked_reason"),
        )
        for key, outcome, tries, step_output, step_error, journal in zip(
            keys or (), outcomes or (), attempts or (), outputs or (), errors or (),
            journals or (), strict=True,
        ):  # fmt: skip
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
                    tries,
                    codec.read_output(step_output, workflow_id, f"output of {key}"),
                    step_error,
                    codec.read_rows(journal, workflow_id, key),
                )
            )
        return record

    def get_run(self, workflow_id: str) -> RunRecord | None:
        rows = self._db.fetch(
            f"{_SELECT_RUNS} WHERE r.workflow_id = %s", (workflow_id,), f"reading {workflow_id!r}"
        )
        return self.record(rows[0]) if rows else None

    def list_runs(
        self, *, flow: str | None = None, status: WorkflowStatus | None = None
    ) -> list[RunRecord]:
        clauses: list[str] = []
        parameters: list[Any] = []
        if flow is not None:
            clauses.append("r.flow = %s")
            parameters.append(flow)
        if status is not None:
            clauses.append("r.status = %s")
            parameters.append(status.value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.fetch(
            f"{_SELECT_RUNS}{where} ORDER BY r.created_at, r.seq",
            parameters,
            "listing runs",
        )
        return [self.record(row) for row in rows]

    def owed_runs(self, flow: str) -> list[OwedRun]:
        rows = self._db.fetch(
            "SELECT workflow_id, status, owner, lease_expires, token FROM runs "
            "WHERE flow = %s AND owed ORDER BY created_at, seq",
            (flow,),
            "listing runs that owe work",
        )
        owed: list[OwedRun] = []
        for workflow_id, status, owner, lease_expires, token in rows:
            try:
                run_status = WorkflowStatus(status)
            except ValueError:
                continue  # a tampered status: get_run names it when this run is read
            owed.append(OwedRun(workflow_id, run_status, owner, lease_expires, token))
        return owed
