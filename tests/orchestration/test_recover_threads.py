"""Two threads of one process recovering the same store (two workers) never both take a run.

A claim and the drive after it are one hold of the instance in this process: between them,
another thread that read the same owed run (owned by this process now) must not take it
over as if its owner had let go.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from coordination import WorkflowStatus
from tests.orchestration.flows import Beta, Harness, Linear, Start


def test_a_run_claimed_by_one_thread_is_not_taken_over_by_another() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        h.orchestrator.run(Start(n=1), workflow_id="wf")  # interrupted: it let go of the run
    store = h.store
    claimed, other_done = threading.Event(), threading.Event()
    real_get = store.get_run

    def get_run(workflow_id: str) -> Any:
        # The first recoverer, right after its claim and before it drives the run, waits
        # until the second has recovered what it could.
        if threading.current_thread().name == "first" and not claimed.is_set():
            claimed.set()
            assert other_done.wait(10)
        return real_get(workflow_id)

    store.get_run = get_run
    results: dict[str, Any] = {}

    def first() -> None:
        results["first"] = h.orchestrator.recover()

    thread = threading.Thread(target=first, name="first")
    thread.start()
    assert claimed.wait(10)
    results["second"] = h.orchestrator.recover()
    other_done.set()
    thread.join(10)
    assert results["second"] == []  # the run is the first thread's
    assert [run.status for run in results["first"]] == [WorkflowStatus.COMPLETED]
    assert h[Beta].count("second") == 2  # the interrupted attempt, then the first's re-run
