"""The status vocabulary both runners use, so a run and a choreography read the same."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["WorkflowStatus"]


class WorkflowStatus(StrEnum):
    """Where one flow instance stands."""

    PENDING = "pending"
    RUNNING = "running"
    #: Suspended until an outside message or a timer wakes it (no thread, no lease held).
    WAITING = "waiting"
    COMPLETED = "completed"
    COMPENSATING = "compensating"
    #: A step failed and every effect was undone (also when there was nothing to undo).
    COMPENSATED = "compensated"
    #: A compensation itself failed: the record says what is left; an operator can retry.
    COMPENSATION_FAILED = "compensation_failed"
    #: Recovery gave up after repeated crashes in the same step: a human decides.
    PARKED = "parked"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True when nothing more will happen without an operator."""
        return self in _FINISHED


_FINISHED = frozenset(
    {
        WorkflowStatus.COMPLETED,
        WorkflowStatus.COMPENSATED,
        WorkflowStatus.COMPENSATION_FAILED,
        WorkflowStatus.PARKED,
        WorkflowStatus.CANCELLED,
    }
)
