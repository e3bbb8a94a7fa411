"""What a start returns, alike in every SQL backend: the new run's record, or the stored one.

A start inserts if absent; whether the insert created the run is all the database says.
From it, and the start's own values, `started()` makes the answer `Store.start_run` and
`Store.start_many` give per run: `(record, 1)` for a run this call created (its lease now
renewed by the store's heartbeat), `(stored record, None)` for one that existed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from coordination._messages import Message
from coordination.errors import StoreError
from coordination.stores._records import RunRecord

__all__ = ["started", "started_each"]


def started(
    created: bool,
    workflow_id: str,
    flow: str,
    start: Message,
    *,
    owner: str,
    now: float,
    lease_expires: float,
    shape: str | None,
    hold: Callable[[str, int], None],
    stored: Callable[[str], RunRecord | None],
) -> tuple[RunRecord, int | None]:
    """The answer to one start whose insert did (`created`) or did not create the run."""
    if not created:
        existing = stored(workflow_id)
        if existing is None:  # forgotten between the two statements
            raise StoreError(f"run {workflow_id!r} vanished while starting; start it again")
        return existing, None
    hold(workflow_id, 1)
    record = RunRecord.started(
        workflow_id, flow, start, owner=owner, now=now, lease_expires=lease_expires, shape=shape
    )
    return record, 1


def started_each(
    starts: Sequence[tuple[str, Message]],
    created: Sequence[bool],
    flow: str,
    *,
    owner: str,
    now: float,
    lease_expires: float,
    shape: str | None,
    hold: Callable[[str, int], None],
    stored: Callable[[str], RunRecord | None],
) -> list[tuple[RunRecord, int | None]]:
    """`started()` for each start of a batch, in order."""
    return [
        started(
            new,
            workflow_id,
            flow,
            start,
            owner=owner,
            now=now,
            lease_expires=lease_expires,
            shape=shape,
            hold=hold,
            stored=stored,
        )
        for (workflow_id, start), new in zip(starts, created, strict=True)
    ]
