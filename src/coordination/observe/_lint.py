"""Lint: what in a flow's wiring can never work, or will hurt, said before it runs.

Each finding has a stable `code` (safe to match in CI and to silence by), a severity, the
names of what it is about, and a sentence saying what to fix:

| code | severity | finding |
|---|---|---|
| `cycle` | error | actions consume each other's outputs in a loop |
| `unproduced-input` | error | an input nobody produces keeps an action from ever running |
| `incomplete-join` | error | a join whose inputs never all arrive in one flow instance |
| `unfanned-gather` | error | a `tuple[X, ...]` input whose `X` comes one at a time |
| `command-handlers` | error | a Command with zero or several handlers |
| `pivot-in-parallel` | error | the point of no return with another action beside it |
| `unconsumed-event` | warning | an action's output nobody consumes, before the flow's end |
| `irreversible-before-failure` | warning | an action with no undo, before one that can fail |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from coordination._messages import Command, Event, Message
from coordination.observe._model import FlowModel, Node, model_of

__all__ = ["CODES", "Finding", "Severity", "lint"]


class Severity(StrEnum):
    """How bad a finding is: an error can never work; a warning works and will hurt."""

    ERROR = "error"
    WARNING = "warning"


#: Every code lint can report, with its severity. Codes never change meaning.
CODES: dict[str, Severity] = {
    "cycle": Severity.ERROR,
    "unproduced-input": Severity.ERROR,
    "incomplete-join": Severity.ERROR,
    "unfanned-gather": Severity.ERROR,
    "command-handlers": Severity.ERROR,
    "pivot-in-parallel": Severity.ERROR,
    "unconsumed-event": Severity.WARNING,
    "irreversible-before-failure": Severity.WARNING,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing to fix in a flow."""

    code: str
    severity: Severity
    #: Names of the actions (`Participant.action`) and message types it is about.
    subjects: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.code}: {self.message}"


def _finding(code: str, subjects: list[str], message: str) -> Finding:
    return Finding(code, CODES[code], tuple(dict.fromkeys(subjects)), message)


def _names(types: list[type[Message]] | tuple[type[Message], ...]) -> str:
    return ", ".join(t.__name__ for t in types)


class _Wiring:
    """Indexes over a model, built once: who consumes each produced type, what each start
    reaches. Everything is linear in the number of actions and types, so a choreography of
    hundreds of actions lints in milliseconds (bench/observe.py measures it)."""

    def __init__(self, model: FlowModel) -> None:
        self.model = model
        self.consumers: dict[type[Message], list[Node]] = {}
        for node in model.nodes:
            for made in (*node.outputs, *node.undo_outputs):
                if made not in self.consumers:
                    self.consumers[made] = model.consumers(made)
        self.reach: dict[type[Message], set[str]] = {s: self._reach(s) for s in model.starts}

    def _reach(self, start: type[Message]) -> set[str]:
        """Keys of the actions a `start` message leads to (a join needs all its inputs)."""
        outside = self.model.outside
        available: set[type[Message]] = {start, *outside}
        reached: set[str] = set()
        waiting: dict[str, set[type[Message]]] = {n.key: set(n.inputs) for n in self.model.nodes}
        by_key = {n.key: n for n in self.model.nodes}
        frontier = [start, *outside]  # a wait's message comes from outside, in the flow
        while frontier:
            made = frontier.pop()
            given = made is start or made in outside
            for node in self.model.consumers(made) if given else self.consumers[made]:
                if node.key in reached:
                    continue
                missing = waiting[node.key]
                missing.difference_update(w for w in list(missing) if issubclass(made, w))
                if not missing:
                    reached.add(node.key)
                    for output in by_key[node.key].outputs:
                        if output not in available:
                            available.add(output)
                            frontier.append(output)
        return reached

    def successors(self, node: Node) -> list[Node]:
        return [c for made in node.outputs for c in self.consumers[made]]


def _cycles(wiring: _Wiring) -> list[list[Node]]:
    """Strongly connected groups of actions that feed each other (Tarjan, iteratively)."""
    nodes = wiring.model.nodes
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[Node] = []
    found: list[list[Node]] = []
    counter = 0
    for root in nodes:
        if root.key in index:
            continue
        work: list[tuple[Node, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node.key] = low[node.key] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node.key)
            successors = wiring.successors(node)
            if position < len(successors):
                work.append((node, position + 1))
                child = successors[position]
                if child.key not in index:
                    work.append((child, 0))
                elif child.key in on_stack:
                    low[node.key] = min(low[node.key], index[child.key])
                continue
            if work:
                parent = work[-1][0]
                low[parent.key] = min(low[parent.key], low[node.key])
            if low[node.key] == index[node.key]:
                group: list[Node] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member.key)
                    group.append(member)
                    if member is node:
                        break
                if len(group) > 1 or node in wiring.successors(node):
                    found.append(sorted(group, key=lambda n: n.index))
    return found


def _check_cycles(wiring: _Wiring, findings: list[Finding]) -> set[str]:
    on_cycles: set[str] = set()
    for group in _cycles(wiring):
        keys = [n.key for n in group]
        on_cycles.update(keys)
        members = {n.key for n in group}
        passed = [
            m for n in group for m in n.outputs if {c.key for c in wiring.consumers[m]} & members
        ]
        findings.append(
            _finding(
                "cycle",
                keys + [m.__name__ for m in passed],
                f"{', '.join(keys)} consume each other's outputs ({_names(passed)}) in a loop: "
                f"a flow instance is a chain of generations and would never finish; break the "
                f"loop, or make a process that repeats start one instance per round",
            )
        )
    return on_cycles


def _check_inputs(wiring: _Wiring, on_cycles: set[str], findings: list[Finding]) -> None:
    model = wiring.model
    reached = set().union(*wiring.reach.values())
    for node in model.nodes:
        if node.key in on_cycles or any(node.key in reach for reach in wiring.reach.values()):
            continue
        missing = [
            w
            for w in node.inputs
            if not model.producers(w) and not any(issubclass(o, w) for o in model.outside)
        ]
        if missing:
            others = [w for w in node.inputs if w not in missing]
            why = (
                "and a flow instance starts with one message"
                if len(missing) > 1
                else f"and its other inputs ({_names(others)}) never come in a flow it starts"
            )
            findings.append(
                _finding(
                    "unproduced-input",
                    [node.key, *(m.__name__ for m in missing)],
                    f"{node.key} needs {_names(missing)}, which no participant produces, {why}: "
                    f"it can never run; add the participant that produces it, or take it "
                    f"out of the action's inputs",
                )
            )
        elif node.is_join and all(
            # Each input comes in some flow: only together they never do. (An input whose
            # producers never run is the fault of something upstream, reported there.)
            any(p.key in reached for p in model.producers(w))
            for w in node.inputs
        ):
            findings.append(
                _finding(
                    "incomplete-join",
                    [node.key, *(w.__name__ for w in node.inputs)],
                    f"{node.key} joins {_names(node.inputs)}, but no start message leads to all "
                    f"of them in one flow instance, so the join can never complete; make its "
                    f"inputs come from one flow, or split the action",
                )
            )


def _check_gathers(wiring: _Wiring, findings: list[Finding]) -> None:
    """A gather (`tuple[X, ...]`) needs a fan-out of X: a variadic tuple output, or a
    mapped step producing X; an X made one at a time can never be gathered."""
    model = wiring.model
    for node in model.nodes:
        for index in node.gathers:
            wanted = node.inputs[index]
            single = [p for p in model.producers(wanted) if not p.fans_out and not p.mapped]
            if not single:
                continue  # fanned out, or produced by nobody (reported as unproduced)
            findings.append(
                _finding(
                    "unfanned-gather",
                    [node.key, wanted.__name__],
                    f"{node.key} gathers tuple[{wanted.__name__}, ...], but "
                    f"{', '.join(p.key for p in single)} produces one {wanted.__name__} at a "
                    f"time: there is no fan-out to gather; return tuple[{wanted.__name__}, "
                    f"...] from it (or map it over one), or take {wanted.__name__} alone",
                )
            )


def _check_commands(wiring: _Wiring, findings: list[Finding]) -> None:
    model = wiring.model
    for command in model.messages():
        if not issubclass(command, Command):
            continue
        handlers = [n.key for n in model.consumers(command)]
        handlers += [s.name for s in model.listeners(command)]
        if len(handlers) == 1:
            continue
        if handlers:
            fix = (
                f"handled by {len(handlers)}: {', '.join(handlers)}; make it an Event if "
                f"several may react, or keep one handler"
            )
        else:
            fix = "nothing handles it; add the participant that does"
        findings.append(
            _finding(
                "command-handlers",
                [command.__name__, *handlers],
                f"{command.__name__} is a Command, so exactly one action must handle it: {fix}",
            )
        )


def _check_unconsumed(wiring: _Wiring, findings: list[Finding]) -> None:
    model = wiring.model
    by_key = {n.key: n for n in model.nodes}
    for start, reach in wiring.reach.items():
        if not reach:
            continue
        last = max(by_key[k].generation or 0 for k in reach)
        for key in sorted(reach, key=lambda k: by_key[k].index):
            node = by_key[key]
            if (node.generation or 0) >= last or all(
                model.exclusive(node, by_key[k])
                for k in reach
                if (by_key[k].generation or 0) > (node.generation or 0)
            ):
                continue  # the flow's result (on its branch: a business outcome)
            for made in node.outputs:
                if not issubclass(made, Event) or wiring.consumers[made]:
                    continue
                if model.listeners(made):
                    continue
                findings.append(
                    _finding(
                        "unconsumed-event",
                        [key, made.__name__],
                        f"{key} produces {made.__name__} in a flow started by "
                        f"{start.__name__}, but nothing consumes it before the flow ends; "
                        f"add the participant that reacts to it, or stop producing it",
                    )
                )


def _check_irreversible(wiring: _Wiring, findings: list[Finding]) -> None:
    by_key = {n.key: n for n in wiring.model.nodes}
    seen: set[tuple[str, ...]] = set()
    for reach in wiring.reach.values():
        nodes = sorted((by_key[k] for k in reach), key=lambda n: n.index)
        pivot = min((n.generation or 0 for n in nodes if n.pivot), default=None)
        for node in nodes:
            if node.undo is not None or node.generation is None or node.pivot:
                continue  # a pivot is meant to be the point of no return
            if pivot is not None and node.generation > pivot:
                continue  # past it nothing is undone: a later failure parks the run

            later = [
                n.key
                for n in nodes
                if (n.generation or 0) > node.generation
                and not wiring.model.exclusive(node, n)  # on another branch: never both
            ]
            if not later or (node.key, *later) in seen:
                continue
            seen.add((node.key, *later))
            findings.append(
                _finding(
                    "irreversible-before-failure",
                    [node.key, *later],
                    f"{node.key} cannot be undone, yet {', '.join(later)} "
                    f"{'runs' if len(later) == 1 else 'run'} after it and can fail, leaving "
                    f"its effect in place; give it a compensation "
                    f"(@{node.key.split('.', 1)[1]}.compensation), or move it to the end",
                )
            )


def _check_pivots(wiring: _Wiring, findings: list[Finding]) -> None:
    """A pivot must be alone in its generation: with a sibling beside it, whether the
    sibling is undone after a failure would depend on which of the two finished first."""
    nodes = wiring.model.nodes
    for pivot in nodes:
        if not pivot.pivot or pivot.generation is None:
            continue
        beside = [
            n.key
            for n in nodes
            if n is not pivot
            and n.generation == pivot.generation
            and not wiring.model.exclusive(pivot, n)
        ]
        if beside:
            findings.append(
                _finding(
                    "pivot-in-parallel",
                    [pivot.key, *beside],
                    f"{pivot.key} is the point of no return, yet {', '.join(beside)} "
                    f"{'runs' if len(beside) == 1 else 'run'} beside it (generation "
                    f"{pivot.generation}): make the pivot the only action of its generation, "
                    f"by consuming what the others produce or moving them after it",
                )
            )


def lint(target: object) -> list[Finding]:
    """The findings on an Orchestrator subclass, a Choreography, or participants.

    Errors first, then warnings; none on a flow that is well wired. See the table in this
    module's docstring for every `code`.
    """
    model = model_of(target)
    wiring = _Wiring(model)
    findings: list[Finding] = []
    on_cycles = _check_cycles(wiring, findings)
    _check_inputs(wiring, on_cycles, findings)
    _check_gathers(wiring, findings)
    _check_commands(wiring, findings)
    _check_pivots(wiring, findings)
    _check_unconsumed(wiring, findings)
    _check_irreversible(wiring, findings)
    order = list(CODES)
    return sorted(findings, key=lambda f: (f.severity is Severity.WARNING, order.index(f.code)))
