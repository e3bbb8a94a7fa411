"""Kill -9 a worker in the middle of fan-outs, again and again: every item ends once.

Each round starts a real process that recovers what its killed predecessor left, then
indexes the remaining sites; the parent SIGKILLs it after a seeded random delay. At the
end every site completed (every page indexed once, under its own key) or, for the sites
with a page the indexer refuses, was compensated (every page that was indexed undone, then
the crawl); no item ran under two keys, nothing was applied again after its undo, and
re-executions are bounded by the kills. Both runners, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coordination import WorkflowStatus
from coordination.choreography import Choreography, EventBus
from tests.crash import harness
from tests.crash.fanout_worker import PAGES, participants
from tests.crash.shop import Effects
from tests.fanout_flow import IndexSite
from tests.postgres import Backend


def statuses(backend: Backend, effects: Effects, mode: str, count: int) -> dict[str, object]:
    with backend.open() as store:
        if mode == "orchestration":
            sites = IndexSite(*participants(effects), store=store)
            return {f"site-{i}": sites.get(f"site-{i}").status for i in range(count)}
        flow = Choreography(EventBus(), *participants(effects), flow=IndexSite, store=store)
        found: dict[str, object] = {}
        for index in range(count):
            view = flow.monitor.get(f"site-{index}")
            found[f"site-{index}"] = None if view is None else view.status
        return found


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_fan_outs_survive_repeated_kill_9(
    tmp_path: Path, durable_backend: Backend, mode: str
) -> None:
    count = 24
    kills = harness.run_with_kills(
        tmp_path, count, 4, 5, mode, durable_backend.spec, "tests.crash.fanout_worker"
    )
    assert kills >= 2, "the test barely managed to kill the worker"
    effects = Effects(tmp_path / "effects.db")
    ended = statuses(durable_backend, effects, mode, count)
    connection = effects.connection
    doubled = connection.execute(
        "SELECT workflow, action, COUNT(*) FROM effects GROUP BY workflow, action "
        "HAVING COUNT(*) > 1"
    ).fetchall()
    assert doubled == [], "an item ran under two keys"
    reapplied = connection.execute(
        "SELECT done.key FROM executions AS done JOIN executions AS undo "
        "ON undo.key = done.key || ':undo' WHERE done.seq > undo.seq"
    ).fetchall()
    assert reapplied == [], reapplied
    effects_of: dict[str, dict[str, tuple[str, int]]] = {}
    for key, action, workflow, undone in connection.execute(
        "SELECT key, action, workflow, undone FROM effects"
    ):
        effects_of.setdefault(workflow, {})[action] = (key, undone)
    for index in range(count):
        workflow_id = f"site-{index}"
        done = effects_of.get(workflow_id, {})
        pages = [a for a in done if a.startswith("index:")]
        for action in pages:  # each item under its own key: `Indexer.index[<its position>]`
            position = int(action.removeprefix("index:").removeprefix("bad-").lstrip("p"))
            assert done[action][0] == f"{workflow_id}:Indexer.index[{position}]"
        if index % 3 == 0:
            assert ended[workflow_id] is WorkflowStatus.COMPENSATED, (workflow_id, done)
            assert all(undone for _, undone in done.values()), (workflow_id, done)
            assert "publish" not in done
            assert sorted(pages) == ["index:p0", "index:p1", "index:p3"]  # every item ran
        else:
            assert ended[workflow_id] is WorkflowStatus.COMPLETED, (workflow_id, done)
            assert sorted(done) == ["crawl", *(f"index:p{p}" for p in range(PAGES)), "publish"]
            assert not any(undone for _, undone in done.values()), (workflow_id, done)
    (executions,) = connection.execute("SELECT COUNT(*) FROM executions").fetchone()
    (distinct,) = connection.execute("SELECT COUNT(DISTINCT key) FROM executions").fetchone()
    assert executions - distinct <= kills, (executions, distinct, kills)
    connection.close()
