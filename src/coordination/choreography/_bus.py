"""EventBus: in-process publish/subscribe by message type, on blinker's subscriber registry.

blinker keeps who is subscribed (one signal per message type, weak or strong references,
temporary connections); the bus adds the dispatch blinker leaves out: delivery along the
message's class hierarchy, error isolation, breadth-first FIFO order without recursion,
delayed deliveries (retries) that never sleep while other work is queued, async handlers,
and one cascade per publishing thread or task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, overload

import blinker

from coordination._clock import Clock, SystemClock
from coordination._context import Context
from coordination._journal import EntryKind, JournalEntry
from coordination._messages import Command, Envelope, Message, type_name_of
from coordination.choreography._dispatch import Dispatch, current, drive, drive_async
from coordination.choreography._events import HandlerFailed
from coordination.choreography._handlers import (
    Handler,
    Plan,
    handler_name,
    inspect_handler,
    subscribed_as,
)
from coordination.engine import describe
from coordination.errors import DefinitionError, UsageError

__all__ = ["EventBus"]

_log = logging.getLogger("coordination.bus")

M = TypeVar("M", bound=Message)
H = TypeVar("H", bound=Callable[..., Any])


class EventBus:
    """Publish messages to the handlers subscribed to their type or any of its bases.

    Delivery is breadth-first and FIFO: what a handler publishes is queued behind what is
    already queued, so long chains never recurse. A handler that raises never stops the
    others; its failure is published as `HandlerFailed`. `publish()` returns once the
    message and everything it caused (delayed retries included) have been delivered. Each
    publishing thread (or asyncio task) drains its own cascade, so publishing from several
    threads at once is safe.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        on_failure: Callable[[JournalEntry], None] | None = None,
    ) -> None:
        """`on_failure` receives a journal entry for every handler failure."""
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._on_failure = on_failure
        self._signals: dict[type[Message], blinker.Signal] = {}
        self._meta: dict[tuple[type[Message], Any], Handler] = {}
        self._plans: dict[type[Message], Plan] = {}
        self._lock = threading.RLock()
        self._has_async = False
        #: How a queue item is delivered through this bus, sync and async: bound once, so
        #: a queued message holds no bound methods of its own (10,000 queued messages were
        #: 20,000 more objects for the garbage collector to walk).
        self._delivery = (self._deliver, self._deliver_async)

    # -- subscribing ----------------------------------------------------------------------

    @overload
    def subscribe(
        self, message_type: type[M], handler: H, *, weak: bool = False, blocking: bool = False
    ) -> H: ...
    @overload
    def subscribe(
        self, message_type: type[M], *, weak: bool = False, blocking: bool = False
    ) -> Callable[[H], H]: ...
    def subscribe(
        self,
        message_type: type[M],
        handler: Any = None,
        *,
        weak: bool = False,
        blocking: bool = False,
    ) -> Any:
        """Call `handler(message)` (or `handler(message, ctx)`) for every `message_type`.

        Also works as a decorator. Subscribing the same handler twice to one type is a
        no-op. References are strong unless `weak=True`. A sync handler marked `blocking`
        (I/O, a slow call) runs on a worker thread under `publish_async`, so it never
        blocks the event loop; under `publish` it runs on the publishing thread.
        """
        if handler is None:

            def decorate(function: H) -> H:
                self.subscribe(message_type, function, weak=weak, blocking=blocking)
                return function

            return decorate
        if not (isinstance(message_type, type) and issubclass(message_type, Message)):
            raise DefinitionError(
                f"subscribe() takes a message class (an Event or Command subclass), got "
                f"{message_type!r}"
            )
        wants_context, is_async = inspect_handler(handler)
        with self._lock:
            signal = self._signals.get(message_type)
            if signal is None:
                signal = self._signals[message_type] = blinker.Signal()
            before = dict(signal.receivers)
            signal.connect(subscribed_as(signal, handler), weak=weak)
            for receiver_id in signal.receivers.keys() - before.keys():
                self._meta[(message_type, receiver_id)] = Handler(
                    None, weak, wants_context, is_async, handler_name(handler), blocking
                )
            # blinker replaces the reference of a receiver connected again (strong by weak
            # or back): keep the first subscription, which `_meta` describes
            for receiver_id, reference in before.items():
                if receiver_id in signal.receivers:
                    signal.receivers[receiver_id] = reference
            self._has_async = self._has_async or is_async
            self._plans = {}
        return handler

    def unsubscribe(self, message_type: type[Message], handler: Callable[..., Any]) -> None:
        """Stop delivering `message_type` to `handler` (nothing happens if it was not)."""
        with self._lock:
            signal = self._signals.get(message_type)
            if signal is None:
                return
            before = set(signal.receivers)
            signal.disconnect(subscribed_as(signal, handler))
            for receiver_id in before - set(signal.receivers):
                self._meta.pop((message_type, receiver_id), None)
            self._plans = {}

    @contextmanager
    def subscribed(
        self, message_type: type[M], handler: Callable[..., Any], *, weak: bool = False
    ) -> Iterator[None]:
        """A temporary subscription for the duration of a `with` block."""
        self.subscribe(message_type, handler, weak=weak)
        try:
            yield
        finally:
            self.unsubscribe(message_type, handler)

    def handlers_for(self, message_type: type[Message]) -> list[Callable[..., Any]]:
        """The live handlers a `message_type` is delivered to, in delivery order."""
        found = []
        for handler in self._plan(message_type).handlers:
            target = handler.target() if handler.weak else handler.target
            if target is not None:
                found.append(target)
        return found

    def _plan(self, message_type: type[Message]) -> Plan:
        """Handlers by class, most specific first along the MRO; each handler once."""
        plan = self._plans.get(message_type)
        if plan is not None:
            return plan
        with self._lock:
            handlers: list[Handler] = []
            seen: set[Any] = set()
            for klass in message_type.__mro__:
                signal = self._signals.get(klass)
                if signal is None:
                    continue
                for receiver_id, reference in list(signal.receivers.items()):
                    meta = self._meta.get((klass, receiver_id))
                    if meta is None or receiver_id in seen:
                        continue
                    seen.add(receiver_id)
                    handlers.append(meta._replace(target=reference))
            plan = Plan.of(tuple(handlers), issubclass(message_type, Command))
            self._plans[message_type] = plan
            return plan

    # -- publishing -----------------------------------------------------------------------

    def envelope(
        self,
        message: Message,
        *,
        correlation_id: str | None = None,
        cause: Envelope[Message] | None = None,
    ) -> Envelope[Message]:
        """Wrap `message` for publishing, continuing `cause`'s correlation when given.

        Inside a handler, with neither `cause` nor `correlation_id`, the message being
        handled is the cause: a handler's publishes join its flow instance.
        """
        return self._wrap(message, correlation_id, cause, current.get())

    @staticmethod
    def _wrap(
        message: Message,
        correlation_id: str | None,
        cause: Envelope[Message] | None,
        dispatch: Dispatch | None,
    ) -> Envelope[Message]:
        if not isinstance(message, Message):
            raise UsageError(
                f"publish() takes a message (an Event or Command instance), got "
                f"{type(message).__name__}"
            )
        if cause is None and correlation_id is None and dispatch is not None and not dispatch.done:
            cause = dispatch.current
        if cause is not None:
            return Envelope(message, correlation_id or cause.correlation_id, cause.message_id)
        return Envelope(message, correlation_id)

    def publish(
        self,
        message: Message | Envelope[Message],
        *,
        correlation_id: str | None = None,
        cause: Envelope[Message] | None = None,
    ) -> Envelope[Message]:
        """Deliver `message` and everything it causes; return its envelope.

        Called from inside a handler, the message is queued behind what is already queued
        and this returns at once (the cascade's first `publish()` returns when all is done).
        """
        if type(message) in self._plans and cause is None and current.get() is None:
            # The common case, taken without the general path's calls: a top-level publish
            # of a message type delivered before, on a thread with no cascade yet.
            envelope: Envelope[Message] = Envelope(message, correlation_id)  # type: ignore[arg-type]
            if isinstance(message, Command):
                self._check_command(message)
            if not self._has_async:
                dispatch = Dispatch()
                deliver, deliver_async = self._delivery
                dispatch.queue.append((deliver, deliver_async, envelope))
                drive(dispatch)
                return envelope
            message = envelope
        envelope, queued = self._enter(message, correlation_id, cause)
        if queued:
            return envelope
        if self._has_async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise UsageError(
                    "this bus has async handlers and publish() was called inside a running "
                    "event loop; use `await bus.publish_async(...)`"
                )
        self._drain(envelope)
        return envelope

    async def publish_async(
        self,
        message: Message | Envelope[Message],
        *,
        correlation_id: str | None = None,
        cause: Envelope[Message] | None = None,
    ) -> Envelope[Message]:
        """Like `publish()`, awaiting async handlers on the running loop."""
        envelope, queued = self._enter(message, correlation_id, cause)
        if queued:
            return envelope
        await self._drain_async(envelope)
        return envelope

    def _enter(
        self,
        message: Message | Envelope[Message],
        correlation_id: str | None,
        cause: Envelope[Message] | None,
    ) -> tuple[Envelope[Message], bool]:
        """The envelope to publish, and whether it joined the running cascade's queue
        (published from inside a handler: delivered after what is already queued)."""
        dispatch = current.get()
        envelope = (
            message
            if isinstance(message, Envelope)
            else self._wrap(message, correlation_id, cause, dispatch)
        )
        self._check_command(envelope.message)
        if dispatch is not None and not dispatch.done:
            dispatch.queue.append(self._item(envelope))
            return envelope, True
        return envelope, False

    def _check_command(self, message: Message) -> None:
        if isinstance(message, Command):
            plan = self._plans.get(type(message)) or self._plan(type(message))
            if plan.one_handler:
                return
            count = len(self.handlers_for(type(message)))  # live ones: weak ones may be gone
            if count != 1:
                raise UsageError(
                    f"{type(message).__name__} is a Command and has {count} handlers; a "
                    f"command needs exactly one (publish an Event for several or none)"
                )

    def call_later(self, delay: float, callback: Callable[[], object]) -> None:
        """Run `callback` in the current cascade after `delay` seconds on the bus clock.

        Used for retries: the cascade delivers whatever else is queued meanwhile, and its
        `publish()` returns only after the callback ran (if it returns an awaitable, that is
        awaited too). Outside a cascade, this starts one and waits.
        """
        dispatch = current.get()
        due = self.clock.monotonic() + max(delay, 0.0)
        if dispatch is not None and not dispatch.done:
            dispatch.later(due, self.clock, callback)
            return
        dispatch = Dispatch()
        dispatch.later(due, self.clock, callback)
        drive(dispatch)

    async def call_later_async(self, delay: float, callback: Callable[[], object]) -> None:
        """Like `call_later`, starting a cascade driven on the running loop if none runs."""
        dispatch = current.get()
        due = self.clock.monotonic() + max(delay, 0.0)
        if dispatch is not None and not dispatch.done:
            dispatch.later(due, self.clock, callback)
            return
        dispatch = Dispatch()
        dispatch.later(due, self.clock, callback)
        await drive_async(dispatch)

    # -- dispatching ----------------------------------------------------------------------

    def _item(self, envelope: Envelope[Message]) -> tuple[Any, Any, Envelope[Message]]:
        """A queue item: how the cascade delivers `envelope` (sync and async) through us."""
        deliver, deliver_async = self._delivery
        return (deliver, deliver_async, envelope)

    def _drain(self, envelope: Envelope[Message]) -> None:
        dispatch = Dispatch()
        dispatch.queue.append(self._item(envelope))
        drive(dispatch)

    async def _drain_async(self, envelope: Envelope[Message]) -> None:
        dispatch = Dispatch()
        dispatch.queue.append(self._item(envelope))
        await drive_async(dispatch)

    def _context(self, envelope: Envelope[Message], handler: Handler) -> Context:
        return Context(
            envelope.correlation_id,
            f"{envelope.message_id}:{handler.name}",
            1,
            None,
            self.clock,
            message_id=envelope.message_id,
            causation_id=envelope.causation_id,
        )

    def _deliver(self, envelope: Envelope[Message], dispatch: Dispatch) -> None:
        message = envelope.message
        plan = self._plans.get(type(message)) or self._plan(type(message))
        plain = plan.plain
        if plain is not None:
            for target in plain:
                try:
                    target(message)
                except Exception as error:
                    self._failed(envelope, plan.named(target), error)
            return
        for handler in plan.handlers:
            target = handler.target() if handler.weak else handler.target
            if target is None:
                continue  # a weakly referenced handler that is gone
            try:
                if handler.wants_context:
                    result = target(message, self._context(envelope, handler))
                else:
                    result = target(message)
                if handler.is_async:
                    if dispatch.runner is None:
                        dispatch.runner = asyncio.Runner()
                    dispatch.runner.run(result)
            except Exception as error:
                self._failed(envelope, handler, error)

    async def _deliver_async(self, envelope: Envelope[Message]) -> None:
        message = envelope.message
        plan = self._plans.get(type(message)) or self._plan(type(message))
        for handler in plan.handlers:
            target = handler.target() if handler.weak else handler.target
            if target is None:
                continue
            try:
                arguments = (
                    (message, self._context(envelope, handler))
                    if handler.wants_context
                    else (message,)
                )
                if handler.blocking and not handler.is_async:
                    # Its publishes still join this cascade: the thread gets this context.
                    await asyncio.to_thread(target, *arguments)
                    continue
                result = target(*arguments)
                if handler.is_async:
                    await result
            except Exception as error:
                self._failed(envelope, handler, error)

    def _failed(self, envelope: Envelope[Message], handler: Handler, error: Exception) -> None:
        message = envelope.message
        _log.warning(
            "handler %s failed on %s %s: %s",
            handler.name,
            type(message).__name__,
            envelope.message_id,
            describe(error),
            extra={"correlation_id": envelope.correlation_id},
        )
        if self._on_failure is not None:
            self._on_failure(
                JournalEntry(
                    EntryKind.FAILED,
                    "bus",
                    handler.name,
                    envelope.correlation_id,
                    envelope.message_id,
                    1,
                    self.clock.now(),
                    None,
                    None,
                    describe(error),
                    f"handling {type(message).__name__}",
                )
            )
        if isinstance(message, HandlerFailed):
            return  # logged, never published again: no failure loops
        failure = HandlerFailed(
            handler=handler.name,
            message_type=type_name_of(type(message)),
            message_id=envelope.message_id,
            correlation_id=envelope.correlation_id,
            error=describe(error),
        )
        self.publish(Envelope(failure, envelope.correlation_id, envelope.message_id))

    def __repr__(self) -> str:
        count = sum(len(signal.receivers) for signal in self._signals.values())
        return f"<EventBus {len(self._signals)} message types, {count} subscriptions>"
