"""The flow instances a choreography is driving in this process, and the plans they follow.

A registry both the choreography and its monitor read: the reactor registers an instance
when it opens or resumes one and drops it when it ends; the monitor shows live instances
from here and finished ones (of this process or earlier ones) from the store. It does not
know the runner: it holds sagas, plans and their bound participants.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from coordination._messages import Message
from coordination.choreography._outbox import Outbox
from coordination.engine import ACTIVE, BoundAction, FlowPlan, Saga

__all__ = ["Binding", "Instance", "Instances"]


@dataclass(frozen=True, slots=True, eq=False)
class Binding:
    """One plan of a choreography (one per start message) and its bound actions."""

    plan: FlowPlan
    bound: dict[str, BoundAction]


@dataclass(frozen=True, slots=True, eq=False)
class Instance:
    """One live flow instance: its saga, the plan it follows, what it publishes."""

    saga: Saga
    binding: Binding
    outbox: Outbox


class Instances:
    """Live instances by correlation id, and the plans by start message type."""

    def __init__(self, name: str, bindings: dict[type[Message], Binding]) -> None:
        self.name = name
        self.bindings = bindings
        self._active: dict[str, Instance] = {}
        self._lock = threading.Lock()
        #: The live instance of a correlation id, or None: the dict's own `get`, as every
        #: delivery asks it (a method calling it would add a frame to each).
        self.get: Callable[[str], Instance | None] = self._active.get

    def binding_for(self, start: type[Message]) -> Binding | None:
        """The plan a `start` message (or one of its subclasses) follows."""
        found = self.bindings.get(start)
        if found is not None:
            return found
        for start_type, binding in self.bindings.items():
            if issubclass(start, start_type):
                return binding
        return None

    def add(self, instance: Instance) -> None:
        """Register a live instance (this process drives it: nobody here may take it over)."""
        with self._lock:
            if instance.saga.workflow_id not in self._active:
                ACTIVE.enter(instance.saga.workflow_id)
            self._active[instance.saga.workflow_id] = instance

    def drop(self, correlation_id: str) -> bool:
        """Forget a live instance (it ended, or this process let go); True if it was here."""
        with self._lock:
            if self._active.pop(correlation_id, None) is None:
                return False
            ACTIVE.leave(correlation_id)
            return True

    def active(self) -> list[Instance]:
        with self._lock:
            return list(self._active.values())

    def __len__(self) -> int:
        return len(self._active)
