"""Observers: callables that see each journal entry of an instance as it is recorded.

Both runners take `observers=[...]`; the engine calls them from the one place every fact is
written (`Recorder.write`), after the store accepted it, so an observer sees what is stored,
in order, whichever runner ran it. An observer that raises is logged and never stops a flow.
`EVERYWHERE` holds observers of every instance in this process (the pytest plugin's
coverage report uses it); it is not public API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from coordination._journal import JournalEntry, Rows, entries_from_rows
from coordination.errors import UsageError

__all__ = ["EVERYWHERE", "Observer", "checked_observers", "notify"]

Observer = Callable[[JournalEntry], object]

#: Observers of every instance of this process, besides each runner's own.
EVERYWHERE: list[Observer] = []

_log = logging.getLogger("coordination")


def checked_observers(where: str, observers: object) -> tuple[Observer, ...]:
    """`observers` as a tuple, each checked to be callable (`UsageError` otherwise)."""
    if (
        callable(observers)
        or isinstance(observers, str | bytes)
        or not isinstance(observers, Iterable)
    ):
        raise UsageError(f"{where}(observers=...) takes a list of callables, got {observers!r}")
    chosen = tuple(observers)
    for observer in chosen:
        if not callable(observer):
            raise UsageError(
                f"{where}(observers=...): {observer!r} is not callable; an observer is called "
                f"with each journal entry"
            )
    return chosen


def notify(observers: Sequence[Observer], chunks: Iterable[Rows]) -> None:
    """Hand each entry stored as `chunks` of rows to every observer, in order."""
    everyone = (*observers, *EVERYWHERE) if EVERYWHERE else observers
    if not everyone:
        return
    for entry in entries_from_rows(chunks):
        for observer in everyone:
            try:
                observer(entry)
            except Exception as error:  # an observer never stops a flow
                _log.warning("observer %r failed on %s: %s", observer, entry, error)
