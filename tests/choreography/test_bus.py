"""EventBus: subscriptions, delivery order, error isolation, delayed deliveries, async handlers."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import pytest
from pydantic import BaseModel

from coordination import Command, Context, EntryKind, Envelope, Event, JournalEntry, Message
from coordination.choreography import EventBus, HandlerFailed
from coordination.errors import DefinitionError, UsageError
from coordination.testing import VirtualClock

# -- messages ---------------------------------------------------------------------------


class Base(Event):
    n: int = 0


class Middle(Base):
    pass


class Leaf(Middle):
    pass


class Other(Event):
    n: int = 0


class Node(Event):
    name: str


class Ping(Event):
    n: int = 0


class Pong(Event):
    n: int = 0


class DoIt(Command):
    n: int = 0


class NotAMessage(BaseModel):
    n: int = 0


class Recorder:
    """A log of (label, message) in delivery order, and handlers that write to it."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def handler(self, label: str) -> Any:
        def handle(message: Message) -> None:
            self.log.append((label, message))

        handle.__qualname__ = f"handle_{label}"
        return handle

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.log]


# -- subscribing ------------------------------------------------------------------------


def test_function_handler_gets_each_published_message() -> None:
    bus = EventBus()
    got: list[Message] = []

    def handle(message: Ping) -> None:
        got.append(message)

    bus.subscribe(Ping, handle)
    bus.publish(Ping(n=1))
    bus.publish(Pong(n=2))
    bus.publish(Ping(n=3))
    assert got == [Ping(n=1), Ping(n=3)]


def test_lambda_bound_method_and_callable_object_are_handlers() -> None:
    bus = EventBus()
    got: list[tuple[str, int]] = []

    class Listener:
        def on_ping(self, message: Ping) -> None:
            got.append(("method", message.n))

    class CallMe:
        def __call__(self, message: Ping) -> None:
            got.append(("object", message.n))

    listener = Listener()
    bus.subscribe(Ping, lambda message: got.append(("lambda", message.n)))
    bus.subscribe(Ping, listener.on_ping)
    bus.subscribe(Ping, CallMe())
    bus.publish(Ping(n=7))
    assert got == [("lambda", 7), ("method", 7), ("object", 7)]


def test_builtin_bound_method_is_a_handler() -> None:
    bus = EventBus()
    got: list[Message] = []
    bus.subscribe(Ping, got.append)
    bus.publish(Ping(n=1))
    assert got == [Ping(n=1)]


def test_decorator_form_subscribes_and_returns_the_function() -> None:
    bus = EventBus()
    got: list[int] = []

    @bus.subscribe(Ping)
    def handle(message: Ping) -> None:
        got.append(message.n)

    assert callable(handle)
    handle(Ping(n=0))  # still the plain function
    bus.publish(Ping(n=5))
    assert got == [0, 5]
    assert bus.handlers_for(Ping) == [handle]


def test_decorator_form_with_weak_keeps_only_a_weak_reference() -> None:
    bus = EventBus()

    @bus.subscribe(Ping, weak=True)
    def handle(message: Ping) -> None:
        pass

    assert bus.handlers_for(Ping) == [handle]
    del handle
    gc.collect()
    assert bus.handlers_for(Ping) == []


def test_handler_with_ctx_gets_the_envelope_ids() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    seen: list[Context] = []

    def handle(message: Ping, ctx: Context) -> None:
        seen.append(ctx)

    bus.subscribe(Ping, handle)
    cause = bus.envelope(Other())
    envelope = bus.publish(Ping(n=1), cause=cause)
    [ctx] = seen
    assert isinstance(ctx, Context)
    assert ctx.correlation_id == envelope.correlation_id == cause.correlation_id
    assert ctx.message_id == envelope.message_id
    assert ctx.causation_id == cause.message_id
    assert ctx.clock is clock
    assert ctx.attempt == 1
    assert envelope.message_id in ctx.idempotency_key


def test_context_is_recognised_by_annotation_or_by_the_name_ctx() -> None:
    bus = EventBus()
    seen: list[Any] = []

    def by_annotation(message: Ping, context: Context) -> None:
        seen.append(("annotation", context))

    def by_name(message, ctx):  # type: ignore[no-untyped-def]
        seen.append(("name", ctx))

    bus.subscribe(Ping, by_annotation)
    bus.subscribe(Ping, by_name)
    envelope = bus.publish(Ping())
    assert [label for label, _ in seen] == ["annotation", "name"]
    for _, ctx in seen:
        assert isinstance(ctx, Context)
        assert ctx.message_id == envelope.message_id
    # each handler has its own idempotency key for the same message
    assert seen[0][1].idempotency_key != seen[1][1].idempotency_key


def test_a_handler_without_ctx_gets_only_the_message() -> None:
    bus = EventBus()
    calls: list[tuple[Any, ...]] = []

    def handle(*args: Any) -> None:
        calls.append(args)

    def with_default(message: Ping, extra: int = 3) -> None:
        calls.append((message, extra))

    bus.subscribe(Ping, handle)
    bus.subscribe(Ping, with_default)
    bus.publish(Ping(n=1))
    assert calls == [(Ping(n=1),), (Ping(n=1), 3)]


def test_handlers_for_lists_handlers_in_delivery_order() -> None:
    bus = EventBus()
    r = Recorder()
    on_base, on_leaf, on_middle, on_event = (r.handler(x) for x in ("b", "l", "m", "e"))
    bus.subscribe(Base, on_base)
    bus.subscribe(Event, on_event)
    bus.subscribe(Leaf, on_leaf)
    bus.subscribe(Middle, on_middle)
    assert bus.handlers_for(Leaf) == [on_leaf, on_middle, on_base, on_event]
    assert bus.handlers_for(Middle) == [on_middle, on_base, on_event]
    assert bus.handlers_for(Base) == [on_base, on_event]
    assert bus.handlers_for(Other) == [on_event]
    assert bus.handlers_for(Pong) == [on_event]
    assert EventBus().handlers_for(Ping) == []


def test_delivery_follows_the_mro_most_specific_first_then_subscription_order() -> None:
    bus = EventBus()
    r = Recorder()
    # subscribed deliberately out of MRO order
    bus.subscribe(Base, r.handler("base-1"))
    bus.subscribe(Message, r.handler("message"))
    bus.subscribe(Leaf, r.handler("leaf-1"))
    bus.subscribe(Event, r.handler("event"))
    bus.subscribe(Middle, r.handler("middle-1"))
    bus.subscribe(Base, r.handler("base-2"))
    bus.subscribe(Leaf, r.handler("leaf-2"))

    bus.publish(Leaf())
    assert r.labels == ["leaf-1", "leaf-2", "middle-1", "base-1", "base-2", "event", "message"]
    r.log.clear()
    bus.publish(Middle())
    assert r.labels == ["middle-1", "base-1", "base-2", "event", "message"]
    r.log.clear()
    bus.publish(Base())
    assert r.labels == ["base-1", "base-2", "event", "message"]
    r.log.clear()
    bus.publish(Other())
    assert r.labels == ["event", "message"]


def test_a_handler_subscribed_to_several_classes_of_the_mro_runs_once_most_specific_place() -> None:
    bus = EventBus()
    r = Recorder()
    twice = r.handler("twice")
    bus.subscribe(Base, twice)
    bus.subscribe(Base, r.handler("base"))
    bus.subscribe(Leaf, r.handler("leaf"))
    bus.subscribe(Leaf, twice)
    bus.subscribe(Event, twice)

    bus.publish(Leaf())
    assert r.labels == ["leaf", "twice", "base"]
    r.log.clear()
    bus.publish(Middle())  # reaches `twice` only through Base
    assert r.labels == ["twice", "base"]
    r.log.clear()
    bus.publish(Other())  # only through Event
    assert r.labels == ["twice"]


def test_the_delivery_plan_follows_later_subscriptions() -> None:
    bus = EventBus()
    r = Recorder()
    bus.subscribe(Base, r.handler("base"))
    bus.publish(Leaf())  # plan computed and cached
    bus.subscribe(Leaf, r.handler("leaf"))
    bus.publish(Leaf())
    assert r.labels == ["base", "leaf", "base"]


def test_subscribing_the_same_handler_twice_is_a_no_op() -> None:
    bus = EventBus()
    r = Recorder()
    first, second = r.handler("first"), r.handler("second")
    assert bus.subscribe(Ping, first) is first
    bus.subscribe(Ping, second)
    assert bus.subscribe(Ping, first) is first  # neither doubled nor moved behind `second`
    bus.publish(Ping())
    assert r.labels == ["first", "second"]
    assert bus.handlers_for(Ping) == [first, second]


def test_subscribing_the_same_bound_method_or_builtin_method_twice_is_a_no_op() -> None:
    bus = EventBus()
    got: list[Any] = []

    class Listener:
        def on_ping(self, message: Ping) -> None:
            got.append(("method", message.n))

    listener = Listener()
    bus.subscribe(Ping, listener.on_ping)
    bus.subscribe(Ping, listener.on_ping)  # a new bound-method object, the same handler
    bus.subscribe(Pong, got.append)
    bus.subscribe(Pong, got.append)  # likewise for a builtin's bound method
    bus.publish(Ping(n=1))
    bus.publish(Pong(n=2))
    assert got == [("method", 1), Pong(n=2)]


@pytest.mark.parametrize(("first_weak", "second_weak"), [(False, True), (True, False)])
def test_subscribing_again_with_another_weak_flag_keeps_the_first_subscription(
    first_weak: bool, second_weak: bool
) -> None:
    bus = EventBus()
    got: list[Message] = []
    failures: list[HandlerFailed] = []
    bus.subscribe(HandlerFailed, failures.append)

    def handle(message: Ping) -> None:
        got.append(message)

    bus.subscribe(Ping, handle, weak=first_weak)
    bus.subscribe(Ping, handle, weak=second_weak)
    bus.publish(Ping(n=1))
    assert got == [Ping(n=1)]
    assert failures == []
    assert bus.handlers_for(Ping) == [handle]


def test_unsubscribe_stops_delivery_of_that_type_only() -> None:
    bus = EventBus()
    r = Recorder()
    both, other = r.handler("both"), r.handler("other")
    bus.subscribe(Ping, both)
    bus.subscribe(Pong, both)
    bus.subscribe(Ping, other)
    bus.unsubscribe(Ping, both)
    bus.publish(Ping())
    bus.publish(Pong())
    assert r.labels == ["other", "both"]
    assert bus.handlers_for(Ping) == [other]
    assert bus.handlers_for(Pong) == [both]


def test_unsubscribe_of_unknown_handler_or_type_does_nothing() -> None:
    bus = EventBus()
    r = Recorder()
    handle = r.handler("h")
    bus.subscribe(Ping, handle)
    bus.unsubscribe(Pong, handle)  # never subscribed to Pong
    bus.unsubscribe(Ping, r.handler("stranger"))
    bus.unsubscribe(Other, handle)  # a type nobody subscribed to
    bus.publish(Ping())
    assert r.labels == ["h"]


def test_unsubscribe_of_a_base_class_subscription_stops_subclass_delivery() -> None:
    bus = EventBus()
    r = Recorder()
    handle = r.handler("base")
    bus.subscribe(Base, handle)
    bus.publish(Leaf())  # caches the plan for Leaf
    bus.unsubscribe(Base, handle)
    bus.publish(Leaf())
    assert r.labels == ["base"]


def test_unsubscribe_bound_method_and_builtin_method() -> None:
    bus = EventBus()
    got: list[Any] = []

    class Listener:
        def on_ping(self, message: Ping) -> None:
            got.append("method")

    listener = Listener()
    bus.subscribe(Ping, listener.on_ping)
    bus.subscribe(Pong, got.append)
    bus.unsubscribe(Ping, listener.on_ping)  # another bound-method object
    bus.unsubscribe(Pong, got.append)  # another builtin bound-method object
    bus.publish(Ping())
    bus.publish(Pong())
    assert got == []
    assert bus.handlers_for(Ping) == []
    assert bus.handlers_for(Pong) == []


def test_subscribed_is_temporary() -> None:
    bus = EventBus()
    r = Recorder()
    handle = r.handler("temp")
    with bus.subscribed(Ping, handle):
        assert bus.handlers_for(Ping) == [handle]
        bus.publish(Ping(n=1))
    bus.publish(Ping(n=2))
    assert r.log == [("temp", Ping(n=1))]
    assert bus.handlers_for(Ping) == []


def test_subscribed_unsubscribes_when_the_block_raises() -> None:
    bus = EventBus()
    r = Recorder()
    handle = r.handler("temp")
    with pytest.raises(KeyError), bus.subscribed(Ping, handle):
        raise KeyError("boom")
    bus.publish(Ping())
    assert r.log == []


def test_subscribed_with_a_builtin_method() -> None:
    bus = EventBus()
    got: list[Message] = []
    with bus.subscribed(Ping, got.append):
        bus.publish(Ping(n=1))
    bus.publish(Ping(n=2))
    assert got == [Ping(n=1)]


def test_weak_handler_stops_receiving_once_collected() -> None:
    bus = EventBus()
    got: list[int] = []

    def handle(message: Ping) -> None:
        got.append(message.n)

    bus.subscribe(Ping, handle, weak=True)
    bus.publish(Ping(n=1))
    del handle
    gc.collect()
    bus.publish(Ping(n=2))
    assert got == [1]
    assert bus.handlers_for(Ping) == []


def test_weak_bound_method_stops_when_its_object_is_collected() -> None:
    bus = EventBus()
    got: list[int] = []

    class Listener:
        def on_ping(self, message: Ping) -> None:
            got.append(message.n)

    listener = Listener()
    alive = weakref.ref(listener)
    bus.subscribe(Ping, listener.on_ping, weak=True)
    bus.publish(Ping(n=1))
    del listener
    gc.collect()
    assert alive() is None  # the bus did not keep it alive
    bus.publish(Ping(n=2))
    assert got == [1]


def test_handlers_are_strong_by_default() -> None:
    bus = EventBus()
    got: list[Any] = []

    class Listener:
        def on_ping(self, message: Ping) -> None:
            got.append(("method", message.n))

    def subscribe_and_forget() -> weakref.ref[Listener]:
        listener = Listener()
        bus.subscribe(Ping, listener.on_ping)
        bus.subscribe(Ping, lambda message: got.append(("lambda", message.n)))
        return weakref.ref(listener)

    alive = subscribe_and_forget()
    gc.collect()
    assert alive() is not None
    bus.publish(Ping(n=3))
    assert got == [("method", 3), ("lambda", 3)]


def test_a_collected_weak_handler_leaves_the_others_in_place() -> None:
    bus = EventBus()
    r = Recorder()
    first, gone, last = r.handler("first"), r.handler("gone"), r.handler("last")
    bus.subscribe(Ping, first)
    bus.subscribe(Ping, gone, weak=True)
    bus.subscribe(Ping, last)
    bus.publish(Ping())
    del gone
    gc.collect()
    bus.publish(Ping())
    assert r.labels == ["first", "gone", "last", "first", "last"]
    assert bus.handlers_for(Ping) == [first, last]


# -- error isolation --------------------------------------------------------------------


def boom(message: Message) -> None:
    raise ValueError(f"cannot handle {type(message).__name__}")


def test_a_raising_handler_never_stops_the_others() -> None:
    bus = EventBus()
    r = Recorder()
    bus.subscribe(Leaf, r.handler("before"))
    bus.subscribe(Leaf, boom)
    bus.subscribe(Leaf, r.handler("after"))
    bus.subscribe(Base, r.handler("base"))
    envelope = bus.publish(Leaf())
    assert r.labels == ["before", "after", "base"]
    assert isinstance(envelope, Envelope)


def test_a_failure_is_published_as_handler_failed() -> None:
    bus = EventBus()
    failures: list[tuple[HandlerFailed, Context]] = []

    def on_failure(failure: HandlerFailed, ctx: Context) -> None:
        failures.append((failure, ctx))

    bus.subscribe(Ping, boom)
    bus.subscribe(HandlerFailed, on_failure)
    envelope = bus.publish(Ping(n=1), correlation_id="order-1")
    [(failure, ctx)] = failures
    assert failure.handler == f"{__name__}.boom"
    assert failure.message_type == f"{__name__}:Ping"
    assert failure.message_id == envelope.message_id
    assert failure.correlation_id == "order-1"
    assert failure.error == "ValueError: cannot handle Ping"
    # the failure belongs to the same flow instance and was caused by the failed message
    assert ctx.correlation_id == "order-1"
    assert ctx.causation_id == envelope.message_id
    assert ctx.message_id != envelope.message_id


def test_handler_failed_names_lambdas_methods_and_callable_objects() -> None:
    bus = EventBus()
    failures: list[HandlerFailed] = []

    class Listener:
        def on_ping(self, message: Ping) -> None:
            raise RuntimeError("method")

    class Failing:
        def __call__(self, message: Ping) -> None:
            raise RuntimeError("object")

    def raise_lambda(message: Ping) -> None:
        raise RuntimeError("lambda")

    bus.subscribe(Ping, lambda message: raise_lambda(message))
    bus.subscribe(Ping, Listener().on_ping)
    bus.subscribe(Ping, Failing())
    bus.subscribe(HandlerFailed, failures.append)
    bus.publish(Ping())
    assert [f.error for f in failures] == [
        "RuntimeError: lambda",
        "RuntimeError: method",
        "RuntimeError: object",
    ]
    names = [f.handler for f in failures]
    assert names[0].endswith("<lambda>")
    assert names[1].endswith("Listener.on_ping")
    assert names[2].endswith("Failing")
    assert all(name.startswith(__name__) for name in names)


def test_on_failure_receives_a_journal_entry() -> None:
    clock = VirtualClock()
    entries: list[JournalEntry] = []
    bus = EventBus(clock=clock, on_failure=entries.append)
    bus.subscribe(Ping, boom)
    bus.subscribe(Ping, lambda message: None)
    envelope = bus.publish(Ping(), correlation_id="c-1")
    [entry] = entries
    assert isinstance(entry, JournalEntry)
    assert entry.kind is EntryKind.FAILED
    assert entry.action == f"{__name__}.boom"
    assert entry.correlation_id == "c-1"
    assert entry.causation_id == envelope.message_id
    assert entry.error == "ValueError: cannot handle Ping"
    assert entry.at == clock.now()
    assert "Ping" in str(entry)


def test_a_failing_handler_failed_handler_is_logged_never_republished(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entries: list[JournalEntry] = []
    bus = EventBus(on_failure=entries.append)
    seen: list[str] = []

    def fails_on_failure(failure: HandlerFailed) -> None:
        seen.append(failure.handler)
        raise RuntimeError("the failure handler broke too")

    bus.subscribe(Ping, boom)
    bus.subscribe(HandlerFailed, fails_on_failure)
    with caplog.at_level(logging.WARNING, logger="coordination.bus"):
        bus.publish(Ping())
    assert seen == [f"{__name__}.boom"]  # one HandlerFailed, no second one about itself
    assert [entry.action for entry in entries] == [
        f"{__name__}.boom",
        f"{__name__}.{fails_on_failure.__qualname__}",
    ]
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        "fails_on_failure" in text and "HandlerFailed" in text and "broke too" in text
        for text in messages
    )
    assert len(messages) == 2


def test_a_catch_all_handler_that_always_raises_does_not_loop() -> None:
    bus = EventBus()
    delivered: list[str] = []

    def catch_all(message: Event) -> None:
        delivered.append(type(message).__name__)
        raise RuntimeError("always")

    bus.subscribe(Event, catch_all)
    bus.publish(Ping())
    assert delivered == ["Ping", "HandlerFailed"]


# -- FIFO, breadth-first ----------------------------------------------------------------


def test_publishes_from_handlers_are_delivered_breadth_first_in_fifo_order() -> None:
    bus = EventBus()
    tree = {"A": ["B1", "B2"], "B1": ["C1", "C2"], "B2": ["C3"], "C1": ["D1"]}
    log: list[str] = []

    def expand(node: Node) -> None:
        log.append(node.name)
        for child in tree.get(node.name, ()):
            bus.publish(Node(name=child))

    def second(node: Node) -> None:
        log.append(f"second:{node.name}")
        if node.name == "A":
            bus.publish(Node(name="B3"))

    bus.subscribe(Node, expand)
    bus.subscribe(Node, second)
    bus.publish(Node(name="A"))
    assert log == [
        "A", "second:A",
        "B1", "second:B1", "B2", "second:B2", "B3", "second:B3",
        "C1", "second:C1", "C2", "second:C2", "C3", "second:C3",
        "D1", "second:D1",
    ]  # fmt: skip


def test_publish_inside_a_handler_returns_its_envelope_at_once() -> None:
    bus = EventBus()
    log: list[str] = []
    returned: list[Envelope[Message]] = []

    def on_ping(ping: Ping) -> None:
        log.append("ping")
        envelope = bus.publish(Pong(n=ping.n), correlation_id="c")
        returned.append(envelope)
        log.append("ping handler done")  # before Pong was delivered

    def on_pong(pong: Pong, ctx: Context) -> None:
        log.append("pong")
        assert ctx.message_id == returned[0].message_id

    bus.subscribe(Ping, on_ping)
    bus.subscribe(Pong, on_pong)
    bus.publish(Ping(n=4))
    assert log == ["ping", "ping handler done", "pong"]
    [envelope] = returned
    assert envelope.message == Pong(n=4)
    assert envelope.correlation_id == "c"


def test_outer_publish_returns_after_the_whole_cascade() -> None:
    bus = EventBus()
    delivered: list[int] = []

    def count_down(ping: Ping) -> None:
        delivered.append(ping.n)
        if ping.n:
            bus.publish(Ping(n=ping.n - 1))
            bus.publish(Pong(n=ping.n))

    bus.subscribe(Ping, count_down)
    bus.subscribe(Pong, lambda pong: delivered.append(-pong.n))
    bus.publish(Ping(n=3))
    assert delivered == [3, 2, -3, 1, -2, 0, -1]


def test_publishing_on_another_bus_inside_a_handler_joins_the_cascade() -> None:
    first, second = EventBus(), EventBus()
    log: list[str] = []

    def on_first(ping: Ping) -> None:
        log.append("first")
        second.publish(Pong())
        log.append("first done")

    first.subscribe(Ping, on_first)
    first.subscribe(Ping, lambda ping: log.append("first again"))
    second.subscribe(Pong, lambda pong: log.append("second"))
    first.publish(Ping())
    assert log == ["first", "first done", "first again", "second"]


def test_a_new_publish_after_a_cascade_starts_a_fresh_one() -> None:
    bus = EventBus()
    log: list[str] = []
    bus.subscribe(Ping, lambda ping: log.append(f"ping {ping.n}"))
    bus.publish(Ping(n=1))
    bus.publish(Ping(n=2))
    assert log == ["ping 1", "ping 2"]


# -- call_later: retries as delayed deliveries -------------------------------------------


def test_a_delayed_callback_runs_after_everything_queued_and_sleeps_only_when_idle() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    log: list[tuple[str, float]] = []

    def on_ping(ping: Ping) -> None:
        log.append(("ping", clock.monotonic()))
        bus.call_later(5.0, lambda: log.append(("retry", clock.monotonic())))
        bus.publish(Pong(n=1))
        bus.publish(Pong(n=2))

    def on_pong(pong: Pong) -> None:
        log.append((f"pong {pong.n}", clock.monotonic()))
        assert clock.sleeps == []  # nothing slept while there was work queued

    bus.subscribe(Ping, on_ping)
    bus.subscribe(Pong, on_pong)
    bus.publish(Ping())
    assert log == [("ping", 0.0), ("pong 1", 0.0), ("pong 2", 0.0), ("retry", 5.0)]
    assert clock.sleeps == [5.0]


def test_delayed_callbacks_run_in_due_order_and_sleep_only_the_remaining_time() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    log: list[tuple[str, float]] = []

    def on_ping(ping: Ping) -> None:
        for label, delay in (("three", 3.0), ("one", 1.0), ("one again", 1.0)):
            bus.call_later(delay, lambda label=label: log.append((label, clock.monotonic())))

    bus.subscribe(Ping, on_ping)
    bus.publish(Ping())
    assert log == [("one", 1.0), ("one again", 1.0), ("three", 3.0)]
    assert clock.sleeps == [1.0, 2.0]


def test_a_zero_delay_callback_runs_after_the_queue_without_sleeping() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    log: list[str] = []

    def on_ping(ping: Ping) -> None:
        log.append("ping")
        bus.call_later(0, lambda: log.append("later"))
        bus.publish(Pong())

    bus.subscribe(Ping, on_ping)
    bus.subscribe(Pong, lambda pong: log.append("pong"))
    bus.publish(Ping())
    assert log == ["ping", "pong", "later"]
    assert clock.sleeps == []


def test_a_callback_whose_time_came_during_delivery_needs_no_sleep() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    log: list[str] = []

    def on_ping(ping: Ping) -> None:
        bus.call_later(1.0, lambda: log.append("later"))
        bus.publish(Pong(n=1))
        bus.publish(Pong(n=2))

    def on_pong(pong: Pong) -> None:
        log.append(f"pong {pong.n}")
        if pong.n == 1:
            clock.advance(2.0)  # slow work: the callback is due by now

    bus.subscribe(Ping, on_ping)
    bus.subscribe(Pong, on_pong)
    bus.publish(Ping())
    assert log == ["pong 1", "pong 2", "later"]
    assert clock.sleeps == []


def test_retries_from_handlers_keep_publish_from_returning_until_they_ran() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    log: list[tuple[str, float]] = []

    def attempt(ping: Ping, number: int) -> None:
        log.append((f"attempt {number}", clock.monotonic()))
        if number < 3:
            bus.call_later(float(number), lambda: attempt(ping, number + 1))
        else:
            bus.publish(Pong(n=ping.n))

    bus.subscribe(Ping, lambda ping: attempt(ping, 1))
    bus.subscribe(Pong, lambda pong: log.append(("pong", clock.monotonic())))
    bus.subscribe(Other, lambda other: log.append(("other", clock.monotonic())))

    def also(ping: Ping) -> None:
        bus.publish(Other())

    bus.subscribe(Ping, also)
    bus.publish(Ping(n=1))
    assert log == [
        ("attempt 1", 0.0),
        ("other", 0.0),
        ("attempt 2", 1.0),
        ("attempt 3", 3.0),
        ("pong", 3.0),
    ]
    assert clock.sleeps == [1.0, 2.0]


def test_call_later_outside_a_cascade_starts_one_and_runs_it() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    log: list[str] = []
    bus.subscribe(Ping, lambda ping: log.append("ping"))

    def later() -> None:
        log.append("later")
        bus.publish(Ping())
        log.append("published")

    bus.call_later(2.0, later)
    assert log == ["later", "published", "ping"]
    assert clock.sleeps == [2.0]


def test_call_later_with_an_async_callback_awaits_it() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    log: list[str] = []

    async def later() -> None:
        await asyncio.sleep(0)
        log.append("later")

    def on_ping(ping: Ping) -> None:
        bus.call_later(1.0, later)

    bus.subscribe(Ping, on_ping)
    bus.publish(Ping())
    bus.call_later(0.5, later)
    assert log == ["later", "later"]
    assert clock.sleeps == [1.0, 0.5]


def test_call_later_inside_publish_async_sleeps_on_the_clock() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    log: list[tuple[str, float]] = []

    async def on_ping(ping: Ping) -> None:
        await asyncio.sleep(0)
        log.append(("ping", clock.monotonic()))
        bus.call_later(2.0, lambda: log.append(("later", clock.monotonic())))
        await bus.publish_async(Pong())

    bus.subscribe(Ping, on_ping)
    bus.subscribe(Pong, lambda pong: log.append(("pong", clock.monotonic())))

    async def main() -> None:
        await bus.publish_async(Ping())
        assert log == [("ping", 0.0), ("pong", 0.0), ("later", 2.0)]

    asyncio.run(main())
    assert clock.sleeps == [2.0]


# -- async handlers ---------------------------------------------------------------------


def test_publish_async_awaits_async_handlers_in_order() -> None:
    bus = EventBus()
    log: list[str] = []

    async def first(ping: Ping) -> None:
        await asyncio.sleep(0)
        log.append("first")
        await bus.publish_async(Pong())
        log.append("first done")

    def second(ping: Ping) -> None:
        log.append("second")

    class Third:
        async def __call__(self, ping: Ping, ctx: Context) -> None:
            await asyncio.sleep(0)
            log.append(f"third {ctx.message_id == envelope_ids[0]}")

    async def on_pong(pong: Pong) -> None:
        await asyncio.sleep(0)
        log.append("pong")

    envelope_ids: list[str] = []
    bus.subscribe(Ping, first)
    bus.subscribe(Ping, second)
    bus.subscribe(Ping, Third())
    bus.subscribe(Pong, on_pong)

    async def main() -> None:
        envelope = bus.envelope(Ping())
        envelope_ids.append(envelope.message_id)
        assert await bus.publish_async(envelope) is envelope
        assert log == ["first", "first done", "second", "third True", "pong"]

    asyncio.run(main())


def test_a_failing_async_handler_is_isolated_and_reported() -> None:
    bus = EventBus()
    log: list[str] = []
    failures: list[HandlerFailed] = []

    async def fails(ping: Ping) -> None:
        await asyncio.sleep(0)
        raise ValueError("async boom")

    bus.subscribe(Ping, fails)
    bus.subscribe(Ping, lambda ping: log.append("after"))
    bus.subscribe(HandlerFailed, failures.append)
    asyncio.run(bus.publish_async(Ping()))
    bus.publish(Ping())
    assert log == ["after", "after"]
    assert [f.error for f in failures] == ["ValueError: async boom"] * 2


def test_sync_publish_drives_async_handlers_on_a_private_loop() -> None:
    bus = EventBus()
    log: list[str] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def on_ping(ping: Ping, ctx: Context) -> None:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        log.append(f"ping {ping.n}")
        bus.publish(Pong(n=ping.n))  # queued, as from a sync handler
        await bus.publish_async(Pong(n=-ping.n))

    async def on_pong(pong: Pong) -> None:
        await asyncio.sleep(0)
        log.append(f"pong {pong.n}")

    bus.subscribe(Ping, on_ping)
    bus.subscribe(Pong, on_pong)
    bus.subscribe(Ping, lambda ping: log.append("sync"))
    bus.publish(Ping(n=1))
    bus.publish(Ping(n=2))
    assert log == ["ping 1", "sync", "pong 1", "pong -1", "ping 2", "sync", "pong 2", "pong -2"]
    # one private loop per cascade, closed when its publish() returned
    assert len(loops) == 2
    assert loops[0] is not loops[1]
    assert all(loop.is_closed() for loop in loops)


def test_sync_publish_inside_a_running_loop_with_async_handlers_is_an_error() -> None:
    bus = EventBus()
    log: list[str] = []

    async def on_ping(ping: Ping) -> None:
        log.append("ping")

    bus.subscribe(Pong, lambda pong: log.append("pong"))
    bus.subscribe(Ping, on_ping)

    async def main() -> None:
        with pytest.raises(UsageError, match="publish_async"):
            bus.publish(Pong())
        await bus.publish_async(Pong())

    asyncio.run(main())
    assert log == ["pong"]  # nothing was delivered by the refused publish


def test_sync_publish_inside_a_running_loop_without_async_handlers_works() -> None:
    bus = EventBus()
    log: list[str] = []
    bus.subscribe(Ping, lambda ping: log.append("ping"))

    async def main() -> None:
        bus.publish(Ping())

    asyncio.run(main())
    assert log == ["ping"]


def test_concurrent_publish_async_tasks_each_return_after_their_own_cascade() -> None:
    bus = EventBus()
    log: list[tuple[str, str]] = []
    returned: list[tuple[str, list[tuple[str, str]]]] = []

    async def on_ping(ping: Node) -> None:
        log.append(("start", ping.name))
        await asyncio.sleep(0)
        await bus.publish_async(Other(n=len(ping.name)), correlation_id=ping.name)
        log.append(("published", ping.name))

    async def on_other(other: Other, ctx: Context) -> None:
        await asyncio.sleep(0)
        log.append(("follow-up", ctx.correlation_id))
        await asyncio.sleep(0)
        log.append(("follow-up done", ctx.correlation_id))

    bus.subscribe(Node, on_ping)
    bus.subscribe(Other, on_other)

    async def one(name: str) -> None:
        await bus.publish_async(Node(name=name), correlation_id=name)
        returned.append((name, list(log)))

    async def main() -> None:
        await asyncio.gather(one("a"), one("bb"))

    asyncio.run(main())
    # the two cascades really ran interleaved on the one loop ...
    assert log[:2] == [("start", "a"), ("start", "bb")]
    assert sorted(log) == sorted(
        (kind, name)
        for name in ("a", "bb")
        for kind in ("start", "published", "follow-up", "follow-up done")
    )
    # ... and each publish_async returned only once its own follow-up had been delivered
    assert [name for name, _ in returned] in (["a", "bb"], ["bb", "a"])
    for name, seen in returned:
        assert ("follow-up done", name) in seen


# -- commands ---------------------------------------------------------------------------


def test_a_command_with_no_handler_is_refused() -> None:
    bus = EventBus()
    with pytest.raises(UsageError, match="exactly one"):
        bus.publish(DoIt())

    async def main() -> None:
        with pytest.raises(UsageError, match="exactly one"):
            await bus.publish_async(DoIt())

    asyncio.run(main())


def test_a_command_with_two_handlers_is_refused_before_any_delivery() -> None:
    bus = EventBus()
    r = Recorder()
    bus.subscribe(DoIt, r.handler("one"))
    bus.subscribe(Command, r.handler("catch-all"))  # a second handler, through the base
    with pytest.raises(UsageError, match="2 handlers"):
        bus.publish(DoIt())
    assert r.log == []


def test_a_command_with_exactly_one_handler_is_delivered() -> None:
    bus = EventBus()
    r = Recorder()
    bus.subscribe(DoIt, r.handler("one"))
    bus.publish(DoIt(n=1))
    bus.subscribe(Event, r.handler("events only"))  # not a Command base
    bus.publish(DoIt(n=2))
    assert r.log == [("one", DoIt(n=1)), ("one", DoIt(n=2))]


def test_a_command_whose_only_weak_handler_was_collected_is_refused() -> None:
    bus = EventBus()
    got: list[Message] = []

    def handle(command: DoIt) -> None:
        got.append(command)

    bus.subscribe(DoIt, handle, weak=True)
    bus.publish(DoIt(n=1))
    del handle
    gc.collect()
    with pytest.raises(UsageError, match="0 handlers"):
        bus.publish(DoIt(n=2))
    assert got == [DoIt(n=1)]


def test_a_refused_command_published_by_a_handler_is_that_handlers_failure() -> None:
    bus = EventBus()
    failures: list[HandlerFailed] = []
    log: list[str] = []

    def on_ping(ping: Ping) -> None:
        bus.publish(DoIt())
        log.append("not reached")

    bus.subscribe(Ping, on_ping)
    bus.subscribe(Ping, lambda ping: log.append("other handler"))
    bus.subscribe(HandlerFailed, failures.append)
    bus.publish(Ping())
    assert log == ["other handler"]
    [failure] = failures
    assert failure.handler.endswith("on_ping")
    assert "exactly one" in failure.error


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("not_a_type", [int, NotAMessage, Ping(), "Ping", None, Message | None])
def test_subscribing_to_something_other_than_a_message_class_is_a_definition_error(
    not_a_type: Any,
) -> None:
    bus = EventBus()
    with pytest.raises(DefinitionError, match="message class"):
        bus.subscribe(not_a_type, lambda message: None)
    assert repr(bus) == "<EventBus 0 message types, 0 subscriptions>"


@pytest.mark.parametrize("not_callable", [42, "handler", Ping()])
def test_a_non_callable_handler_is_a_definition_error(not_callable: Any) -> None:
    bus = EventBus()
    with pytest.raises(DefinitionError, match="callable"):
        bus.subscribe(Ping, not_callable)
    decorate = bus.subscribe(Ping)
    with pytest.raises(DefinitionError, match="callable"):
        decorate(not_callable)
    assert bus.handlers_for(Ping) == []


def needs_two(message: Ping, other: Pong) -> None:
    pass


def needs_three(message: Ping, ctx: Context, extra: int) -> None:
    pass


def needs_nothing() -> None:
    pass


@pytest.mark.parametrize(
    ("handler", "words"),
    [(needs_two, "'other'"), (needs_three, "'extra'"), (needs_nothing, "no argument")],
)
def test_a_handler_needing_other_arguments_is_a_definition_error(handler: Any, words: str) -> None:
    bus = EventBus()
    with pytest.raises(DefinitionError, match=words):
        bus.subscribe(Ping, handler)
    with pytest.raises(DefinitionError):
        bus.subscribe(Ping)(handler)
    assert bus.handlers_for(Ping) == []


@pytest.mark.parametrize("not_a_message", ["Ping", {"n": 1}, NotAMessage(), Ping, None])
def test_publishing_something_other_than_a_message_is_a_usage_error(not_a_message: Any) -> None:
    bus = EventBus()
    log: list[Any] = []
    bus.subscribe(Message, log.append)
    with pytest.raises(UsageError, match="Event or Command"):
        bus.publish(not_a_message)

    async def main() -> None:
        with pytest.raises(UsageError, match="Event or Command"):
            await bus.publish_async(not_a_message)

    asyncio.run(main())
    assert log == []


# -- envelopes --------------------------------------------------------------------------


def test_publish_returns_a_fresh_envelope() -> None:
    bus = EventBus()
    first = bus.publish(Ping(n=1))
    second = bus.publish(Ping(n=1))
    assert first.message == Ping(n=1)
    assert first.causation_id is None
    assert first.message_id != second.message_id
    assert first.correlation_id != second.correlation_id
    assert first.correlation_id != first.message_id


def test_publish_keeps_a_given_correlation_id() -> None:
    bus = EventBus()
    contexts: list[Context] = []
    bus.subscribe(Ping, lambda ping, ctx: contexts.append(ctx))
    envelope = bus.publish(Ping(), correlation_id="order-42")
    assert envelope.correlation_id == "order-42"
    assert envelope.causation_id is None
    assert contexts[0].correlation_id == "order-42"


def test_publish_with_a_cause_continues_its_correlation() -> None:
    bus = EventBus()
    contexts: list[Context] = []
    bus.subscribe(Pong, lambda pong, ctx: contexts.append(ctx))
    cause = bus.publish(Ping(), correlation_id="order-7")
    envelope = bus.publish(Pong(), cause=cause)
    assert envelope.correlation_id == "order-7"
    assert envelope.causation_id == cause.message_id
    assert envelope.message_id != cause.message_id
    assert (contexts[0].correlation_id, contexts[0].causation_id) == ("order-7", cause.message_id)
    # an explicit correlation id wins over the cause's
    other = bus.publish(Pong(), cause=cause, correlation_id="elsewhere")
    assert other.correlation_id == "elsewhere"
    assert other.causation_id == cause.message_id


def test_publishing_an_envelope_keeps_its_ids() -> None:
    bus = EventBus()
    contexts: list[Context] = []
    bus.subscribe(Ping, lambda ping, ctx: contexts.append(ctx))
    envelope = Envelope(Ping(n=9), "corr", "cause", "msg")
    assert bus.publish(envelope) is envelope
    assert bus.publish(envelope, correlation_id="ignored") is envelope
    assert (envelope.correlation_id, envelope.causation_id, envelope.message_id) == (
        "corr",
        "cause",
        "msg",
    )
    for ctx in contexts:
        assert (ctx.correlation_id, ctx.causation_id, ctx.message_id) == ("corr", "cause", "msg")
    assert len(contexts) == 2

    async def main() -> Envelope[Message]:
        return await bus.publish_async(envelope)

    assert asyncio.run(main()) is envelope
    assert contexts[-1].message_id == "msg"


def test_envelope_refuses_a_non_message() -> None:
    with pytest.raises(UsageError):
        EventBus().envelope("not a message")  # type: ignore[arg-type]


def test_repr_counts_types_and_subscriptions() -> None:
    bus = EventBus()
    bus.subscribe(Ping, lambda ping: None)
    bus.subscribe(Ping, lambda ping: None)
    bus.subscribe(Pong, lambda pong: None)
    assert repr(bus) == "<EventBus 2 message types, 3 subscriptions>"


def test_what_a_handler_publishes_joins_the_flow_instance_of_the_message_it_handles() -> None:
    from coordination import Event

    class Asked(Event):
        n: int

    class Answered(Event):
        n: int

    bus = EventBus()
    seen: list[tuple[str, str | None]] = []
    bus.subscribe(Asked, lambda message: bus.publish(Answered(n=message.n)))
    bus.subscribe(
        Answered, lambda message, ctx: seen.append((ctx.correlation_id, ctx.causation_id))
    )
    first = bus.publish(Asked(n=1))
    assert seen == [(first.correlation_id, first.message_id)]
    # Outside any handler, a message without a cause starts a new flow instance.
    second = bus.publish(Answered(n=2))
    assert second.correlation_id != first.correlation_id
    assert second.causation_id is None


def test_blocking_handlers_run_on_worker_threads_under_publish_async() -> None:
    import asyncio
    import threading

    from coordination import Event

    class Slow(Event):
        n: int

    class Next(Event):
        n: int

    bus = EventBus()
    threads: dict[str, threading.Thread] = {}

    def slow(message: Slow) -> None:
        threads["slow"] = threading.current_thread()
        bus.publish(Next(n=message.n))  # still joins the cascade

    def after(message: Next, ctx: Context) -> None:
        threads["next"] = threading.current_thread()

    bus.subscribe(Slow, slow, blocking=True)
    bus.subscribe(Next, after)

    async def scenario() -> threading.Thread:
        await bus.publish_async(Slow(n=1))
        return threading.current_thread()

    loop_thread = asyncio.run(scenario())
    assert threads["slow"] is not loop_thread  # did not block the loop
    assert threads["next"] is loop_thread  # a plain handler runs inline
    threads.clear()
    bus.publish(Slow(n=2))  # sync publish: on the publishing thread
    assert threads["slow"] is threading.current_thread()
