"""Orchestration overhead: the e-commerce flow run by `Orchestrator` vs written by hand.

Both sides make the same participant calls on the same in-memory services; the hand-written
side is a try/except saga with no journal and no store. The difference, measured in the same
run on the same machine, is what the orchestrator costs: journal entries, the run record in
the default MemoryStore (last 10,000 finished runs kept), contexts, lifecycle checks.

    PYTHONPATH=. .venv/bin/python bench/orchestration.py [--workflows 20000] [--rounds 5]

Prints per-workflow and per-step overhead and the ratio; target: at most 12 µs overhead
per 4-step sync workflow without timeouts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench._common import BenchOrder, hand_written, measure, orders, services

STEPS = 4
TARGET_US = 12.0


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    samples = measure(
        [("hand-written", time_hand), ("orchestrated", time_orchestrated)],
        args.workflows,
        args.rounds,
    )
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
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
