"""Reading a SQLite store as it is: type names and raw JSON, the same journal, nothing written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coordination import WorkflowStatus
from coordination.errors import StoreError
from coordination.stores import SQLiteStore
from coordination.stores._sqlite_raw import read_run, read_runs
from coordination.testing import VirtualClock
from examples.ecommerce import PlaceOrder
from tests.observe.scenarios import ORDER, PLANS
from tests.testing.test_fakes import shop


def test_a_raw_run_has_the_stores_journal_and_steps(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    with SQLiteStore(db) as store:
        run = PlaceOrder(*shop(PLANS["refused"]()), store=store, clock=VirtualClock()).run(
            ORDER, workflow_id="w"
        )
    raw = read_run(db, "w")
    assert raw is not None
    assert raw.journal == run.journal
    assert [(s.key, s.outcome, s.attempts) for s in raw.steps] == [
        (s.key, s.outcome, s.attempts) for s in run.steps
    ]
    assert raw.status is WorkflowStatus.COMPENSATED
    assert raw.start_type == "ecommerce.OrderPlaced"
    assert raw.as_json()["start"]["data"]["order_id"] == "o-1"
    assert [r.workflow_id for r in read_runs(db, status=WorkflowStatus.COMPLETED)] == []
    assert read_run(db, "nope") is None


def test_only_coordination_stores_of_this_version_are_read(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        read_runs(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()  # never created
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(StoreError, match="not a coordination store"):
        read_runs(text)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)").connection.commit()
    with pytest.raises(StoreError, match="not a coordination store"):
        read_runs(other)
    newer = tmp_path / "newer.db"
    SQLiteStore(newer).close()
    connection = sqlite3.connect(newer)
    connection.execute("update coordination_meta set value = '99' where key = 'schema'")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="schema version '99'"):
        read_runs(newer)
