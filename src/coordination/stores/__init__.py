"""Where flow instances are kept: the `Store` and `EventLog` protocols and their backends."""

from coordination.stores._memory import MemoryStore
from coordination.stores._postgres import PostgresStore
from coordination.stores._records import (
    DeadLetter,
    Finish,
    OwedRun,
    Request,
    RunRecord,
    StepOutcome,
    StepRecord,
    Write,
)
from coordination.stores._sqlite import SQLiteStore
from coordination.stores._store import EventLog, Store

__all__ = [
    "DeadLetter",
    "EventLog",
    "Finish",
    "MemoryStore",
    "OwedRun",
    "PostgresStore",
    "Request",
    "RunRecord",
    "SQLiteStore",
    "StepOutcome",
    "StepRecord",
    "Store",
    "Write",
]
