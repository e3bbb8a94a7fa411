"""The sagas this process is driving: where an operator reaches a run in flight.

An orchestrator registers the saga of every run it drives (`run()`, `send()`, `retry()`,
`recover()` ...) for as long as it drives it, so `cancel()` and `send()` called from any
thread (or from inside one of the run's own attempts) act on the live instance, under its
owner's claim, instead of finding it busy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coordination.engine._striped import StripedLocks

if TYPE_CHECKING:
    from coordination.engine._saga import Saga

__all__ = ["LIVE", "LiveSagas"]


class LiveSagas:
    """The sagas this process's orchestrators are driving now, by workflow id: an operator's
    `cancel()` reaches a run in flight through here (it stops at its next step boundary)."""

    def __init__(self) -> None:
        self._locks = StripedLocks()
        self._sagas: dict[str, Saga] = {}

    def add(self, saga: Saga) -> None:
        with self._locks.for_key(saga.workflow_id):
            self._sagas[saga.workflow_id] = saga

    def discard(self, saga: Saga) -> None:
        with self._locks.for_key(saga.workflow_id):
            if self._sagas.get(saga.workflow_id) is saga:
                del self._sagas[saga.workflow_id]

    def get(self, workflow_id: str) -> Saga | None:
        return self._sagas.get(workflow_id)  # one dict lookup: atomic


#: This process's registry of orchestrated runs in flight.
LIVE = LiveSagas()
