"""Who owns a run: `host:pid:start`, and whether that owner is still alive.

The start component is the process's start time as the kernel records it (Linux
`/proc/<pid>/stat`), so a recycled pid is not mistaken for the old owner. On other systems
it is the time this module was imported, and only leases decide.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["owner_alive", "process_owner"]

_IMPORTED = f"t{time.time():.6f}"


def _kernel_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return f"k{fields[19]}" if len(fields) > 19 else None  # field 22: starttime


def process_owner() -> str:
    """This process's owner id: `host:pid:start`."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_kernel_start(pid) or _IMPORTED}"


def owner_alive(owner: str) -> bool | None:
    """True or False for an owner on this host; None when it cannot tell (another host)."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if start.startswith("k"):
        return _kernel_start(pid) == start
    if pid == os.getpid():
        return start == _IMPORTED
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
