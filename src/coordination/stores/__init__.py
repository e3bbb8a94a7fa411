"""Where runs are kept: the `Store` protocol and its backends."""

from coordination.stores._memory import MemoryStore
from coordination.stores._records import RunRecord, StepOutcome, StepRecord
from coordination.stores._sqlite import SQLiteStore
from coordination.stores._store import Store

__all__ = ["MemoryStore", "RunRecord", "SQLiteStore", "StepOutcome", "StepRecord", "Store"]
