"""Locks by key: threads that touch different keys never queue behind each other.

The process-wide registries (`ACTIVE`, `LIVE`) are entered and left on every run. Under one
shared lock, eight threads each driving their own runs made a lock convoy: a thread that
lost the interpreter lock while holding the registry's lock made every other thread block
on it, and from then on each acquisition was a hand-over between threads (three context
switches per workflow, eight threads at 0.4x one thread's throughput, with nothing shared
but the registry). A lock per stripe of keys keeps each read-modify-write of one key atomic
while different runs' keys almost never share a lock.
"""

from __future__ import annotations

import threading

__all__ = ["StripedLocks"]

_STRIPES = 64  # a power of two, well above the threads a process drives runs on


class StripedLocks:
    """One lock per stripe of keys; `for_key(key)` is the lock that guards `key`."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks = tuple(threading.Lock() for _ in range(_STRIPES))

    def for_key(self, key: str) -> threading.Lock:
        """The lock to hold while reading-and-changing `key`'s entry (str hashes are cached)."""
        return self._locks[hash(key) & (_STRIPES - 1)]
