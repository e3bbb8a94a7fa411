"""The one small view of a run that renderings read: a `WorkflowRun` or a `ProcessView`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from coordination._journal import Journal
from coordination._status import WorkflowStatus
from coordination.stores._records import StepRecord

__all__ = ["RunView", "label"]


@runtime_checkable
class RunView(Protocol):
    """What both runners' views of one instance have in common."""

    @property
    def workflow_id(self) -> str: ...
    @property
    def status(self) -> WorkflowStatus: ...
    @property
    def journal(self) -> Journal: ...
    @property
    def steps(self) -> Sequence[StepRecord]: ...


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:()+-=/")


def label(text: str) -> str:
    """`text` with only characters every diagram syntax takes verbatim in a label.

    Names, ids and error types come from user code; a quote, a bracket or a semicolon in
    one must never end a label early or start a statement of its own.
    """
    return "".join(char if char in _SAFE else " " for char in text).strip()
