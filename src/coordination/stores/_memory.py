"""MemoryStore: the default store, in this process only, with bounded retention."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from coordination._messages import Message
from coordination._status import WorkflowStatus
from coordination.errors import StoreError
from coordination.stores._records import RunRecord, StepRecord

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps runs in a dict; forgets the oldest finished runs beyond `max_finished`.

    Unfinished runs are never forgotten. Idempotency by `workflow_id` holds only while a run
    is kept, and only within this process: use a durable store for more.
    """

    def __init__(self, max_finished: int = 10_000) -> None:
        if max_finished < 0:
            raise StoreError(f"MemoryStore(max_finished={max_finished}) must be >= 0")
        self.max_finished = max_finished
        self._runs: dict[str, RunRecord] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def register_types(self, types: Iterable[type[Message]]) -> None:
        """Nothing to learn: runs are kept as objects, never read back by name."""

    def start_run(
        self,
        workflow_id: str,
        flow: str,
        start: Message,
        *,
        owner: str,
        now: float,
        shape: str | None = None,
    ) -> tuple[RunRecord, bool]:
        with self._lock:
            existing = self._runs.get(workflow_id)
            if existing is not None:
                return existing, False
            record = RunRecord(
                workflow_id=workflow_id,
                flow=flow,
                start=start,
                status=WorkflowStatus.RUNNING,
                owner=owner,
                created_at=now,
                updated_at=now,
                shape=shape,
            )
            self._runs[workflow_id] = record
            return record, True

    def _record(self, workflow_id: str) -> RunRecord:
        record = self._runs.get(workflow_id)
        if record is None:
            raise StoreError(
                f"no run {workflow_id!r} in this MemoryStore (never started, or forgotten after "
                f"{self.max_finished} newer finished runs)"
            )
        return record

    def append_step(
        self,
        workflow_id: str,
        step: StepRecord,
        *,
        now: float,
        status: WorkflowStatus | None = None,
    ) -> None:
        with self._lock:
            record = self._runs.get(workflow_id)
            if record is None:
                record = self._record(workflow_id)  # raises, saying why
            # A scan, not a set per run: runs have few steps, and a set per kept run is one
            # more object for every garbage collection to walk.
            if record.has_step(step.key):
                raise StoreError(
                    f"run {workflow_id!r} already has a record for step {step.key!r}; "
                    f"a step is recorded once"
                )
            record.add_step(step)
            record.updated_at = now
            if status is not None:
                record.status = status

    def finish_run(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        *,
        now: float,
        output: Any = None,
        error: BaseException | None = None,
        compensation_error: BaseException | None = None,
        last_step: StepRecord | None = None,
    ) -> None:
        with self._lock:
            record = self._record(workflow_id)
            if last_step is not None:
                if record.has_step(last_step.key):
                    raise StoreError(
                        f"run {workflow_id!r} already has a record for step "
                        f"{last_step.key!r}; a step is recorded once"
                    )
                record.add_step(last_step)
            record.status = status
            record.output = output
            record.error = error
            record.compensation_error = compensation_error
            record.updated_at = now
            record.owner = None
            if status.finished:
                record.finished_at = now
                self._finished[workflow_id] = None
                self._finished.move_to_end(workflow_id)
                while len(self._finished) > self.max_finished:
                    forgotten, _ = self._finished.popitem(last=False)
                    del self._runs[forgotten]

    def claim_run(
        self, workflow_id: str, owner: str, *, now: float, replacing: str | None = None
    ) -> RunRecord | None:
        with self._lock:
            record = self._runs.get(workflow_id)
            if record is None or record.status.finished:
                return None
            expired = record.lease_expires is not None and record.lease_expires < now
            if record.owner is not None and not expired and record.owner != replacing:
                return None
            record.owner = owner
            record.updated_at = now
            return record

    def reopen_run(
        self,
        workflow_id: str,
        *,
        expected: WorkflowStatus,
        status: WorkflowStatus,
        owner: str,
        now: float,
    ) -> RunRecord | None:
        with self._lock:
            record = self._runs.get(workflow_id)
            if record is None or record.status is not expected:
                return None
            if record.owner is not None and record.owner != owner:
                return None
            record.status, record.owner, record.updated_at = status, owner, now
            record.finished_at, record.recoveries, record.recovery_step = None, 0, None
            self._finished.pop(workflow_id, None)
            return record

    def note_recovery(self, workflow_id: str, position: str) -> int:
        with self._lock:
            record = self._record(workflow_id)
            if record.recovery_step == position:
                record.recoveries += 1
            else:
                record.recovery_step, record.recoveries = position, 1
            return record.recoveries

    def release_run(self, workflow_id: str, owner: str, *, now: float) -> None:
        with self._lock:
            record = self._runs.get(workflow_id)
            if record is not None and record.owner == owner:
                record.owner = None
                record.updated_at = now

    def get_run(self, workflow_id: str) -> RunRecord | None:
        with self._lock:
            return self._runs.get(workflow_id)

    def list_runs(
        self, *, flow: str | None = None, status: WorkflowStatus | None = None
    ) -> list[RunRecord]:
        with self._lock:
            return [
                record
                for record in self._runs.values()
                if (flow is None or record.flow == flow)
                and (status is None or record.status == status)
            ]

    def __len__(self) -> int:
        return len(self._runs)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._runs)} runs, max_finished={self.max_finished})"
