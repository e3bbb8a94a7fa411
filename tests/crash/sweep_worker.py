"""The crash sweep's worker: one scenario in one process, killed at one named point.

A scenario is one order (order-0 goes through, order-4 orders too much and is compensated)
run by one runner (`PlaceOrder`, or the durable `Choreography` of the same participants),
driven sync (`run`, `publish`) or async (`run_async`, `publish_async`). Role `first` runs
it from scratch; role `recover` is the fresh process after a kill: it calls `recover()` to
the end (there is no async recovery: `recover()` is sync for both runners); role `rerun` is
the other way back: the same call as `first` again, with the same id and message, which
resumes what a dead process left (so the async drives resume async).

A point is a place where the process can die, named by what happens there:

- `store.<method>(<what>)#<n>:before` / `:after`: the n-th call so named of any public
  method of the `Store` and `EventLog` protocols, before or after the real call (calls the
  store makes to itself are not counted);
- `effect.<action>(<workflow>)#<n>:before` / `:after`: inside a participant's action or
  compensation, before its effect's transaction or after its commit.

Names, not positions: under `run_async` the parallel branches finish in any order, so the
n-th store call is not always the same call, but a name is. With `--kill POINT` the process
SIGKILLs itself there; without, it counts, writing every point it passed to `points.json`.
Every run it creates is noted in `started` (after its commit), so the check can tell a run
lost from one never started.

python -m tests.crash.sweep_worker run SCENARIO ROLE DIR [--kill POINT]
python -m tests.crash.sweep_worker serve

`serve` is a fork server: it imports everything once, then forks one child per request
(a JSON line on stdin: scenario, role, dir, kill) and answers with the child's exit status.
Each child is a new process (its own pid, so its own owner id); it shares only the imports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typing_extensions import get_protocol_members

from coordination import Context
from coordination.choreography import Choreography, EventBus
from coordination.stores import EventLog, SQLiteStore, Store, Write
from examples.ecommerce import PlaceOrder
from tests.crash.shop import (
    DurableLogistics,
    DurableNotifications,
    DurablePayments,
    DurableSellers,
    Effects,
    order_for,
)

RUNNERS = ("orchestration", "choreography")
DRIVES = ("sync", "async")
PATHS = {"success": 0, "failure": 4}  # the order index: order_for(4) is out of stock
SCENARIOS = tuple(f"{r}-{d}-{p}" for r in RUNNERS for d in DRIVES for p in PATHS)
ROLES = ("first", "recover", "rerun")

STORE, EFFECTS, STARTED, POINTS = "orders.db", "effects.db", "started", "points.json"


def workflow_of(scenario: str) -> str:
    return f"order-{PATHS[scenario.rsplit('-', 1)[1]]}"


class Points:
    """Names the points a process passes; kills it at the one it was told to."""

    def __init__(self, kill: str | None) -> None:
        self.kill = kill
        self.seen: Counter[str] = Counter()
        self.trace: list[str] = []
        self.lock = threading.Lock()

    def _at(self, point: str) -> None:
        if point == self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        self.trace.append(point)

    def enter(self, label: str) -> int:
        """The point before `label`; its occurrence number, for `leave`."""
        with self.lock:
            self.seen[label] += 1
            occurrence = self.seen[label]
            self._at(f"{label}#{occurrence}:before")
        return occurrence

    def leave(self, label: str, occurrence: int) -> None:
        with self.lock:
            self._at(f"{label}#{occurrence}:after")


def _what(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What a store call is about, in words that do not depend on timing or random ids."""
    if name == "write":
        return _what_written(args[0])
    if name == "write_many":
        return " | ".join(_what_written(write) for write in args[0])
    if name in ("register_types", "close", "dead_letters", "list_runs", "forget_finished"):
        return ""
    parts = [str(args[0])]  # a workflow id, or the flow of owed_runs
    if name == "note_recovery":
        parts.append(str(args[2]))  # the position
    if name in ("count_delivery", "dead_letter"):
        parts.append(str(args[3]))  # the subscriber (message ids are random)
    if name == "claim_run" and kwargs.get("reopen"):
        parts.append("reopen")
    return " ".join(parts)


def _what_written(write: Write) -> str:
    parts = [write.workflow_id, *(record.key for record in write.records)]
    if write.status is not None:
        parts.append(f"status={write.status.name}")
    if write.finish is not None:
        parts.append(f"finish={write.finish.status.name}")
    if write.handled:
        parts.append(f"handled={len(write.handled)}")
    if write.release:
        parts.append("release")
    return " ".join(parts)


#: Every public method of the store protocols: each call is two points.
COUNTED = sorted(
    name
    for protocol in (Store, EventLog)
    for name in get_protocol_members(protocol)
    if callable(getattr(protocol, name, None))
)


#: The parallel pair: under `run_async` the courier waits until the stock step is recorded.
HELD, AWAITED = "assign_courier", "Sellers.reserve_stock"


class CountingStore(SQLiteStore):
    """A real SQLiteStore whose every protocol call (made by a runner) is two points."""

    def __init__(self, path: Path, points: Points, started: Path) -> None:
        self.points = points
        self.started = started
        self.depth = threading.local()
        #: Set once the stock step is recorded (the held courier may go on).
        self.awaited = threading.Event()
        super().__init__(path)


def _counted(name: str) -> Callable[..., Any]:
    real = getattr(SQLiteStore, name)

    def counted(self: CountingStore, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(self.depth, "value", 0)
        if depth:  # the store calling itself (start_run reading the run it found)
            return real(self, *args, **kwargs)
        label = f"store.{name}({_what(name, args, kwargs)})"
        occurrence = self.points.enter(label)
        self.depth.value = depth + 1
        try:
            result = real(self, *args, **kwargs)
        finally:
            self.depth.value = depth
        if name == "start_run" and result[1] is not None:  # created (and committed)
            with self.started.open("a") as started:
                started.write(f"{args[0]}\n")
        if name == "write" and any(record.key == AWAITED for record in args[0].records):
            self.awaited.set()
        self.points.leave(label, occurrence)
        return result

    counted.__name__ = name
    return counted


for _name in COUNTED:
    setattr(CountingStore, _name, _counted(_name))


class SweepEffects(Effects):
    """The effects ledger, with a point before each effect and one after its commit."""

    def __init__(self, path: Path, points: Points, hold: threading.Event | None) -> None:
        super().__init__(path)
        # Like the store: a commit survives a killed process (power loss is not swept).
        self.connection.execute("PRAGMA synchronous = NORMAL")
        self.points = points
        self.hold = hold

    def apply(self, ctx: Context, action: str) -> None:
        if action == HELD and self.hold is not None:
            # Both branches run at once: let the sibling's record land first, so the points
            # of this effect fall while a sibling is settled (sync runs see the other order).
            assert self.hold.wait(timeout=30), "the stock step was never recorded"
        label = f"effect.{action}({ctx.correlation_id})"
        occurrence = self.points.enter(label)
        super().apply(ctx, action)
        self.points.leave(label, occurrence)

    def undo(self, key: str, action: str) -> None:
        label = f"effect.{action}({key.partition(':')[0]})"
        occurrence = self.points.enter(label)
        super().undo(key, action)
        self.points.leave(label, occurrence)


def run(scenario: str, role: str, directory: Path, kill: str | None) -> None:
    """Run `role` of `scenario` on the files in `directory`, dying at `kill` if it comes."""
    runner, drive, _ = scenario.split("-")
    points = Points(kill)
    store = CountingStore(directory / STORE, points, directory / STARTED)
    # Only run_async runs the pair at once (recover() is sync: one after the other).
    held = runner == "orchestration" and drive == "async" and role != "recover"
    effects = SweepEffects(directory / EFFECTS, points, store.awaited if held else None)
    workflow_id = workflow_of(scenario)
    if held:
        found = SQLiteStore.get_run(store, workflow_id)  # a look, not a point
        if found is not None and found.has_step(AWAITED):
            store.awaited.set()  # recorded before the kill: nothing to wait for
    participants = (
        DurablePayments(effects),
        DurableSellers(effects),
        DurableLogistics(effects),
        DurableNotifications(effects),
    )
    order = order_for(int(workflow_id.removeprefix("order-")))
    if runner == "orchestration":
        orders = PlaceOrder(*participants, store=store)
        if role == "recover":
            orders.recover()
        elif drive == "sync":
            orders.run(order, workflow_id=workflow_id)
        else:
            asyncio.run(orders.run_async(order, workflow_id=workflow_id))
    else:
        payments, sellers, logistics, notifications = participants
        # The pair is delivered in participant order: the courier first under the sync
        # drive, the stock first under the async one (as the orchestrations see them).
        pair = (logistics, sellers) if drive == "sync" else (sellers, logistics)
        flow = Choreography(EventBus(), payments, *pair, notifications, store=store)
        if role == "recover":
            flow.recover()
        elif drive == "sync":
            flow.publish(order, correlation_id=workflow_id)
        else:
            asyncio.run(flow.publish_async(order, correlation_id=workflow_id))
    store.close()
    effects.connection.close()
    (directory / POINTS).write_text(json.dumps(points.trace))


def child(request: dict[str, Any]) -> None:
    """A forked child: run one request, with its output in files of its own, and exit."""
    directory = Path(request["dir"])
    code = 0
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        for fd, name in ((1, "stdout"), (2, "stderr")):
            out = os.open(directory / f"{request['role']}.{name}", flags, 0o600)
            os.dup2(out, fd)
            os.close(out)
        sys.stdin.close()
        signal.alarm(60)  # a child that hangs dies of SIGALRM: the sweep reports it
        run(request["scenario"], request["role"], directory, request.get("kill"))
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> int:
    """Fork one child per request line; answer each with the child's exit status."""
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="run one scenario role in this process")
    one.add_argument("scenario", choices=SCENARIOS)
    one.add_argument("role", choices=ROLES)
    one.add_argument("dir", type=Path)
    one.add_argument("--kill", default=None, help="the point to die at")
    commands.add_parser("serve", help="a fork server reading JSON requests on stdin")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve()
    run(args.scenario, args.role, args.dir, args.kill)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
