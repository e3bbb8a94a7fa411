"""WorkflowRun: what a caller gets back from `run()` — a read-only view of the stored run."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from coordination._journal import Journal
from coordination._messages import Message
from coordination._status import WorkflowStatus
from coordination.stores._records import RunRecord, StepOutcome, StepRecord

__all__ = ["WorkflowRun"]

OutputT = TypeVar("OutputT", covariant=True)
M = TypeVar("M", bound=Message)


class WorkflowRun(Generic[OutputT]):
    """One run of a flow, as the store records it (late results can still add to it)."""

    __slots__ = ("_record",)

    def __init__(self, record: RunRecord) -> None:
        self._record = record

    @property
    def workflow_id(self) -> str:
        return self._record.workflow_id

    @property
    def flow(self) -> str:
        """The flow's stored name."""
        return self._record.flow

    @property
    def status(self) -> WorkflowStatus:
        return self._record.status

    @property
    def input(self) -> Message:
        """The start message."""
        return self._record.start

    @property
    def output(self) -> OutputT | None:
        """The last group's output (a tuple, in declared order, if it is parallel).

        None unless the run COMPLETED.
        """
        if self._record.status is not WorkflowStatus.COMPLETED:
            return None
        output: Any = self._record.output
        return output  # type: ignore[no-any-return]

    @property
    def error(self) -> BaseException | None:
        """Why the run did not complete: the `StepFailed` of the first failing step."""
        return self._record.error

    @property
    def compensation_error(self) -> BaseException | None:
        """The `CompensationFailed` when an undo failed (status COMPENSATION_FAILED)."""
        return self._record.compensation_error

    @property
    def parked_reason(self) -> str | None:
        """Why a PARKED run waits for a human (a crash loop at a step, an operator's hold)."""
        return self._record.parked_reason

    def output_of(self, message_type: type[M]) -> M | None:
        """The `message_type` a completed step of this run produced, or None."""
        for record in self._record.steps:
            outputs = record.output if isinstance(record.output, tuple) else (record.output,)
            if ":" in record.key:
                continue  # undos, late results and notes produce no step output
            for output in outputs:
                if isinstance(output, message_type):
                    return output
        return None

    @property
    def journal(self) -> Journal:
        """Everything that happened, in store order."""
        return Journal.from_rows(self._record.journal)

    @property
    def steps(self) -> tuple[StepRecord, ...]:
        """One record per settled step, compensation and late result, in the order they
        settled (journal-only notes, such as a recovery, are in `journal` alone)."""
        return tuple(s for s in self._record.steps if s.outcome is not StepOutcome.NOTED)

    def __repr__(self) -> str:
        return (
            f"WorkflowRun(workflow_id={self.workflow_id!r}, flow={self.flow!r}, "
            f"status={self.status.name})"
        )
