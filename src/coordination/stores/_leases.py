"""The claims a store's process holds, and the heartbeat that renews their leases.

A store holds a claim from the moment it hands out a token until the run finishes, is
released, or a write for it fails; meanwhile a daemon thread renews every held lease each
third of a lease, so a live owner never loses a run to an expired lease. What renewing
means is the backend's (one fenced statement for all held runs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from coordination.errors import StoreError

__all__ = ["Heartbeat"]

#: Renew these claims (workflow_id -> token) until `expires`; raises `StoreError` on failure.
Renew = Callable[[dict[str, int], float], None]


class Heartbeat:
    """Held claims and the thread that renews them (started on the first claim)."""

    def __init__(self, lease: float, renew: Renew, *, name: str) -> None:
        self.lease = lease
        self._renew = renew
        self._name = name
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._claims: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    def hold(self, workflow_id: str, token: int) -> None:
        """Renew this claim's lease until `let_go`."""
        with self._lock:
            self._claims[workflow_id] = token
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._beat, name=self._name, daemon=True)
                self._thread.start()

    def let_go(self, workflow_id: str) -> None:
        """Stop renewing the lease of `workflow_id` (finished, released, or failed to write)."""
        with self._lock:
            self._claims.pop(workflow_id, None)

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._claims)

    def _beat(self) -> None:
        while not self._closed.wait(self.lease / 3):
            claims = self.held()
            if not claims:
                continue
            try:
                self._renew(claims, time.time() + self.lease)
            except StoreError:
                # Retried at the next beat; a claim whose lease ran out meanwhile is fenced
                # by its token, never silently kept.
                if self._closed.is_set():
                    return

    def close(self) -> None:
        """Stop the thread (the claims' leases then run out, or the runs were finished)."""
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
