"""Requests for an instance another process drives: a cancel, an outside message that came
early. Decided once for both runners.

An operator's `cancel()` or an outside message for an instance that a live process holds
cannot act on it directly (that process owns it; acting would race it). Instead it leaves
a durable request beside the instance (`Store.request`) and returns. The owner looks for
requests at its step boundaries, at most every `REQUEST_POLL` seconds while it drives (so
an instance that ends sooner never pays a read), and always when it resumes an instance it
claimed or right after it lets one go to wait: it carries each out as if it had been asked
in its own process (a cancel stops it at this boundary and undoes; a message is kept for
its wait), and only then drops them, so a crash in between leaves them for the next owner.
Carrying a request out twice is harmless: a second cancel, or a message received already,
changes nothing.

No request is ever lost between an owner letting go and a requester finding it busy: the
requester claims the instance itself once its request is kept (an owner that let go
meanwhile left it free), and an owner that lets go looks for requests after letting go
(and claims the instance back for them). An owner killed between letting go and looking
leaves a waiting instance nobody holds with a request: `resume_due()` finds it (see
`_operators.due_instances`) and carries it out.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from coordination._messages import Message
from coordination._status import WorkflowStatus
from coordination.engine._plan import FlowPlan, PlannedWait
from coordination.engine._recovery import claim
from coordination.errors import CoordinationError, UsageError
from coordination.stores._records import Request, RunRecord
from coordination.stores._store import Store

__all__ = [
    "REQUEST_POLL",
    "Requestable",
    "carry_out",
    "claim_or_request",
    "first_look",
    "pending",
]

_log = logging.getLogger("coordination.engine")

#: Seconds between an owner's looks for requests while it drives an instance.
REQUEST_POLL = 0.1
#: After an unreadable request (a message type this process does not know), look again
#: only this much later: it is reported each time it is looked at.
_UNREADABLE_BACKOFF = 30.0

_ACTIVE = frozenset({WorkflowStatus.RUNNING, WorkflowStatus.WAITING})


class Requestable(Protocol):
    """What carrying out requests needs of an instance (a `Saga`)."""

    workflow_id: str
    plan: FlowPlan
    cancelling: bool
    #: When to look for requests next (`time.monotonic()`).
    requests_due: float

    @property
    def status(self) -> WorkflowStatus: ...

    @property
    def past_point_of_no_return(self) -> bool: ...

    @property
    def lost(self) -> bool: ...

    def received(self, planned: PlannedWait) -> bool:
        """Whether `planned` has its message (or timed out, or was skipped) already."""
        ...

    def cancel(self) -> None: ...

    def arrive(self, planned: PlannedWait, message: Message) -> bool: ...

    def drop_requests(self, upto: int) -> None: ...


def first_look(claimed: bool) -> float:
    """When an instance looks for requests first (`time.monotonic()`): a claimed one at
    once (requests may have been left for its previous owner), a new one once it has run
    for `REQUEST_POLL` (so an instance that ends sooner never pays a read)."""
    return 0.0 if claimed else time.monotonic() + REQUEST_POLL


def pending(store: Store, instance: Requestable) -> list[Request]:
    """The requests left for `instance` (and when to look next); an unreadable one is
    reported and looked at again later, never allowed to stop the instance."""
    instance.requests_due = time.monotonic() + REQUEST_POLL
    try:
        return store.requests(instance.workflow_id)
    except CoordinationError as error:
        instance.requests_due = time.monotonic() + _UNREADABLE_BACKOFF
        _log.warning("%s: its requests are left for now: %s", instance.workflow_id, error)
        return []


def carry_out(instance: Requestable, found: list[Request]) -> None:
    """Carry out `found` (oldest first) as if each had been asked in this process, then
    drop them: a cancel stops the instance at this boundary and undoes what was done (if it
    still can be: not finished, not undoing, not past its pivot); a message is kept for its
    wait (or wakes the instance). What can no longer be carried out is reported."""
    for request in found:
        if instance.lost:
            return  # another owner took it: the requests are its to carry out
        status = instance.status
        if request.message is None:
            if status in _ACTIVE and not instance.cancelling:
                if instance.past_point_of_no_return:
                    _log.warning(
                        "%s: a cancel request came past its point of no return; it goes on",
                        instance.workflow_id,
                    )
                else:
                    instance.cancel()
            continue
        planned = instance.plan.wait_for(request.message)
        if planned is None or instance.received(planned):
            continue  # a duplicate (or a type the flow no longer waits for)
        if status in _ACTIVE and not instance.cancelling:
            instance.arrive(planned, request.message)
        else:
            _log.warning(
                "%s: %s came while it was %s; nothing waits for it any more",
                instance.workflow_id,
                type(request.message).__name__,
                status.name,
            )
    if not instance.lost:
        instance.drop_requests(found[-1].seq)


def claim_or_request(
    store: Store, record: RunRecord, me: str, now: float, message: Message | None
) -> int | None:
    """Claim `record` to act on it here (its new token); or, while another live process
    holds it, leave that owner a durable request (a cancel when `message` is None) and
    return None: the owner carries it out at its next step boundary.

    `UsageError` if the instance finished before the request could be kept.
    """
    workflow_id = record.workflow_id
    token = claim(store, workflow_id, record.owner, me, now)
    if token is not None:
        return token
    if not store.request(workflow_id, message, now=now):
        what = "cancel" if message is None else type(message).__name__
        raise UsageError(
            f"workflow {workflow_id!r} finished before this {what} could be kept for it; "
            f"look at it again"
        )
    # The owner may have let go since: then nobody would look for the request. Claim it
    # here (a new owner reads its requests when it resumes the instance).
    fresh = store.get_run(workflow_id)
    if fresh is None or fresh.status.finished:
        return None
    return claim(store, workflow_id, fresh.owner, me, now)
