"""The undo plan of a failing flow instance: which compensations run, in which order.

One rule for both runners: newest generation first; within a generation, reverse declared
order. An output-typed compensation undoes an action that completed, receiving its output;
an input-typed one runs for every action that started (failed ones too), receiving its
input. The late results of a failed action are undone with it, each under its own key, just
before the action's own undo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from coordination.engine._plan import FlowPlan, PlannedAction

__all__ = ["Undo", "plan_undos", "undo_key"]


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
    done: set[str],
    retries: Mapping[str, int],
) -> list[Undo]:
    """The undos owed for generations `up_to` down to 1, newest first, minus those done.

    `outcomes` says how each settled action ended (True completed, False failed, None
    skipped); `late` lists the late results `(attempt, output)` of failed actions; `done`
    holds the base keys of undos already recorded as done.
    """
    queue: list[Undo] = []
    for generation in range(up_to, 0, -1):
        for action in reversed(plan.generations[generation - 1]):
            outcome = outcomes.get(action.key, None)
            compensation = action.compensation
            if compensation is None or action.key not in outcomes or outcome is None:
                continue  # nothing to undo, never started, or skipped
            if outcome is False:
                for attempt, output in late.get(action.key, ()):
                    queue.append(Undo(action, action.undo_message(output, inputs(action)), attempt))
            if action.undoes_output:
                if outcome is True:
                    queue.append(Undo(action, action.undo_message(outputs[action.key], [])))
            else:
                queue.append(Undo(action, action.undo_message(None, inputs(action))))
    return [
        Undo(undo.action, undo.message, undo.late, retries.get(undo.base, 0))
        for undo in queue
        if undo.base not in done
    ]
