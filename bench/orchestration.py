"""Orchestration overhead: the e-commerce flow run by `Orchestrator` vs written by hand.

Both sides make the same participant calls on the same in-memory services; the hand-written
side is a try/except saga with no journal and no store. The difference, measured in the same
run on the same machine, is what the orchestrator costs: journal entries, the run record in
the default MemoryStore (last 10,000 finished runs kept), contexts, lifecycle checks.

    .venv/bin/python bench/orchestration.py [--workflows 20000] [--rounds 5]

Prints per-workflow and per-step overhead and the ratio; target: at most 30 µs overhead
per 4-step sync workflow without timeouts.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

from coordination import Context
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
    Payments,
    Sellers,
)

STEPS = 4
TARGET_US = 30.0


class BenchOrder(Orchestrator[OrderPlaced, ConfirmationSent], name="bench-order"):
    """PlaceOrder without its payment timeout: a sync run on the calling thread only."""

    steps = (
        step(Payments.charge, timeout=None),
        parallel(step(Logistics.assign_courier), step(Sellers.reserve_stock)),
        step(Notifications.send_confirmation),
    )


Services = tuple[InMemoryPayments, InMemorySellers, InMemoryLogistics, InMemoryNotifications]


def services(workflows: int) -> Services:
    return (
        InMemoryPayments({"c1": 10**15}),
        InMemorySellers({"sku-1": 10**12}),
        InMemoryLogistics(f"courier-{i}" for i in range(workflows)),
        InMemoryNotifications(),
    )


def orders(workflows: int) -> list[OrderPlaced]:
    return [
        OrderPlaced(
            order_id=f"o{i}",
            customer_id="c1",
            email="buyer@example.org",
            sku="sku-1",
            quantity=1,
            amount_cents=1_000,
            address="1 Main St",
        )
        for i in range(workflows)
    ]


def hand_written(parts: Services, order: OrderPlaced, workflow_id: str) -> ConfirmationSent:
    """The same calls as BenchOrder, as a hand-written saga with try/except."""
    payments, sellers, logistics, notifications = parts
    payment = payments.charge(order, Context(workflow_id, f"{workflow_id}:Payments.charge"))
    try:
        courier = logistics.assign_courier(
            order, payment, Context(workflow_id, f"{workflow_id}:Logistics.assign_courier")
        )
        try:
            stock = sellers.reserve_stock(
                order, payment, Context(workflow_id, f"{workflow_id}:Sellers.reserve_stock")
            )
            try:
                return notifications.send_confirmation(
                    order,
                    courier,
                    stock,
                    Context(workflow_id, f"{workflow_id}:Notifications.send_confirmation"),
                )
            except Exception:
                sellers.release_stock(stock, Context(workflow_id, f"{workflow_id}:undo"))
                raise
        except Exception:
            logistics.release_courier(courier, Context(workflow_id, f"{workflow_id}:undo"))
            raise
    except Exception:
        payments.refund(payment, Context(workflow_id, f"{workflow_id}:undo"))
        raise


def time_hand(workflows: int) -> float:
    parts, messages = services(workflows), orders(workflows)
    started = time.perf_counter()
    for index, message in enumerate(messages):
        hand_written(parts, message, f"h{index}")
    return (time.perf_counter() - started) / workflows


def time_orchestrated(workflows: int) -> float:
    parts, messages = services(workflows), orders(workflows)
    runner = BenchOrder(*parts)
    run = runner.run
    started = time.perf_counter()
    for message in messages:
        run(message)
    elapsed = (time.perf_counter() - started) / workflows
    last = runner.runs()[-1]
    assert last.status.name == "COMPLETED", last.journal.render()
    return elapsed


def measure(workflows: int, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"hand-written": [], "orchestrated": []}
    sides: list[tuple[str, Callable[[int], float]]] = [
        ("hand-written", time_hand),
        ("orchestrated", time_orchestrated),
    ]
    for _ in range(rounds):
        for name, side in sides:  # interleaved, so drift hits both sides alike
            gc.collect()
            samples[name].append(side(workflows))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    samples = measure(args.workflows, args.rounds)
    hand = min(samples["hand-written"])
    orchestrated = min(samples["orchestrated"])
    overhead = orchestrated - hand
    print(f"python {sys.version.split()[0]}, {args.workflows} workflows x {args.rounds} rounds")
    print("best of rounds, per workflow:")
    for name, values in samples.items():
        best, median = min(values) * 1e6, statistics.median(values) * 1e6
        print(f"  {name:<13} {best:8.2f} µs  (median {median:.2f})")
    print(f"overhead per workflow: {overhead * 1e6:8.2f} µs   (target <= {TARGET_US:.0f} µs)")
    print(f"overhead per step:     {overhead * 1e6 / STEPS:8.2f} µs")
    print(f"ratio orchestrated / hand-written: {orchestrated / hand:.2f}x")
    met = overhead * 1e6 <= TARGET_US
    print("target met" if met else "TARGET MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
