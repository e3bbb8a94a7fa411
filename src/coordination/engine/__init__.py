"""The engine both runners drive: one flow instance's saga, its attempts, its ownership.

Nothing here is a runner and nothing here is a store backend: the orchestrator and the
choreography supply where generations come from (declared steps, or signatures) and how
inputs arrive (direct calls, or bus deliveries); everything they must do alike is decided
here, once (DESIGN.md, "One engine, one rule"). Internal: the public names are re-exported
by `coordination.orchestration`, `coordination.choreography` and `coordination.testing`.
"""

from coordination.engine._attempts import ActionPlan, Attempts, describe
from coordination.engine._batch import WriteBatch
from coordination.engine._binding import (
    BoundAction,
    bind,
    bind_action,
    bound_to,
    check_participants,
)
from coordination.engine._declarations import (
    Parallel,
    Step,
    WaitStep,
    parallel,
    sleep,
    step,
    wait,
)
from coordination.engine._executor import loop_running
from coordination.engine._fanout import GATHERED
from coordination.engine._graph import ActionNode, FlowGraph
from coordination.engine._live import LIVE, LiveSagas
from coordination.engine._observers import EVERYWHERE, Observer, checked_observers, notify
from coordination.engine._operators import (
    Due,
    cancel_refusal,
    due_instances,
    due_timer,
    outside_wait,
    past_pivot,
    reopen,
    retry_target,
    wake,
)
from coordination.engine._ownership import ACTIVE, owner_alive, process_owner
from coordination.engine._plan import (
    FlowPlan,
    PlannedAction,
    PlannedWait,
    compile_plan,
    derive_groups,
    normalise,
    shape_difference,
)
from coordination.engine._publishing import Publishing
from coordination.engine._recovery import (
    Problem,
    check_shape,
    claim,
    claim_or_busy,
    note,
    note_takeover,
    recover,
    resume_claimed,
    same_start,
    take_over,
)
from coordination.engine._requests import REQUEST_POLL, claim_or_request
from coordination.engine._runs import (
    ActionRun,
    UndoRun,
    finish_async,
    finish_sync,
    first_attempt,
)
from coordination.engine._saga import SUSPEND, WAIT, Saga, Suspend, Wait
from coordination.engine._schedules import DueMessage, DueStart, make_start, mark_started
from coordination.engine._undo import Undo, undo_key
from coordination.engine._worker import Served, resume_next, serve, wait_for_result

__all__ = [
    "ACTIVE",
    "EVERYWHERE",
    "GATHERED",
    "LIVE",
    "REQUEST_POLL",
    "SUSPEND",
    "WAIT",
    "ActionNode",
    "ActionPlan",
    "ActionRun",
    "Attempts",
    "BoundAction",
    "Due",
    "DueMessage",
    "DueStart",
    "FlowGraph",
    "FlowPlan",
    "LiveSagas",
    "Observer",
    "Parallel",
    "PlannedAction",
    "PlannedWait",
    "Problem",
    "Publishing",
    "Saga",
    "Served",
    "Step",
    "Suspend",
    "Undo",
    "UndoRun",
    "Wait",
    "WaitStep",
    "WriteBatch",
    "bind",
    "bind_action",
    "bound_to",
    "cancel_refusal",
    "check_participants",
    "check_shape",
    "checked_observers",
    "claim",
    "claim_or_busy",
    "claim_or_request",
    "compile_plan",
    "derive_groups",
    "describe",
    "due_instances",
    "due_timer",
    "finish_async",
    "finish_sync",
    "first_attempt",
    "loop_running",
    "make_start",
    "mark_started",
    "normalise",
    "note",
    "note_takeover",
    "notify",
    "outside_wait",
    "owner_alive",
    "parallel",
    "past_pivot",
    "process_owner",
    "recover",
    "reopen",
    "resume_claimed",
    "resume_next",
    "retry_target",
    "same_start",
    "serve",
    "shape_difference",
    "sleep",
    "step",
    "take_over",
    "undo_key",
    "wait",
    "wait_for_result",
    "wake",
]
