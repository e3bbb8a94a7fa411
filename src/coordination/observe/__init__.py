"""Seeing what flows do, the same way for both runners.

Observers for `observers=[...]` (`LogObserver`; `coordination.observe.otel.SpanObserver`
with the `otel` extra), renderings of one run (`timeline`), flow graphs from the
definitions with a run on them (`graph`), and checks of a flow's wiring (`lint`).
"""

from coordination.observe._graph import STATES, FlowDiagram, graph
from coordination.observe._lint import CODES, Finding, Severity, lint
from coordination.observe._log import DEFAULT_LEVELS, LogObserver
from coordination.observe._timeline import Attempt, Timeline, TimelineRow, timeline
from coordination.observe._view import RunView

__all__ = [
    "CODES",
    "DEFAULT_LEVELS",
    "STATES",
    "Attempt",
    "Finding",
    "FlowDiagram",
    "LogObserver",
    "RunView",
    "Severity",
    "Timeline",
    "TimelineRow",
    "graph",
    "lint",
    "timeline",
]
