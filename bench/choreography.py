"""Choreography vs orchestration: the e-commerce flow per workflow, both runners and by hand.

Three sides run the same participant calls on the same in-memory services (fresh ones per
round), one order at a time:

- choreography: `Choreography(EventBus(), ...)` and `flow.publish(order)`: every action
  reacts to its inputs on the bus (the confirmation is a join on CourierAssigned and
  StockReserved), each flow instance is tracked (journal rows, joins, status) and the last
  10,000 finished ones are kept for the monitor;
- orchestration: `Orchestrator.run(order)` of the same four steps, the last 10,000 finished
  runs kept in the default MemoryStore;
- hand-written: the same calls as a try/except saga with no journal and no store.

The payment timeout. The example's `Payments.charge` is declared with `timeout=2.0`, and a
timed sync attempt runs on a worker thread in both runners. An orchestration step can
override it (`step(..., timeout=None)`, as bench/orchestration.py does) but a choreography
uses the action's own declaration, and an implementation cannot change its interface's
`@action`. So the default comparison plugs in `UntimedPayments`, an interface identical to
`Payments` but without the timeout, implemented by delegating to `InMemoryPayments`; all
three sides use that same object, so the thread cost is measured by neither runner.
`--with-timeouts` adds two sides that keep the timeout (stock `PlaceOrder` and a
choreography of the stock `InMemoryPayments`): one worker thread per workflow in both.

    PYTHONPATH=. .venv/bin/python bench/choreography.py [--workflows 20000] [--rounds 5]
                                                        [--with-timeouts]

Prints per-workflow µs of each side and the ratios choreography / orchestration and each
runner / hand-written. No target: this records what each style costs here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from abc import abstractmethod
from collections.abc import Callable

from bench._common import hand_written, measure, orders, services
from coordination import Context, Event, Participant, Retry, WorkflowStatus, action
from coordination.choreography import Choreography, EventBus
from coordination.orchestration import Orchestrator, parallel, step
from examples.ecommerce import (
    ConfirmationSent,
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    Logistics,
    Notifications,
    OrderPlaced,
    PaymentCaptured,
    PaymentRefunded,
    PlaceOrder,
    Sellers,
)


class UntimedPayments(Participant):
    """`Payments` as the example declares it, less the 2 s attempt timeout."""

    @action(retry=Retry(attempts=3, backoff=0.05))
    @abstractmethod
    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured: ...

    @charge.compensation
    @abstractmethod
    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded: ...


class BenchPayments(UntimedPayments):
    """The example's in-memory payments behind the untimed interface."""

    def __init__(self, inner: InMemoryPayments) -> None:
        self.inner = inner

    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured:
        return self.inner.charge(order, ctx)

    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded:
        return self.inner.refund(payment, ctx)


class UntimedOrder(Orchestrator[OrderPlaced, ConfirmationSent], name="bench-untimed-order"):
    """PlaceOrder's steps, with the untimed payments interface."""

    steps = (
        step(UntimedPayments.charge),
        parallel(step(Logistics.assign_courier), step(Sellers.reserve_stock)),
        step(Notifications.send_confirmation),
    )


Parts = tuple[BenchPayments, InMemorySellers, InMemoryLogistics, InMemoryNotifications]


def parts(workflows: int) -> Parts:
    payments, sellers, logistics, notifications = services(workflows)
    return BenchPayments(payments), sellers, logistics, notifications


def time_hand(workflows: int) -> float:
    services_, messages = parts(workflows), orders(workflows)
    started = time.perf_counter()
    for index, message in enumerate(messages):
        hand_written(services_, message, f"h{index}")
    return (time.perf_counter() - started) / workflows


def time_orchestrated(workflows: int, timed: bool = False) -> float:
    messages = orders(workflows)
    runner: Orchestrator[OrderPlaced, ConfirmationSent] = (
        PlaceOrder(*services(workflows)) if timed else UntimedOrder(*parts(workflows))
    )
    run = runner.run
    started = time.perf_counter()
    for message in messages:
        run(message)
    elapsed = (time.perf_counter() - started) / workflows
    last = runner.runs()[-1]
    assert last.status is WorkflowStatus.COMPLETED, last.journal.render()
    return elapsed


def time_choreography(workflows: int, timed: bool = False) -> float:
    messages = orders(workflows)
    flow = Choreography(EventBus(), *(services(workflows) if timed else parts(workflows)))
    publish = flow.publish
    started = time.perf_counter()
    for message in messages:
        envelope = publish(message)
    elapsed = (time.perf_counter() - started) / workflows
    view = flow.monitor.get(envelope.correlation_id)
    assert view.status is WorkflowStatus.COMPLETED, view.render()
    assert len(flow.instances) == 0  # no live saga kept once an instance ended
    return elapsed


class Kick(Event):
    """Starts a batch of orders from inside one cascade (a handler publishing them)."""


def time_in_flight(workflows: int, in_flight: int) -> float:
    """`publish()` of `in_flight` orders at a time from inside one handler: the bus queues
    them breadth-first, so every instance of the batch is started (in flight) before the
    first one's next step runs. With 1, the same path one order at a time."""
    messages = orders(workflows)
    flow = Choreography(EventBus(), *parts(workflows))
    batch: list[OrderPlaced] = []

    def kick(_: Kick) -> None:
        for message in batch:
            flow.publish(message)

    flow.bus.subscribe(Kick, kick)
    started = time.perf_counter()
    for first in range(0, workflows, in_flight):
        batch[:] = messages[first : first + in_flight]
        flow.bus.publish(Kick())
    elapsed = (time.perf_counter() - started) / workflows
    views = flow.monitor.all()
    assert len(views) == min(workflows, 10_000), len(views)
    assert all(view.status is WorkflowStatus.COMPLETED for view in views)
    return elapsed


#: Choreography per workflow at most this many times orchestration (same flow, in memory).
TARGET_RATIO = 1.5
#: Choreography with 10,000 instances in flight at most this many times one at a time.
IN_FLIGHT_RATIO = 1.2
IN_FLIGHT = 10_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--with-timeouts",
        action="store_true",
        help="also compare both runners with the payment timeout kept (a thread per workflow)",
    )
    args = parser.parse_args(argv)
    in_flight = min(IN_FLIGHT, args.workflows)
    sides: list[tuple[str, Callable[[int], float]]] = [
        ("hand-written", time_hand),
        ("orchestrated", time_orchestrated),
        ("choreography", time_choreography),
        ("in flight, 1", lambda n: time_in_flight(n, 1)),
        (f"in flight, {in_flight}", lambda n: time_in_flight(n, in_flight)),
    ]
    if args.with_timeouts:
        sides += [
            ("orch+timeout", lambda n: time_orchestrated(n, timed=True)),
            ("chor+timeout", lambda n: time_choreography(n, timed=True)),
        ]
    samples = measure(sides, args.workflows, args.rounds)
    best = {name: min(values) for name, values in samples.items()}
    print(f"python {sys.version.split()[0]}, {args.workflows} workflows x {args.rounds} rounds")
    print("best of rounds, per workflow:")
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"  {name:<13} {best[name] * 1e6:8.2f} µs  (median {median * 1e6:.2f})   "
            f"{best[name] / best['hand-written']:5.2f}x hand-written"
        )
    hand = best["hand-written"]
    print(
        f"choreography / orchestration: {best['choreography'] / best['orchestrated']:.2f}x   "
        f"(choreography {(best['choreography'] - hand) * 1e6:.2f} µs over hand-written, "
        f"orchestration {(best['orchestrated'] - hand) * 1e6:.2f} µs)"
    )
    if args.with_timeouts:
        ratio = best["chor+timeout"] / best["orch+timeout"]
        print(f"with the payment timeout: choreography / orchestration: {ratio:.2f}x")
    ratio = best["choreography"] / best["orchestrated"]
    met = ratio <= TARGET_RATIO
    print(
        f"target: choreography <= {TARGET_RATIO}x orchestration per workflow: "
        f"{ratio:.2f}x {'met' if met else 'MISSED'}"
    )
    flight = best[f"in flight, {in_flight}"] / best["in flight, 1"]
    flight_met = flight <= IN_FLIGHT_RATIO
    print(
        f"target: choreography with {in_flight} instances in flight <= {IN_FLIGHT_RATIO}x "
        f"one at a time: {flight:.2f}x {'met' if flight_met else 'MISSED'}"
    )
    return 0 if met and flight_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
