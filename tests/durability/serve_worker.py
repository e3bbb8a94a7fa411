"""A worker process: `serve()` the shop's orders on a store until `<folder>/stop` exists.

python -m tests.durability.serve_worker STORE EFFECTS FOLDER [--lease S] [--pause S] [--seed N]
    [--runner orchestration|choreography]

STORE is a SQLite file or `postgres:<schema>` (tests.postgres.open_spec). It writes
`<folder>/serving-<pid>` once it serves.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path
from typing import Any

from coordination.choreography import Choreography, EventBus
from examples.ecommerce import PlaceOrder
from tests.crash.shop import (
    DurableLogistics,
    DurableNotifications,
    DurablePayments,
    DurableSellers,
    Effects,
)
from tests.postgres import open_spec


def shop(runner: str, effects: Effects, store: Any) -> Any:
    """The shop's orders as an orchestrator, or as a choreography of the same participants."""
    participants = (
        DurablePayments(effects),
        DurableLogistics(effects),
        DurableSellers(effects),
        DurableNotifications(effects),
    )
    if runner == "choreography":
        return Choreography(EventBus(), *participants, store=store)
    assert runner == "orchestration", runner
    return PlaceOrder(*participants, store=store)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("effects", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--runner", default="orchestration")
    args = parser.parse_args()
    effects = Effects(args.effects, pause=args.pause, seed=args.seed)
    store = open_spec(args.store, lease=args.lease)
    orders = shop(args.runner, effects, store)
    stop = threading.Event()

    def watch() -> None:
        while not (args.folder / "stop").exists():
            time.sleep(0.02)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    (args.folder / f"serving-{os.getpid()}").touch()
    try:
        orders.serve(poll=args.poll, stop=stop)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
