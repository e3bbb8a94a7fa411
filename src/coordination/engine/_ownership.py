"""Who owns a flow instance, whether that owner is alive, and when another may take it over.

An owner is `host:pid:start`, the start being the process's start time as the kernel
records it (Linux `/proc/<pid>/stat`), so a recycled pid is not mistaken for the old owner;
a zombie (killed, not yet reaped) counts as gone. On other systems the start is the time
this module was imported, and only leases decide.

One decision for both runners (`takeover`): an instance nobody owns is claimable; one whose
owner is this process is claimable unless this process is driving it right now (the
`ACTIVE` registry); one owned by a dead process on this host at once; one owned elsewhere
only when its lease expired (the store's claim checks that).
"""

from __future__ import annotations

import os
import socket
import time
from enum import Enum

from coordination.engine._striped import StripedLocks

__all__ = ["ACTIVE", "Active", "Takeover", "owner_alive", "process_owner", "takeover"]

_IMPORTED = f"t{time.time():.6f}"


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _kernel_start(pid: int) -> str | None:
    fields = _stat(pid)
    return f"k{fields[19]}" if fields is not None and len(fields) > 19 else None  # starttime


def process_owner() -> str:
    """This process's owner id: `host:pid:start`."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_kernel_start(pid) or _IMPORTED}"


def owner_alive(owner: str) -> bool | None:
    """True or False for an owner on this host; None when it cannot tell (another host)."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    # A pid is 1 to 10 ASCII digits (isdigit() alone takes "²", which int() refuses) and
    # names one process (0 would ask about a whole process group); else only leases decide.
    if host != socket.gethostname() or not (
        pid_text.isascii() and pid_text.isdigit() and len(pid_text) <= 10
    ):
        return None
    pid = int(pid_text)
    if not 0 < pid < 2**31:
        return None
    if start.startswith("k"):
        fields = _stat(pid)
        if fields is None or len(fields) <= 19 or f"k{fields[19]}" != start:
            return False
        return fields[0] not in ("Z", "X")  # a zombie is dead, whatever its parent does
    if pid == os.getpid():
        return start == _IMPORTED
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Active:
    """The instances this process is driving right now (or whose attempts still run).

    A process's own instance that is not in here was interrupted (Ctrl-C, a cancelled task,
    a store error): it may be taken over at once, by `run()` again or by `recover()`.
    """

    def __init__(self) -> None:
        self._locks = StripedLocks()
        self._counts: dict[str, int] = {}

    def hold(self, workflow_id: str) -> bool:
        """Enter `workflow_id` unless it is in here already (this process drives it, or
        another thread of it is claiming it): a claim and the drive after it, one at a time."""
        with self._locks.for_key(workflow_id):
            if workflow_id in self._counts:
                return False
            self._counts[workflow_id] = 1
            return True

    def enter(self, workflow_id: str) -> None:
        with self._locks.for_key(workflow_id):
            self._counts[workflow_id] = self._counts.get(workflow_id, 0) + 1

    def leave(self, workflow_id: str) -> None:
        with self._locks.for_key(workflow_id):
            count = self._counts.get(workflow_id, 0) - 1
            if count > 0:
                self._counts[workflow_id] = count
            else:
                self._counts.pop(workflow_id, None)

    def __contains__(self, workflow_id: object) -> bool:
        return workflow_id in self._counts  # one dict lookup: atomic


#: This process's registry.
ACTIVE = Active()


class Takeover(Enum):
    """What a claimer may do with an instance another owner (or nobody) holds."""

    CLAIM = "claim"  #: nobody owns it, or its lease may have expired: try a claim
    REPLACE = "replace"  #: its owner is gone: claim it whatever its lease says
    BUSY = "busy"  #: a live owner is driving it: leave it


def takeover(owner: str | None, me: str, workflow_id: str, *, held: bool = False) -> Takeover:
    """Whether `me` may claim an instance owned by `owner`.

    `held`: the caller holds it in ACTIVE (`ACTIVE.hold`), so nothing else in this process
    drives it.
    """
    busy_here = not held and workflow_id in ACTIVE
    if owner is None:  # let go, or finished: busy while an abandoned attempt here runs on
        return Takeover.BUSY if busy_here else Takeover.CLAIM
    if owner == me:
        return Takeover.BUSY if busy_here else Takeover.REPLACE
    if owner_alive(owner) is False:
        return Takeover.REPLACE  # its process is gone from this host: at once
    # Another process, live on this host or anywhere else: the store's claim checks the
    # lease. A live owner renews it from a heartbeat thread, so an expired lease means a
    # stopped or hung process, and fencing keeps it from writing once it wakes.
    return Takeover.CLAIM
