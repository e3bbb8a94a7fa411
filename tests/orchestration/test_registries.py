"""The process-wide registries of runs in flight (`ACTIVE`, `LIVE`) under many threads.

Every run enters and leaves both. Under one lock for all runs, eight threads driving their
own runs queued behind each other there (a lock convoy: 0.4x one thread's throughput with
nothing else shared), so each run's entry is guarded by a lock of its own stripe. These
tests check that the counts stay exact under contention, that `hold` stays exclusive, and
that a thread touching one run never waits for another run's entry.
"""

from __future__ import annotations

import threading

from coordination.engine._live import LiveSagas
from coordination.engine._ownership import Active


def _different_stripes(active: Active) -> tuple[str, str]:
    first = "run-0"
    for index in range(1, 1000):
        other = f"run-{index}"
        if active._locks.for_key(other) is not active._locks.for_key(first):
            return first, other
    raise AssertionError("every id fell in one stripe")


def test_counts_stay_exact_when_eight_threads_enter_and_leave_the_same_and_their_own_runs() -> None:
    active = Active()
    barrier = threading.Barrier(8)

    def body(number: int) -> None:
        barrier.wait()
        for _ in range(2000):
            active.enter("shared")
            active.enter(f"own-{number}")
            active.leave(f"own-{number}")
            active.leave("shared")
        active.enter("shared")

    threads = [threading.Thread(target=body, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert active._counts == {"shared": 8}
    for _ in range(7):
        active.leave("shared")
    assert "shared" in active
    active.leave("shared")
    assert "shared" not in active
    assert active._counts == {}


def test_hold_admits_one_thread_of_many() -> None:
    active = Active()
    barrier = threading.Barrier(8)
    won: list[int] = []

    def body(number: int) -> None:
        barrier.wait()
        if active.hold("contested"):
            won.append(number)

    threads = [threading.Thread(target=body, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert "contested" in active


def test_a_thread_entering_one_run_does_not_wait_for_another_runs_entry() -> None:
    active = Active()
    mine, other = _different_stripes(active)
    entered = threading.Event()

    def body() -> None:
        active.enter(mine)
        active.leave(mine)
        entered.set()

    with active._locks.for_key(other):  # another thread is inside `other`'s entry
        thread = threading.Thread(target=body)
        thread.start()
        assert entered.wait(5), "entering one run waited for another run's entry"
    thread.join()


def test_a_live_saga_is_replaced_and_discarded_by_its_own_identity_only() -> None:
    live = LiveSagas()
    first, second = object(), object()

    class _Saga:
        def __init__(self, marker: object) -> None:
            self.workflow_id = "wf"
            self.marker = marker

    old, new = _Saga(first), _Saga(second)
    live.add(old)  # type: ignore[arg-type]
    live.add(new)  # type: ignore[arg-type]
    live.discard(old)  # type: ignore[arg-type]  # a stale discard leaves the newer one
    assert live.get("wf") is new
    live.discard(new)  # type: ignore[arg-type]
    assert live.get("wf") is None
