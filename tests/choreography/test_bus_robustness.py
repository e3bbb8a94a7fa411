"""EventBus under stress: failing subscribers, long chains, several publishing threads."""

from __future__ import annotations

import sys
import threading
from typing import Any

from coordination import Context, Event, WorkflowStatus
from coordination.choreography import Choreography, EventBus, HandlerFailed
from coordination.testing import VirtualClock
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    OrderPlaced,
    PaymentCaptured,
)


class Chain(Event):
    n: int


class Work(Event):
    thread: int
    i: int


class FollowUp(Event):
    thread: int
    i: int


def test_a_subscriber_that_always_raises_does_not_stop_the_order() -> None:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    payments = InMemoryPayments({"c1": 10_000})
    sellers = InMemorySellers({"sku-1": 5})
    logistics = InMemoryLogistics(["ann", "bob"])
    notifications = InMemoryNotifications()
    flow = Choreography(bus, payments, sellers, logistics, notifications)
    raised: list[str] = []
    failures: list[HandlerFailed] = []

    def broken_audit(message: Event) -> None:
        raised.append(type(message).__name__)
        raise RuntimeError("audit service down")

    bus.subscribe(OrderPlaced, broken_audit)
    bus.subscribe(PaymentCaptured, broken_audit)
    bus.subscribe(HandlerFailed, failures.append)

    envelope = flow.publish(
        OrderPlaced(
            order_id="o-1",
            customer_id="c1",
            email="ann@example.com",
            sku="sku-1",
            quantity=2,
            amount_cents=2_500,
            address="1 Main St",
        )
    )

    view = flow.monitor.get(envelope.correlation_id)
    assert view.status is WorkflowStatus.COMPLETED
    assert view.failed == ()
    assert view.compensated == ()
    assert raised == ["OrderPlaced", "PaymentCaptured"]
    assert [(f.handler.rsplit(".", 1)[-1], f.message_type) for f in failures] == [
        ("broken_audit", "ecommerce.OrderPlaced"),
        ("broken_audit", "ecommerce.PaymentCaptured"),
    ]
    assert all(f.correlation_id == envelope.correlation_id for f in failures)
    assert payments.snapshot() == {"balances": {"c1": 7_500}, "charged": ["o-1"]}
    assert sellers.snapshot() == {"stock": {"sku-1": 3}, "reserved": ["o-1"]}
    assert logistics.snapshot() == {"free": ["bob"], "assigned": ["o-1"]}
    [(order_id, tracking)] = notifications.snapshot()["sent"]
    assert order_id == "o-1"
    assert tracking.startswith("TRK-o-1")
    assert clock.sleeps == []  # nothing was retried


def test_a_long_chain_of_publishes_never_recurses() -> None:
    total = 100_000
    bus = EventBus()
    delivered: list[int] = []
    depth: list[int] = []

    def next_link(link: Chain) -> None:
        delivered.append(link.n)
        if link.n == total - 1:
            depth.append(len(_stack()))
        if link.n < total:
            bus.publish(Chain(n=link.n + 1))

    def _stack() -> list[Any]:
        frames: list[Any] = []
        frame: Any = sys._getframe()
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
        return frames

    bus.subscribe(Chain, next_link)
    start_depth = len(_stack())
    assert sys.getrecursionlimit() < total  # the default limit would catch any recursion
    bus.publish(Chain(n=0))
    assert delivered == list(range(total + 1))
    assert depth[0] - start_depth < 20  # the last link runs as shallow as the first


def test_threads_publishing_at_once_lose_nothing_and_each_waits_for_its_own_cascade() -> None:
    threads, per_thread = 4, 2_000
    bus = EventBus()
    barrier = threading.Barrier(threads)
    lock = threading.Lock()
    work: list[tuple[int, int, str]] = []
    follow_ups: list[tuple[int, int, str]] = []
    follow_ups_seen: list[set[int]] = [set() for _ in range(threads)]
    problems: list[str] = []

    def on_work(message: Work, ctx: Context) -> None:
        work.append((message.thread, message.i, threading.current_thread().name))
        bus.publish(FollowUp(thread=message.thread, i=message.i), correlation_id=ctx.correlation_id)

    def on_follow_up(message: FollowUp) -> None:
        follow_ups.append((message.thread, message.i, threading.current_thread().name))
        with lock:
            follow_ups_seen[message.thread].add(message.i)

    bus.subscribe(Work, on_work)
    bus.subscribe(FollowUp, on_follow_up)

    def publisher(thread: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(per_thread):
                bus.publish(Work(thread=thread, i=i))
                with lock:
                    if i not in follow_ups_seen[thread]:
                        problems.append(f"thread {thread}: publish({i}) returned too early")
        except BaseException as error:  # report it, rather than die silently in the thread
            problems.append(f"thread {thread}: {error!r}")

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so the cascades really interleave
    try:
        workers = [
            threading.Thread(target=publisher, args=(t,), name=f"publisher-{t}")
            for t in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        sys.setswitchinterval(switch_interval)

    assert not any(worker.is_alive() for worker in workers)
    assert problems == []
    expected = sorted((t, i, f"publisher-{t}") for t in range(threads) for i in range(per_thread))
    assert sorted(work) == expected  # every message exactly once, on its publisher's thread
    assert sorted(follow_ups) == expected  # every follow-up exactly once, likewise
    for t in range(threads):  # and, per thread, in order
        assert [i for thread, i, _ in work if thread == t] == list(range(per_thread))
        assert [i for thread, i, _ in follow_ups if thread == t] == list(range(per_thread))
