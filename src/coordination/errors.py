"""Every exception `coordination` raises, in one tree.

Catch `CoordinationError` to catch them all; every message says what to fix.

```
CoordinationError
├── DefinitionError            a participant, action or flow is declared wrongly
│   └── BindingError           the participants given to a runner do not fit its flow
├── MessageError               a message cannot be written or read as JSON
│   ├── UnknownMessageType     a stored type name resolves to no message class
│   └── MalformedMessage       the text is not a valid payload for its type
├── NonRetryable               raised by participants for business refusals: never retried
├── AttemptTimeout             one attempt of an action ran past its timeout (retried)
├── OutputTypeError            an action returned something other than its declared output
├── StepFailed                 a step failed after all its attempts (the run compensates)
├── CompensationFailed         an undo failed after all its attempts
├── WorkflowError              about one workflow run as a whole
│   ├── WorkflowConflict       a known workflow_id was started with a different message
│   ├── WorkflowBusy           another live owner is running that workflow
│   ├── FlowChanged            a run started by a different definition of its flow
│   ├── LeaseLost              another process took the run over: this owner stops
│   └── WorkflowNotFound       no run with that workflow_id in the store
├── JoinTimeout                a choreography join waited past its deadline for an input
├── InvalidTransition          a run was asked to move where its lifecycle forbids
├── UsageError                 an API was called in a way that cannot work (sync in a loop)
└── StoreError                 the store cannot read or write what was asked
```

`AttemptTimeout` is also a `TimeoutError`, and `OutputTypeError` a `TypeError`, so code that
already catches the built-in kinds keeps working.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AttemptTimeout",
    "BindingError",
    "CompensationFailed",
    "CoordinationError",
    "DefinitionError",
    "FlowChanged",
    "InvalidTransition",
    "JoinTimeout",
    "LeaseLost",
    "MalformedMessage",
    "MessageError",
    "NonRetryable",
    "OutputTypeError",
    "StepFailed",
    "StoreError",
    "UnknownMessageType",
    "UsageError",
    "WorkflowBusy",
    "WorkflowConflict",
    "WorkflowError",
    "WorkflowNotFound",
]


class CoordinationError(Exception):
    """Root of every error raised by `coordination`."""


class DefinitionError(CoordinationError):
    """A participant, action, message or flow is declared in a way that cannot work.

    Raised when the class is defined (or, for names that cannot be resolved yet, on first
    use), never half-way through a run.
    """


class BindingError(DefinitionError):
    """The participants handed to a runner do not match the interfaces its flow uses."""


class MessageError(CoordinationError):
    """A message cannot be turned into JSON, or JSON back into a message."""


class UnknownMessageType(MessageError):
    """A type name read from JSON resolves to no message class."""


class MalformedMessage(MessageError):
    """JSON text that is not a valid payload for the message type it names."""


class NonRetryable(CoordinationError):
    """Raise (or subclass) this for refusals that retrying cannot change, like a declined card.

    The runners never retry it, whatever an action's `Retry(retry_on=...)` says.
    """


class AttemptTimeout(CoordinationError, TimeoutError):
    """One attempt of an action ran past its timeout; it counts as a failed attempt.

    `late`, when given, is what the abandoned attempt returned after all, as
    `(succeeded, value)`: the runners handle it at once, exactly as a real late result
    (test kits inject late results this way, deterministically). `abandoned` says the
    attempt still runs on a thread of its own: what it returns later comes back late.
    """

    def __init__(
        self,
        message: str = "",
        *,
        late: tuple[bool, Any] | None = None,
        abandoned: bool = False,
    ) -> None:
        super().__init__(message)
        self.late = late
        self.abandoned = abandoned


class OutputTypeError(CoordinationError, TypeError):
    """An action returned a value that is not its declared output (never retried)."""


class StepFailed(CoordinationError):
    """A step failed after all its attempts; the run compensates what it completed.

    `step` names the action (`Interface.action`), `attempts` how many were made; the last
    attempt's exception is the `__cause__`.
    """

    def __init__(self, message: str, *, step: str, attempts: int) -> None:
        super().__init__(message)
        self.step = step
        self.attempts = attempts


class CompensationFailed(CoordinationError):
    """An undo failed after all its attempts: the run is `COMPENSATION_FAILED`.

    `step` names the action whose effect is still in place, `compensation` the undo that
    failed; the last attempt's exception is the `__cause__`.
    """

    def __init__(self, message: str, *, step: str, compensation: str, attempts: int) -> None:
        super().__init__(message)
        self.step = step
        self.compensation = compensation
        self.attempts = attempts


class WorkflowError(CoordinationError):
    """About one workflow run as a whole; `workflow_id` names it."""

    def __init__(self, message: str, *, workflow_id: str) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id


class WorkflowConflict(WorkflowError):
    """A `workflow_id` already used was started again with a different message or flow."""


class WorkflowBusy(WorkflowError):
    """Another live owner is running this workflow; try again once it has finished."""


class FlowChanged(WorkflowError):
    """A run to resume was started by a different definition of its flow (other steps or
    messages); resume it with the old code, or cancel it."""


class LeaseLost(WorkflowError):
    """Another process claimed this run (its lease had expired): this owner must stop.

    Raised by a store write fenced by a claim token that is no longer the run's. The
    superseded owner records nothing more and compensates nothing; the new owner re-runs
    whatever was in flight under the same idempotency keys.
    """


class WorkflowNotFound(WorkflowError):
    """No run with this `workflow_id` is in the store."""


class JoinTimeout(CoordinationError):
    """A choreography action waiting for several inputs did not get them all in time.

    The flow instance fails as if the action had failed: what completed is undone.
    """


class InvalidTransition(CoordinationError):
    """A run was asked to move between two statuses its lifecycle does not connect."""


class UsageError(CoordinationError):
    """An API was called in a way that cannot work, such as sync `run()` inside an event loop."""


class StoreError(CoordinationError):
    """The store cannot write or read what was asked; nothing stored was changed."""
