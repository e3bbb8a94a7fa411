"""How a choreography carries out what an instance's saga decides, through the bus.

Each forward action is subscribed to its input types; a delivery tells the saga that input
arrived (`Saga.deliver`), and the saga says whether the action may run now (its generation
is open and all its inputs came) or must wait. A retry is a delayed re-delivery on the bus;
once an action settles, the saga's `next()` says what follows: held actions of the next
generation, an undo, or the end. The rule of what runs when is the saga's alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from coordination._messages import Envelope, Message
from coordination.choreography._bus import EventBus
from coordination.choreography._dispatch import delivering
from coordination.choreography._instances import Instance, Instances
from coordination.engine import (
    ActionRun,
    BoundAction,
    PlannedAction,
    Suspend,
    Undo,
    UndoRun,
    Wait,
    bound_to,
    first_attempt,
    loop_running,
)
from coordination.errors import LeaseLost, StoreError

__all__ = ["Reactor"]

_log = logging.getLogger("coordination.choreography")

Run = ActionRun | UndoRun


class Reactor:
    """Delivers inputs to sagas and runs the attempts they allow."""

    def __init__(self, bus: EventBus, instances: Instances, random: Callable[[], float]) -> None:
        self.bus = bus
        self.instances = instances
        self.random = random

    # -- deliveries -----------------------------------------------------------------------

    def handler(self, key: str, index: int, is_async: bool) -> Callable[..., Any]:
        """The bus handler of input `index` of action `key`.

        It takes the message alone (the envelope's ids come from the cascade delivering
        it), so the bus calls it without making a Context for every delivery.
        """
        if is_async:

            async def react_async(message: Message) -> None:
                delivered = self._delivered(key, index, delivering())
                if delivered is not None:
                    attempt = self.first(*delivered)  # an async action: always a coroutine
                    if attempt is not None:
                        await attempt

            react_async.__qualname__ = f"Choreography[{key}]"
            return react_async

        def react(message: Message) -> None:
            delivered = self._delivered(key, index, delivering())
            if delivered is not None:
                self.first(*delivered)

        react.__qualname__ = f"Choreography[{key}]"
        return react

    def _delivered(
        self, key: str, index: int, envelope: Envelope[Message] | None
    ) -> tuple[Instance, BoundAction, str] | None:
        if envelope is None:
            return None  # called outside a delivery: nothing to react to
        instance = self.instances.get(envelope.correlation_id)
        if instance is None:
            return None  # not an instance running here (finished, or another flow's)
        message_id = envelope.message_id
        planned = instance.saga.deliver(key, index, message_id)
        if planned is None:
            return None
        if planned.mapped_slot is not None and planned.item is None:
            self.advance(instance)  # a whole input of every item came last: run them now
            return None
        return instance, bound_to(instance.binding.bound, planned), message_id

    # -- attempts -------------------------------------------------------------------------

    def first(
        self, instance: Instance, bound: BoundAction, cause: str | None
    ) -> Awaitable[None] | None:
        """An action's first attempt: on this thread (`first_attempt`), or a coroutine
        for one on the running loop."""
        if bound.forward.is_async or loop_running():
            run = ActionRun(instance.saga, bound, self.random, cause)
            return self._attempt_async(instance, run)
        try:
            carried = first_attempt(instance.saga, bound, self.random, cause)
        except (LeaseLost, StoreError) as error:
            self._lost(instance, error)
            return None
        if carried is None:
            self.advance(instance)
        else:
            self._after(instance, *carried)
        return None

    def attempt(self, instance: Instance, run: Run) -> Awaitable[None] | None:
        """One attempt on this thread, or a coroutine for one on the running loop."""
        if run.plan.is_async or loop_running():
            return self._attempt_async(instance, run)
        try:
            delay = run.make_attempt()
        except (LeaseLost, StoreError) as error:
            self._lost(instance, error)
            return None
        self._after(instance, run, delay)
        return None

    async def _attempt_async(self, instance: Instance, run: Run) -> None:
        try:
            delay = await run.make_attempt_async(offload=not run.attempts.plan.is_async)
        except (LeaseLost, StoreError) as error:
            self._lost(instance, error)
            return
        self._after(instance, run, delay)

    def _after(self, instance: Instance, run: Run, delay: float | None) -> None:
        if delay is not None:  # a retry: delivered again after the delay
            self.bus.call_later(delay, lambda: self.attempt(instance, run))
            return
        self.advance(instance)

    def _lost(self, instance: Instance, error: BaseException) -> None:
        """The store refused a write: this process stops driving the instance."""
        _log.warning("%s: stopped: %s", instance.saga.workflow_id, error)
        self.release(instance)

    # -- what follows ---------------------------------------------------------------------

    def advance(
        self, instance: Instance, admit: Callable[[PlannedAction], bool] | None = None
    ) -> None:
        """Carry out what the saga says follows: held actions, an undo, or the end.

        `admit` (recovery's delivery count) may refuse an action: then nothing is run.
        """
        saga = instance.saga
        decision = saga.next()
        if decision is None:
            self.release(instance)
            return
        if isinstance(decision, Wait):
            return
        if isinstance(decision, Suspend):
            if saga.suspend():
                self.instances.drop(saga.workflow_id)  # WAITING, let go: no lease held
            else:
                self.bus.call_later(0.0, lambda: self.advance(instance))  # it came meanwhile
            return
        if isinstance(decision, Undo):
            run = self.undo_run(instance, decision)
            self.bus.call_later(0.0, lambda: self.attempt(instance, run))
            return
        if admit is not None and not all(admit(planned) for planned in decision):
            return
        for planned in decision:  # held actions whose inputs had all come
            bound = bound_to(instance.binding.bound, planned)
            cause = saga.progress.cause(planned)
            self.bus.call_later(0.0, lambda b=bound, c=cause: self.first(instance, b, c))  # type: ignore[misc]

    def undo_run(self, instance: Instance, undo: Undo) -> UndoRun:
        return UndoRun(
            instance.saga, undo, bound_to(instance.binding.bound, undo.action), self.random
        )

    def release(self, instance: Instance) -> None:
        """Stop driving `instance`: it ended, or it must be resumed from the store."""
        saga = instance.saga
        if not self.instances.drop(saga.workflow_id):
            return
        if not saga.finished and not saga.lost:
            try:
                saga.store.release_run(saga.workflow_id, saga.token, now=saga.clock.now())
            except StoreError:
                pass  # the lease runs out, then recover() takes it
