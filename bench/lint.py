"""Lint and graph of a choreography of N actions (target: lint under 1 s for 200 actions).

The flow is generated: a chain of N participants, each taking the previous one's event
(every fifth also joins the event of three steps before), each with an undo. It is well
wired, so lint finds nothing; the time is the whole `lint(participants)` call, including
reading the signatures into its model.

    PYTHONPATH=. .venv/bin/python bench/lint.py [--actions 200] [--rounds 5]

Prints the best round of lint, graph(...).mermaid() and graph(...).dot(), in ms.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from coordination import Participant
from coordination.observe import graph, lint


def wide_participants(actions: int) -> list[type[Participant]]:
    """The interfaces of a generated, well-wired chain of `actions` actions."""
    lines = [
        "from abc import abstractmethod",
        "from coordination import Event, Participant, action",
        "class M0(Event, type_name='bench.lint:M0'):",
        "    n: int",
    ]
    for i in range(1, actions + 1):
        lines += [
            f"class M{i}(Event, type_name='bench.lint:M{i}'):",
            "    n: int",
            f"class U{i}(Event, type_name='bench.lint:U{i}'):",
            "    n: int",
        ]
    for i in range(actions):
        joined = f", j: M{i - 2}" if i % 5 == 4 and i >= 2 else ""
        lines += [
            f"class P{i}(Participant):",
            "    @action",
            "    @abstractmethod",
            f"    def a{i}(self, m: M{i}{joined}) -> M{i + 1}: ...",
            f"    @a{i}.compensation",
            "    @abstractmethod",
            f"    def u{i}(self, m: M{i + 1}) -> U{i + 1}: ...",
        ]
    namespace: dict[str, Any] = {"__name__": f"bench_lint_{actions}"}
    exec(compile("\n".join(lines), f"<bench.lint {actions}>", "exec"), namespace)
    return [namespace[f"P{i}"] for i in range(actions)]


def _best(rounds: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return min(times)


#: lint of a choreography of 200 actions, at most this many seconds.
TARGET_SECONDS = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    participants = wide_participants(options.actions)
    findings = lint(participants)
    assert findings == [], findings
    print(f"{options.actions} actions, best of {options.rounds} rounds")
    timed: dict[str, Callable[[], object]] = {
        "lint": lambda: lint(participants),
        "graph.mermaid()": lambda: graph(participants).mermaid(),
        "graph.dot()": lambda: graph(participants).dot(),
    }
    best = {name: _best(options.rounds, work) for name, work in timed.items()}
    for name, seconds in best.items():
        print(f"  {name + ':':<17}{seconds * 1000:8.1f} ms")
    met = best["lint"] < TARGET_SECONDS
    print(
        f"target: lint of {options.actions} actions < {TARGET_SECONDS:.0f} s: "
        f"{'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
