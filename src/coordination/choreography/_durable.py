"""Writing a flow instance's state to a store and reading it back, for durable choreographies.

The state is JSON (messages by their type names, never pickle): which actions started,
completed or were undone, what each produced from what, which join inputs wait, the
failure and the journal. Output ids are derived from the correlation, the action and the
triggering message, so an action run again after a crash publishes the same ids and the
event log keeps each message once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from coordination._messages import Message, to_json, type_name_of
from coordination._status import WorkflowStatus
from coordination.choreography._process import Process

__all__ = ["derived_id", "dump_process", "load_process"]

_NAMESPACE = uuid.UUID("6f1c2a7e-3b7d-4f0e-9a51-7c9a0e2d5b10")


def derived_id(correlation_id: str, action: str, causes: Iterable[str | None]) -> str:
    """A message id that is the same every time an action handles the same messages."""
    key = f"{correlation_id}|{action}|{'|'.join(sorted(c or '' for c in causes))}"
    return uuid.uuid5(_NAMESPACE, key).hex


def _message(message: Any) -> Any:
    if message is None:
        return None
    if isinstance(message, tuple):
        return [to_json(member) for member in message]
    return to_json(message)


def dump_process(process: Process) -> dict[str, Any]:
    """The state of `process` as plain JSON-ready data (call under its lock)."""
    return {
        "start": type_name_of(process.start),
        "expected": sorted(process.expected),
        "status": process.status.value,
        "joins": {
            key: {str(index): to_json(message) for index, message in waiting.items()}
            for key, waiting in process.joins.items()
        },
        "started": sorted(process.started),
        "done": sorted(process.done),
        "undone": sorted(process.undone),
        "settled": [
            [wired.node.key, _message(output), completed, [to_json(i) for i in inputs]]
            for wired, output, completed, inputs in process.settled
        ],
        "failure": process.failure,
        "failure_id": process.failure_id,
        "rows": [list(chunk) for chunk in process.rows],
        "started_at": process.started_at,
        "updated_at": process.updated_at,
        "finished_at": process.finished_at,
    }


def load_process(
    correlation_id: str,
    state: dict[str, Any],
    start: type[Message],
    wired: dict[str, Any],
    decode: Callable[[str], Message],
) -> Process:
    """Rebuild a process saved by `dump_process`; `wired` maps action keys to actions."""

    def message(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return tuple(decode(member) for member in value)
        return decode(value)

    process = Process(correlation_id, start, frozenset(state["expected"]), state["started_at"])
    process.status = WorkflowStatus(state["status"])
    process.joins = {
        key: {int(index): decode(text) for index, text in waiting.items()}
        for key, waiting in state["joins"].items()
    }
    process.started = set(state["started"])
    process.done = set(state["done"])
    process.undone = set(state["undone"])
    process.settled = [
        (wired[key], message(output), completed, [decode(text) for text in inputs])
        for key, output, completed, inputs in state["settled"]
        if key in wired
    ]
    process.failure = state["failure"]
    process.failure_id = state["failure_id"]
    process.rows = [tuple(chunk) for chunk in state["rows"]]
    process.updated_at = state["updated_at"]
    process.finished_at = state["finished_at"]
    return process
