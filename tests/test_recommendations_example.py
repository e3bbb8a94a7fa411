"""The recommendations example: fan out to the sources, gather, degrade instead of failing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coordination import EntryKind, NonRetryable, WorkflowStatus
from coordination.choreography import Choreography, EventBus
from coordination.testing import assert_equivalent, run_both
from examples.recommendations import (
    BordaRanker,
    Recommend,
    RecommendationsReady,
    RecommendationsRequested,
    Source,
    SourceAnswered,
    failing,
    services,
    slow,
)

ROOT = Path(__file__).resolve().parent.parent
REQUEST = RecommendationsRequested(user_id="u-1", limit=3)
COMPLETED = WorkflowStatus.COMPLETED


def test_every_source_answers_and_the_picks_are_merged() -> None:
    quota, clients, ranker = services()
    run = Recommend(quota, clients, ranker).run(REQUEST, workflow_id="wf")

    assert run.status is COMPLETED
    assert run.output == RecommendationsReady(
        user_id="u-1",
        picks=["dune", "foundation", "hyperion"],
        answered=["history", "trending", "friends"],
        degraded=[],
    )
    assert clients.asked == ["wf:Sources.ask[0]", "wf:Sources.ask[1]", "wf:Sources.ask[2]"]
    assert quota.snapshot() == [("u-1", 3)]


def test_a_slow_source_degrades_the_result_and_the_run_completes() -> None:
    quota, clients, ranker = services(trending=slow())
    run = Recommend(quota, clients, ranker).run(REQUEST, workflow_id="wf")

    assert run.status is COMPLETED
    assert run.output is not None
    assert run.output.answered == ["history", "friends"]
    assert run.output.degraded == ["trending: no answer within 0.2s"]
    assert "never-seen" not in run.output.picks
    assert not run.journal.of_kind(EntryKind.FAILED)


def test_a_failing_source_degrades_the_result_and_nothing_is_undone() -> None:
    quota, clients, ranker = services(friends=failing("503 from friends-api"))
    run = Recommend(quota, clients, ranker).run(REQUEST, workflow_id="wf")

    assert run.status is COMPLETED
    assert run.output is not None
    assert run.output.degraded == ["friends: ConnectionError: 503 from friends-api"]
    assert not run.journal.of_kind(EntryKind.COMPENSATED)
    assert [source for (_, source), _ in clients.snapshot()] == ["history", "trending"]


def test_every_source_down_still_completes_with_nothing_to_show() -> None:
    run = Recommend(*services(history=failing(), trending=slow(), friends=failing())).run(
        REQUEST, workflow_id="wf"
    )

    assert run.status is COMPLETED
    assert run.output is not None
    assert run.output.picks == []
    assert len(run.output.degraded) == 3


class RefusingRanker(BordaRanker):
    def merge(self, answers: tuple[SourceAnswered, ...]) -> RecommendationsReady:
        raise NonRetryable("the ranking model is offline")


def test_a_failing_merge_evicts_the_answers_in_reverse_order_and_refunds_the_quota() -> None:
    quota, clients, _ = services()
    run = Recommend(quota, clients, RefusingRanker()).run(REQUEST, workflow_id="wf")

    assert run.status is WorkflowStatus.COMPENSATED
    assert run.journal.names(EntryKind.COMPENSATED) == [
        "Sources.evict[2]",
        "Sources.evict[1]",
        "Sources.evict[0]",
        "Quota.refund",
    ]
    assert clients.snapshot() == []
    assert quota.snapshot() == []


@pytest.mark.parametrize(
    "overrides",
    [{}, {"trending": slow()}, {"friends": failing()}],
    ids=["all-answer", "slow", "failing"],
)
def test_both_runners_reach_the_same_result(overrides: dict[str, Source]) -> None:
    both = run_both(Recommend, lambda: services(**overrides), REQUEST, correlation_id="wf")
    assert_equivalent(both)
    assert {outcome.status for outcome in both.outcomes} == {COMPLETED}


def test_a_choreography_without_flow_derives_the_same_fan_out() -> None:
    flow = Choreography(EventBus(), *services(trending=slow()))
    flow.publish(REQUEST, correlation_id="wf")

    view = flow.monitor.get("wf")
    assert view is not None
    assert view.status is COMPLETED
    ready = view.steps[-1].output
    assert isinstance(ready, RecommendationsReady)
    assert ready.degraded == ["trending: no answer within 0.2s"]


def test_the_example_runs_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.recommendations"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": completed") == 2
    assert "without   trending: no answer within 0.2s" in result.stdout
