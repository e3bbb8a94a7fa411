"""Event bus: one event delivered to three handlers, EventBus side by side with its peers.

Every side delivers the same N events, one at a time, to three handlers that each append
the event to a list, and is timed over the whole loop:

- blinker (the baseline): `Signal.send(event)` with three receivers connected with strong
  references (the bus's default), what the bus is built on, with no dispatch of its own.
- coordination: `EventBus.publish(event)` with three handlers subscribed to the event's
  class: an envelope (message id, correlation id), the per-thread cascade, the plan of
  handlers along the class hierarchy, error isolation around each handler.
- pyee: `EventEmitter.emit("bench", event)` with three listeners.
- bubus: async and pydantic-based. Per event, `await bus.dispatch(event)`: enqueueing, the
  bus's run-loop task picking it up, its per-handler result records and watchdog tasks,
  history bookkeeping, and the completion signal the caller awaits. Its events are its own
  `BaseEvent` subclass, built before timing like the others'; the event loop is started
  before timing too. It runs `--bubus-events` events (fewer: it is ~100x slower).

The events given to blinker, EventBus and pyee are the same `coordination` Event instances,
built before timing. Rounds alternate between the sides; the best round of each is compared.
A peer that is not installed (`pip install -e '.[bench]'` installs them) is skipped with a
message.

    PYTHONPATH=. .venv/bin/python bench/bus.py [--events 20000] [--rounds 10] [--bubus-events 500]

Prints per-event µs and the ratio to blinker of each side; target: EventBus.publish at most
0.8x raw blinker send per event (moonshot 0.6x), every bus semantic kept.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import blinker

from bench._common import measure
from coordination import Event
from coordination.choreography import EventBus

TARGET_RATIO = 0.8

Handler = Callable[[Any], None]


class Tick(Event):
    """The event every side delivers (bubus gets its own `BaseEvent` with the same field)."""

    sequence: int


def events(count: int) -> list[Tick]:
    return [Tick(sequence=i) for i in range(count)]


def handlers(sink: list[Any]) -> tuple[Handler, Handler, Handler]:
    """Three distinct functions (bubus wants functions, with distinct names) doing the same."""
    append = sink.append

    def first(event: Any) -> None:
        append(event)

    def second(event: Any) -> None:
        append(event)

    def third(event: Any) -> None:
        append(event)

    return first, second, third


def check(sink: list[Any], count: int, name: str) -> None:
    if len(sink) != 3 * count:
        raise AssertionError(f"{name}: {len(sink)} deliveries, expected {3 * count}")


def time_blinker(count: int) -> float:
    sink: list[Any] = []
    signal = blinker.Signal()
    for handler in handlers(sink):
        signal.connect(handler, weak=False)
    messages = events(count)
    send = signal.send
    started = time.perf_counter()
    for message in messages:
        send(message)
    elapsed = (time.perf_counter() - started) / count
    check(sink, count, "blinker")
    return elapsed


def time_event_bus(count: int) -> float:
    sink: list[Any] = []
    bus = EventBus()
    for handler in handlers(sink):
        bus.subscribe(Tick, handler)
    messages = events(count)
    publish = bus.publish
    started = time.perf_counter()
    for message in messages:
        publish(message)
    elapsed = (time.perf_counter() - started) / count
    check(sink, count, "coordination")
    return elapsed


def time_pyee(count: int) -> float:
    from pyee import EventEmitter

    sink: list[Any] = []
    emitter = EventEmitter()
    for handler in handlers(sink):
        emitter.on("bench", handler)
    messages = events(count)
    emit = emitter.emit
    started = time.perf_counter()
    for message in messages:
        emit("bench", message)
    elapsed = (time.perf_counter() - started) / count
    check(sink, count, "pyee")
    return elapsed


def time_bubus(count: int) -> float:
    import bubus

    class BubusTick(bubus.BaseEvent[None]):  # type: ignore[misc]
        sequence: int

    async def run() -> float:
        sink: list[Any] = []
        bus = bubus.EventBus()
        for handler in handlers(sink):
            bus.on(BubusTick, handler)
        await bus.dispatch(BubusTick(sequence=-1))  # starts the bus's run loop
        sink.clear()
        messages = [BubusTick(sequence=i) for i in range(count)]
        dispatch = bus.dispatch
        started = time.perf_counter()
        for message in messages:
            await dispatch(message)
        elapsed = (time.perf_counter() - started) / count
        await bus.stop(clear=True)
        check(sink, count, "bubus")
        return elapsed

    return asyncio.run(run())


def available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError as error:
        print(f"{module}: skipped, not installed ({error}); pip install -e '.[bench]'")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--bubus-events", type=int, default=500)
    args = parser.parse_args(argv)
    sides: list[tuple[str, Callable[[int], float]]] = [
        ("blinker", time_blinker),
        ("coordination", time_event_bus),
    ]
    if available("pyee"):
        sides.append(("pyee", time_pyee))
    if available("bubus"):
        sides.append(("bubus", lambda _: time_bubus(args.bubus_events)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bubus warns about its own bus names
        samples = measure(sides, args.events, args.rounds)
    versions = ", ".join(f"{name} {version(name)}" for name, _ in sides if name != "coordination")
    print(f"python {sys.version.split()[0]}, {versions}")
    print(
        f"{args.events} events (bubus: {args.bubus_events}) x {args.rounds} rounds, 3 handlers each"
    )
    print("best of rounds, per event:")
    baseline = min(samples["blinker"])
    for name, values in samples.items():
        best, median = min(values), statistics.median(values)
        print(
            f"  {name:<13} {best * 1e6:9.2f} µs  (median {median * 1e6:.2f})   "
            f"{best / baseline:6.2f}x blinker"
        )
    ratio = min(samples["coordination"]) / baseline
    print(f"EventBus.publish / blinker send: {ratio:.2f}x   (target <= {TARGET_RATIO:.1f}x)")
    print("target met" if ratio <= TARGET_RATIO else "TARGET MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
