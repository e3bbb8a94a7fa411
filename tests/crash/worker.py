"""A worker process for crash tests: recover what a killed predecessor left, then go on.

python -m tests.crash.worker STORE EFFECTS COUNT [--pause SECONDS] [--seed N]

STORE is a SQLite file or `postgres:<schema>` (tests.postgres.open_spec).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from coordination.choreography import Choreography, EventBus
from coordination.stores import Store
from examples.ecommerce import PlaceOrder
from tests.crash.shop import (
    DurableLogistics,
    DurableNotifications,
    DurablePayments,
    DurableSellers,
    Effects,
    order_for,
)
from tests.postgres import open_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("effects", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--die-in", default=None, help="an action that kills its own process")
    parser.add_argument(
        "--mode", choices=("orchestration", "batched", "choreography"), default="orchestration"
    )
    args = parser.parse_args(argv)
    effects = Effects(args.effects, pause=args.pause, seed=args.seed, die_in=args.die_in)
    store = open_spec(args.store)
    try:
        if args.mode == "choreography":
            return react(store, effects, args.count)
        return orchestrate(store, effects, args.count, batch=8 if args.mode == "batched" else 1)
    finally:
        store.close()


def orchestrate(store: Store, effects: Effects, count: int, batch: int = 1) -> int:
    """The orders one by one (`run()`), or `batch` at a time in lockstep (`run_many()`)."""
    orders = PlaceOrder(
        DurablePayments(effects),
        DurableSellers(effects),
        DurableLogistics(effects),
        DurableNotifications(effects),
        store=store,
    )
    orders.recover()
    if batch == 1:
        for index in range(count):
            orders.run(order_for(index), workflow_id=f"order-{index}")
    else:
        for first in range(0, count, batch):
            indexes = range(first, min(first + batch, count))
            orders.run_many(
                [order_for(index) for index in indexes],
                workflow_ids=[f"order-{index}" for index in indexes],
            )
    print("done", flush=True)
    return 0


def react(store: Store, effects: Effects, count: int) -> int:
    """The same orders as a durable choreography of the same participants."""
    flow = Choreography(
        EventBus(),
        DurablePayments(effects),
        DurableLogistics(effects),
        DurableSellers(effects),
        DurableNotifications(effects),
        store=store,
    )
    flow.recover()
    for index in range(count):
        # Idempotent: an order already finished runs nothing; one a killed process left
        # half done (and recover() did not take yet) is resumed.
        flow.publish(order_for(index), correlation_id=f"order-{index}")
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
