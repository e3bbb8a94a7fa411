"""LogObserver: every journal entry of a flow instance as a standard-library log record."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from coordination._journal import EntryKind, JournalEntry
from coordination.errors import UsageError

__all__ = ["DEFAULT_LEVELS", "LogObserver"]

#: The level of each kind of entry. What an operator follows (a step settled, undone,
#: skipped, waiting, recovered; an instance finished) is INFO; the attempt-by-attempt detail
#: under it (started, retried, published) is DEBUG; a failed attempt of an action or an undo
#: is WARNING (a `retried` entry follows it when it will be tried again): someone may have to
#: act on it.
DEFAULT_LEVELS: Mapping[EntryKind, int] = {
    EntryKind.WORKFLOW_STARTED: logging.INFO,
    EntryKind.PUBLISHED: logging.DEBUG,
    EntryKind.STARTED: logging.DEBUG,
    EntryKind.COMPLETED: logging.INFO,
    EntryKind.FAILED: logging.WARNING,
    EntryKind.RETRIED: logging.DEBUG,
    EntryKind.COMPENSATED: logging.INFO,
    EntryKind.COMPENSATION_FAILED: logging.WARNING,
    EntryKind.LATE_RESULT: logging.INFO,
    EntryKind.SKIPPED: logging.INFO,
    EntryKind.WAITING: logging.INFO,
    EntryKind.RECOVERED: logging.INFO,
    EntryKind.WORKFLOW_FINISHED: logging.INFO,
}


class LogObserver:
    """An observer that logs each journal entry with the standard library's `logging`.

    Pass it as `observers=[LogObserver()]` to an `Orchestrator` or a `Choreography`. Each
    record's message is the entry's readable line prefixed by its correlation id; its
    `extra` carries `correlation_id`, `action` (`Participant.action`, or the flow's name for
    instance-level entries), `participant`, `entry_kind`, `attempt`, `causation_id`,
    `undoes` and `duration`, for formatters and log pipelines to filter on.

    Records go to the `coordination.flow` logger unless `logger=` names another; like every
    logger under `coordination`, it prints nothing until the application configures logging
    (the library only adds a `NullHandler`). `levels=` overrides the level of some kinds.
    """

    __slots__ = ("_levels", "_logger")

    def __init__(
        self,
        logger: logging.Logger | str = "coordination.flow",
        *,
        levels: Mapping[EntryKind, int] | None = None,
    ) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise UsageError(
                f"LogObserver(logger=...) takes a logging.Logger or a logger name, got {logger!r}"
            )
        chosen = dict(DEFAULT_LEVELS)
        for kind, level in (levels or {}).items():
            if not isinstance(kind, EntryKind) or not isinstance(level, int):
                raise UsageError(
                    f"LogObserver(levels=...) maps EntryKind to a logging level, got "
                    f"{kind!r}: {level!r}"
                )
            chosen[kind] = level
        self._logger = logger
        self._levels = chosen

    @property
    def logger(self) -> logging.Logger:
        """Where the records go."""
        return self._logger

    def __call__(self, entry: JournalEntry) -> None:
        level = self._levels[entry.kind]
        if not self._logger.isEnabledFor(level):
            return  # the common case in production: build nothing
        self._logger.log(
            level,
            "%s %s",
            entry.correlation_id,
            entry,
            extra={
                "correlation_id": entry.correlation_id,
                "action": entry.name,
                "participant": entry.participant,
                "entry_kind": entry.kind.value,
                "attempt": entry.attempt,
                "causation_id": entry.causation_id,
                "undoes": entry.undoes,
                "duration": entry.duration,
            },
        )

    def __repr__(self) -> str:
        return f"LogObserver({self._logger.name!r})"
