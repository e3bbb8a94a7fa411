"""The contract of the `WorkQueue` capability: what workers of several processes rely on.

Subclass `WorkQueueContract` with `create_store()` (as `StoreContract`) for a store that
lets workers claim the next free run: `SQLiteStore` and `PostgresStore` pass it. A store
without the capability needs none of this; `serve()` polls `recover()` there instead.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from coordination._status import WorkflowStatus
from coordination.errors import LeaseLost
from coordination.stores._records import Finish, StepOutcome, Write
from coordination.testing._store_contract import _Base

__all__ = ["WorkQueueContract"]


class WorkQueueContract(_Base):
    """Claims of the next free run, and announcements. Subclass with `create_store()`
    returning a store whose lease is at least 10 seconds."""

    def _submitted(self, store: Any, workflow_id: str, now: float) -> int:
        token = self._start(store, workflow_id, now=now)
        store.release_run(workflow_id, token, now=now)
        return token

    def test_claim_next_takes_the_oldest_free_run_and_fences_its_last_owner(self) -> None:
        store = self._store()
        tokens = {
            name: self._start(store, name, now=float(n))
            for n, name in enumerate(["held", "free-1", "expired", "free-2", "done", "waits"])
        }
        for name in ("free-1", "free-2"):
            store.release_run(name, tokens[name], now=5.0)
        store.write(Write("done", tokens["done"], 5.0, finish=Finish(WorkflowStatus.COMPLETED)))
        store.write(Write("waits", tokens["waits"], 5.0, status=WorkflowStatus.WAITING))
        store.release_run("waits", tokens["waits"], now=5.0)  # waiting: for its message
        now = store.lease + 3.5  # "held" and "expired" ran out; "waits" is let go
        claimed = [store.claim_next("flow", "w", now=now) for _ in range(5)]
        assert claimed == [
            ("held", 2, "a"),
            ("free-1", 2, None),
            ("expired", 2, "a"),
            ("free-2", 2, None),
            None,
        ]
        assert store.claim_next("other", "w", now=now) is None
        try:
            store.write(Write("expired", tokens["expired"], now, (self._step("s"),)))
        except LeaseLost:
            pass
        else:
            raise AssertionError("the last owner's write was not fenced out")
        record = store.get_run("free-1")
        assert (record.owner, record.token) == ("w", 2)

    def test_a_claimed_run_is_held_until_its_lease_runs_out(self) -> None:
        store = self._store()
        self._submitted(store, "r", now=1.0)
        assert store.claim_next("flow", "w1", now=2.0) == ("r", 2, None)
        assert store.claim_next("flow", "w2", now=3.0) is None  # w1 holds it
        assert store.claim_next("flow", "w2", now=3.0 + store.lease) == ("r", 3, "w1")

    def test_workers_claiming_at_once_each_get_other_runs(self) -> None:
        stores = [self._store(), self._store()] if self.shares_stores else [self._store()]
        for n in range(5):
            self._submitted(stores[0], f"r{n}", now=float(n))
        got: list[Any] = []
        barrier = threading.Barrier(8)

        def take(store: Any, owner: str) -> None:
            barrier.wait()
            got.append(store.claim_next("flow", owner, now=10.0))

        threads = [
            threading.Thread(target=take, args=(stores[i % len(stores)], f"w{i}")) for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        claims = [claim for claim in got if claim is not None]
        assert sorted(claim[0] for claim in claims) == [f"r{n}" for n in range(5)]
        assert got.count(None) == 3
        for workflow_id, token, _ in claims:  # each claim's token fences the run
            stores[0].write(
                Write(workflow_id, token, 11.0, (self._step("s", StepOutcome.COMPLETED),))
            )

    #: Whether two stores from `create_store()` share what they keep (a file, a server).
    shares_stores = True

    def test_an_announcement_wakes_a_waiting_worker(self) -> None:
        store = self._store()
        assert store.wait_for_work("flow", 0.05) is False  # nothing announced: it times out
        store.announce("other")
        assert store.wait_for_work("flow", 0.3) is False  # another flow's work
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(store.wait_for_work("flow", 20)))
        waiter.start()
        began = time.monotonic()
        while not woke and time.monotonic() - began < 15:
            store.announce("flow")  # a listener may not listen yet: again until it wakes
            waiter.join(0.1)
        waiter.join()
        assert woke == [True]
        assert time.monotonic() - began < 15

    def test_an_announcement_made_while_nobody_waits_is_kept(self) -> None:
        store = self._store()
        store.wait_for_work("flow", 0.05)  # a store that listens for them listens now
        time.sleep(0.3)
        store.announce("flow")
        assert store.wait_for_work("flow", 10.0) is True
