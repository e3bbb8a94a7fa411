"""What a saga's collaborators read and write of it: the state of one flow instance.

`Saga` decides what runs next; `Arrivals`, `Failures` and `UndoFacts` record what is not a
decision (outside messages and timers, failed actions, undos and late results), each under
the saga's lock, through its recorder. They are given the saga as this protocol, so they
depend on the state they share with it and not on the class that composes them.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from coordination._clock import Clock
from coordination.engine._plan import PlannedAction
from coordination.engine._progress import Progress
from coordination.engine._publishing import Publishing
from coordination.engine._recorder import Recorder
from coordination.engine._requests import Requestable
from coordination.engine._undo import UndoBook
from coordination.errors import StepFailed
from coordination.stores._records import RunRecord
from coordination.stores._store import Store

__all__ = ["SagaState"]


class SagaState(Requestable, Protocol):
    """One flow instance's state, as a `Saga` holds it."""

    record: RunRecord
    token: int
    store: Store
    clock: Clock
    recorder: Recorder
    publishing: Publishing | None
    lock: threading.RLock
    progress: Progress
    #: The first failure (None: nothing failed).
    failure: StepFailed | None
    undos: UndoBook
    #: Late results `(attempt, output)` per action, held until it settles.
    late_held: dict[str, list[tuple[int, Any]]]
    #: Timed-out attempts still running on threads of their own.
    abandoned: int

    @property
    def finished(self) -> bool: ...

    def inputs(self, action: PlannedAction) -> list[Any]: ...
