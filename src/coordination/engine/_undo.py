"""The undo plan of a failing flow instance: which compensations run, in which order.

One rule for both runners: newest generation first; within a generation, reverse declared
order. An output-typed compensation undoes an action that completed, receiving its output;
an input-typed one runs for every action that started (failed ones too), receiving its
input. The late results of a failed action are undone with it, each under its own key, just
before the action's own undo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from coordination.engine._fanout import items
from coordination.engine._plan import FlowPlan, PlannedAction
from coordination.stores._records import StepOutcome

__all__ = ["Undo", "UndoBook", "plan_undos", "undo_key", "undo_progress"]

_NO_KEYS: frozenset[str] = frozenset()


def undo_key(action_key: str, late: int | None = None, retry: int = 0) -> str:
    """The record key of one try of an undo: `A.x:undo`, `A.x:late2:undo`, `...:retry1`."""
    base = f"{action_key}:late{late}:undo" if late is not None else f"{action_key}:undo"
    return f"{base}:retry{retry}" if retry else base


@dataclass(frozen=True, slots=True)
class Undo:
    """One compensation to run: the action it undoes and the message it receives."""

    action: PlannedAction
    message: Any
    #: Which late attempt's result this undoes (None: the action's own output or input).
    late: int | None = None
    #: How many earlier tries of this undo failed for good (an operator retried it).
    retry: int = 0

    @property
    def base(self) -> str:
        """The key every try of this undo shares (what "done" is recorded under)."""
        return undo_key(self.action.key, self.late)

    @property
    def key(self) -> str:
        """The record key of this try: one record per try, so a retried undo gets its own."""
        return undo_key(self.action.key, self.late, self.retry)


def plan_undos(
    plan: FlowPlan,
    up_to: int,
    outcomes: Mapping[str, bool | None],
    outputs: Mapping[str, Any],
    inputs: Callable[[PlannedAction], list[Any]],
    late: Mapping[str, Iterable[tuple[int, Any]]],
    done: Set[str],
    retries: Mapping[str, int],
    values: Sequence[Any] = (),
) -> list[Undo]:
    """The undos owed for generations `up_to` down to 1, newest first, minus those done.

    `outcomes` says how each settled action ended (True completed, False failed, None
    skipped); `late` lists the late results `(attempt, output)` of failed actions; `done`
    holds the base keys of undos already recorded as done. A mapped step's items (read
    from `values`) are undone each by its own undo, in reverse item order.
    """
    queue: list[Undo] = []
    for generation in range(up_to, 0, -1):
        members: list[PlannedAction] = []
        for member in plan.generations[generation - 1]:
            members.extend(items(member, values) if member.mapped_slot is not None else (member,))
        for action in reversed(members):
            outcome = outcomes.get(action.key, None)
            compensation = action.compensation
            if compensation is None or action.key not in outcomes or outcome is None:
                continue  # nothing to undo, never started, or skipped
            if outcome is False:
                for attempt, output in late.get(action.key, ()):
                    queue.append(Undo(action, action.undo_message(output, inputs(action)), attempt))
            if action.undoes_output:
                if outcome is True and action.undoes(outputs[action.key]):
                    queue.append(Undo(action, action.undo_message(outputs[action.key], [])))
            else:
                queue.append(Undo(action, action.undo_message(None, inputs(action))))
    return [
        Undo(undo.action, undo.message, undo.late, retries.get(undo.base, 0))
        for undo in queue
        if undo.base not in done
    ]


class UndoBook:
    """What one instance owes and has undone: its undo plan, and how far it got.

    The plan is made once the failing generation settled (`plan`), then taken one undo at
    a time (`take`, `settled`); the late results of failed actions are owed undos too
    (`owe`), planned with their action's or, arriving later, put next in line (`insert`)
    or run after the end (`owed_after_end`).
    """

    __slots__ = ("current", "done", "error", "owed", "queue", "retries")

    def __init__(
        self,
        done: Set[str] | None = None,
        retries: dict[str, int] | None = None,
        owed: dict[str, list[tuple[int, Any]]] | None = None,
    ) -> None:
        #: Base keys of undos recorded as done, and how often each failed for good.
        #: (An instance that never undid anything shares one empty set: see `_NO_KEYS`.)
        self.done: Set[str] = done if done is not None else _NO_KEYS
        self.retries: dict[str, int] = retries if retries is not None else {}
        #: Late results `(attempt, output)` of failed actions, by action key: owed undos.
        self.owed: dict[str, list[tuple[int, Any]]] = owed if owed is not None else {}
        self.queue: list[Undo] | None = None
        #: The undo handed out and not settled yet.
        self.current: Undo | None = None
        #: The first compensation that failed for good.
        self.error: Any = None

    @property
    def planned(self) -> bool:
        return self.queue is not None

    def plan(
        self,
        plan: FlowPlan,
        up_to: int,
        outcomes: Mapping[str, bool | None],
        outputs: Mapping[str, Any],
        inputs: Callable[[PlannedAction], list[Any]],
        values: Sequence[Any] = (),
    ) -> None:
        self.queue = plan_undos(plan, up_to, outcomes, outputs, inputs, self.owed, self.done,
                                self.retries, values)  # fmt: skip

    def take(self) -> Undo | None:
        """The next undo to run (it becomes `current`), or None when nothing is left."""
        if not self.queue:
            return None
        self.current = self.queue[0]
        return self.current

    def settled(self, undo: Undo) -> bool:
        """`undo` succeeded; True when nothing is left to undo."""
        queue = self.queue or []
        if undo in queue:
            queue.remove(undo)
        self.done = self.done | {undo.base}
        if self.current == undo:
            self.current = None
        return not queue

    def stop(self) -> None:
        """A compensation failed for good: undo no further (never a cause before its effect)."""
        self.queue = []
        self.current = None

    def still_applied(self, failed: Undo) -> list[str]:
        """What stays applied when `failed` failed: its action and everything after it."""
        queue = self.queue or []
        keys = [failed.action.key, *(u.action.key for u in queue if u != failed)]
        return list(dict.fromkeys(keys))

    def owe(self, action: PlannedAction, attempt: int, output: Any) -> None:
        """A late result of failed `action` owes its undo (if its compensation undoes it)."""
        if action.undoes(output):
            self.owed.setdefault(action.key, []).append((attempt, output))

    def insert(self, undo: Undo) -> None:
        """A late result's undo owed while undoing: before its action's own undo if that is
        still ahead, else next."""
        queue = self.queue
        assert queue is not None
        position = next(
            (i for i, u in enumerate(queue) if u.action is undo.action and u != self.current),
            None,
        )
        if position is None:
            position = 1 if self.current is not None else 0
        queue.insert(position, undo)

    def owed_after_end(
        self, plan: FlowPlan, inputs: Callable[[PlannedAction], list[Any]]
    ) -> list[Undo]:
        """The late results' undos not done yet, newest first."""
        if not self.owed:
            return []  # no late result of a failed action (nearly every instance)
        owed = [
            Undo(action, action.undo_message(output, inputs(action)), attempt)
            for key, results in self.owed.items()
            for attempt, output in results
            for action in (plan.action(key),)
            if action is not None and undo_key(key, attempt) not in self.done
        ]
        return owed[::-1]


def undo_progress(
    plan: FlowPlan, steps: Iterable[Any]
) -> tuple[set[str], dict[str, int], list[tuple[PlannedAction, int, Any]]]:
    """From an instance's records: undos done, failed tries per undo, and late results.

    Returns `(done, retries, late)`: the base keys of undos recorded as done, how often each
    undo failed for good (an operator's retry makes a new record), and the late results
    `(action, attempt, output)` recorded with an output.
    """
    done: set[str] = set()
    retries: dict[str, int] = {}
    late: list[tuple[PlannedAction, int, Any]] = []
    for step in steps:
        if step.key in plan.by_key:
            continue
        base, _, retry = step.key.partition(":retry")
        if base.endswith(":undo"):
            if step.outcome is StepOutcome.COMPENSATED:
                done.add(base)
            elif step.outcome is StepOutcome.COMPENSATION_FAILED:
                retries[base] = max(retries.get(base, 0), int(retry or 0) + 1)
            continue
        name, _, attempt = step.key.rpartition(":late")
        action = plan.action(name)
        landed = step.outcome is StepOutcome.LATE and step.output is not None
        if action is not None and landed and attempt.isdigit():
            late.append((action, int(attempt), step.output))
    return done, retries, late
