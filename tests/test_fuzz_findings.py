"""What the fuzzing (tests/test_fuzz.py) found, one focused test each; all failed before
their fix.

Stored rows are damaged with plain sqlite3, as a hostile user or a bad disk would; recovery
must leave the damaged run alone, report it, and still resume the healthy one.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from coordination import WorkflowStatus, from_json, to_json
from coordination.engine import owner_alive
from coordination.engine._plan import shape_difference
from coordination.errors import FlowChanged, InvalidTransition, MessageError, StoreError
from coordination.stores import SQLiteStore
from coordination.testing import VirtualClock
from examples.ecommerce import PlaceOrder
from tests import fuzzing
from tests.fuzzing import Bag, order, shop

# -- messages ------------------------------------------------------------------------------


def test_a_message_holding_a_lone_surrogate_is_refused_by_to_json() -> None:
    """JSON may escape a lone surrogate; what it reads cannot be written back as UTF-8.
    to_json raised pydantic's PydanticSerializationError (a bare ValueError)."""
    message = from_json('{"type": "fuzz.Bag", "data": {"label": "\\ud800"}}')
    with pytest.raises(MessageError, match="cannot be written as JSON"):
        to_json(message)


def test_a_store_refuses_a_start_message_it_could_not_write(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        flow = PlaceOrder(*shop(), store=store, clock=VirtualClock())
        hostile = order("o1").model_copy(update={"address": "1 Road \udcff"})
        with pytest.raises(StoreError, match="cannot store"):
            flow.run(hostile, workflow_id="w")
        assert store.get_run("w") is None


def test_non_finite_floats_read_back_as_written() -> None:
    """They were written as null, which reading refuses: a run holding one was unreadable."""
    message = Bag(mapping={"up": math.inf, "down": -math.inf, "nan": math.nan})
    back = from_json(to_json(message))
    assert isinstance(back, Bag)
    assert back.mapping["up"] == math.inf
    assert back.mapping["down"] == -math.inf
    assert math.isnan(back.mapping["nan"])


# -- recovery isolates one damaged run -----------------------------------------------------


def _two_interrupted(path: Path, *, undoing: bool = False) -> None:
    """Runs 'bad' and 'good' of the example flow, each interrupted (Ctrl-C) before its end;
    with `undoing`, 'bad' is interrupted while it compensates (it ordered too much)."""
    parts = shop()
    with SQLiteStore(path) as store:
        flow = PlaceOrder(*parts, store=store, clock=VirtualClock())
        if undoing:
            parts[0].fail("refund", KeyboardInterrupt())
        else:
            parts[3].fail("send_confirmation", KeyboardInterrupt())
        with contextlib.suppress(KeyboardInterrupt):
            flow.run(order("o1", 5_000 if undoing else 1), workflow_id="bad")
        parts[3].fail("send_confirmation", KeyboardInterrupt())
        with contextlib.suppress(KeyboardInterrupt):
            flow.run(order("o2"), workflow_id="good")


def _damage(path: Path, sql: str, *parameters: Any) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(sql, parameters)
    finally:
        connection.close()


def _recover(path: Path) -> tuple[dict[str, WorkflowStatus], list[tuple[str, BaseException]]]:
    """Recover the file in a fresh store: each run's status after, and what was reported."""
    problems: list[tuple[str, BaseException]] = []
    with SQLiteStore(path) as store:
        flow = PlaceOrder(*shop(), store=store, clock=VirtualClock())
        flow.recover(on_problem=lambda workflow_id, error: problems.append((workflow_id, error)))
        statuses = {}
        for run in ("bad", "good"):
            with contextlib.suppress(StoreError):
                record = store.get_run(run)
                assert record is not None
                statuses[run] = record.status
    return statuses, problems


def test_one_cell_that_is_not_utf8_does_not_stop_recovery(tmp_path: Path) -> None:
    """sqlite3 failed the whole owed-work query on it: recover() raised for every run."""
    path = tmp_path / "s.db"
    _two_interrupted(path)
    _damage(path, "UPDATE runs SET status = CAST(? AS TEXT) WHERE workflow_id = 'bad'", b"\xff")
    statuses, _ = _recover(path)
    assert statuses == {"good": WorkflowStatus.COMPLETED}  # 'bad' cannot be read
    with SQLiteStore(path) as store, pytest.raises(StoreError, match="unknown status"):
        store.get_run("bad")


@pytest.mark.parametrize(
    ("owner", "lease"), [(b"x\xff", None), (b"hi", 1e300), ("other-host:1:k1", None)]
)
def test_an_owner_holding_nothing_is_taken_over(
    tmp_path: Path, owner: bytes | str, lease: float | None
) -> None:
    """An owner that is not text (a BLOB, or TEXT that is not UTF-8) went to the liveness
    check as bytes (TypeError out of recover()); one without a lease never expired."""
    path = tmp_path / "s.db"
    _two_interrupted(path)
    slot = "CAST(? AS TEXT)" if owner == b"x\xff" else "?"
    _damage(
        path,
        f"UPDATE runs SET owner = {slot}, lease_expires = ? WHERE workflow_id = 'bad'",
        owner,
        lease,
    )
    statuses, problems = _recover(path)
    assert statuses == {"bad": WorkflowStatus.COMPLETED, "good": WorkflowStatus.COMPLETED}
    assert problems == []


def test_an_unreadable_ended_run_that_still_owes_work_does_not_stop_recovery(
    tmp_path: Path,
) -> None:
    """An ended run that owes work (a scheduled start, say) is read before it is claimed;
    with a damaged step that read raised StoreError out of recover() for every run."""
    path = tmp_path / "s.db"
    _two_interrupted(path)
    _damage(path, "UPDATE runs SET status = 'completed', owner = NULL WHERE workflow_id = 'bad'")
    _damage(path, "UPDATE steps SET outcome = '' WHERE workflow_id = 'bad'")
    statuses, problems = _recover(path)
    assert statuses == {"good": WorkflowStatus.COMPLETED}  # 'bad' cannot be read
    assert [(run, type(error)) for run, error in problems] == [("bad", StoreError)]
    assert "unknown outcome" in str(problems[0][1])


def test_a_token_past_64_bits_is_refused_by_the_claim(tmp_path: Path) -> None:
    """A REAL token became a Python int too big for SQLite: OverflowError on the next write."""
    path = tmp_path / "s.db"
    _two_interrupted(path)
    _damage(path, "UPDATE runs SET token = 1e300 WHERE workflow_id = 'bad'")
    statuses, problems = _recover(path)
    assert statuses["good"] is WorkflowStatus.COMPLETED
    assert [(run, type(error)) for run, error in problems] == [("bad", StoreError)]
    assert "token is corrupt" in str(problems[0][1])


def test_a_status_that_contradicts_the_records_is_left_alone(tmp_path: Path) -> None:
    """'bad' compensates, its status says RUNNING: InvalidTransition stopped recover()."""
    path = tmp_path / "s.db"
    _two_interrupted(path, undoing=True)
    _damage(path, "UPDATE runs SET status = 'running' WHERE workflow_id = 'bad'")
    statuses, problems = _recover(path)
    assert statuses["good"] is WorkflowStatus.COMPLETED
    assert [(run, type(error)) for run, error in problems] == [("bad", InvalidTransition)]


def test_a_stored_shape_of_other_types_is_a_flow_change(tmp_path: Path) -> None:
    """Joining its groups raised TypeError out of recover()."""
    assert shape_difference('[[{"a": 1}]]', '[["A.b"]]') == "the stored shape is unreadable"
    path = tmp_path / "s.db"
    _two_interrupted(path)
    _damage(path, "INSERT INTO shapes (id, shape) VALUES ('odd', ?)", json.dumps([[{"a": 1}]]))
    _damage(path, "UPDATE runs SET shape = 'odd' WHERE workflow_id = 'bad'")
    statuses, problems = _recover(path)
    assert statuses == {"bad": WorkflowStatus.RUNNING, "good": WorkflowStatus.COMPLETED}
    assert [(run, type(error)) for run, error in problems] == [("bad", FlowChanged)]


def test_a_run_whose_shape_is_missing_is_not_resumed_unchecked(tmp_path: Path) -> None:
    """A shape id naming no stored shape read as "no shape": the run resumed under any flow."""
    path = tmp_path / "s.db"
    _two_interrupted(path)
    _damage(path, "UPDATE runs SET shape = 'gone' WHERE workflow_id = 'bad'")
    statuses, problems = _recover(path)
    assert statuses == {"good": WorkflowStatus.COMPLETED}  # 'bad' cannot be read
    assert [(run, type(error)) for run, error in problems] == [("bad", StoreError)]
    assert "shape 'gone' is missing" in str(problems[0][1])


def test_an_event_id_that_is_not_text_is_reported(tmp_path: Path) -> None:
    """A BLOB id: the choreography derived its ids from it (TypeError out of recover())."""
    path = tmp_path / "s.db"
    parts = shop()
    with SQLiteStore(path) as store:
        flow = fuzzing.durable_choreography(store, parts)
        for run in ("bad", "good"):
            parts[2].fail("reserve_stock", KeyboardInterrupt())
            with contextlib.suppress(KeyboardInterrupt):
                flow.publish(order(run), correlation_id=run)
    _damage(path, "UPDATE events SET message_id = X'6964' WHERE workflow_id = 'bad' AND seq = 0")
    problems: list[tuple[str, BaseException]] = []
    with SQLiteStore(path) as store:
        flow = fuzzing.durable_choreography(store, shop())
        flow.recover(on_problem=lambda workflow_id, error: problems.append((workflow_id, error)))
        good = store.get_run("good")
        assert good is not None
        assert good.status is WorkflowStatus.COMPLETED
    assert [(run, type(error)) for run, error in problems] == [("bad", StoreError)]


# -- owners and files ------------------------------------------------------------------------


@pytest.mark.parametrize("pid", ["\u00b2", "9" * 5_000, str(2**40), "0"])
def test_an_owner_with_a_malformed_pid_cannot_be_told_alive(pid: str) -> None:
    """ValueError ("²" passes isdigit(); 5,000 digits pass int()'s limit), OverflowError
    (os.kill), or pid 0 (the whole process group) counted as alive forever."""
    assert owner_alive(f"{socket.gethostname()}:{pid}:t1") is None


@pytest.mark.parametrize("version", ["\u00b2", "9" * 5_000])
def test_a_schema_version_that_is_no_ascii_number_is_refused(tmp_path: Path, version: str) -> None:
    """ValueError from int() after isdigit() said yes."""
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    _damage(path, "UPDATE coordination_meta SET value = ? WHERE key = 'schema'", version)
    with pytest.raises(StoreError, match="unreadable schema version"):
        SQLiteStore(path)


def test_a_damaged_schema_name_is_a_store_error(tmp_path: Path) -> None:
    """sqlite3 decodes SQLite's error message, which quotes the damaged name: it raised
    UnicodeDecodeError while opening the file."""
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA writable_schema = ON")
    connection.execute(
        "UPDATE sqlite_master SET name = CAST(? AS TEXT), sql = 'CREATE TABLE x(' "
        "WHERE name = 'shapes'",
        (b"shapes\xff",),
    )
    connection.close()
    with pytest.raises(StoreError):
        SQLiteStore(path)
    fuzzing.remove(path)


def test_an_unreadable_waiting_run_keeps_only_its_own_timer_from_firing(tmp_path: Path) -> None:
    """resume_due() read every owed waiting run unguarded: one damaged row raised StoreError
    out of it, and no other run's timer fired either."""
    from examples.checkout import CardPayments, CheckoutStarted, OrderBook, WebhookCheckout
    from examples.checkout.flow import WEBHOOK_TIMEOUT

    path = tmp_path / "w.db"
    clock = VirtualClock()
    with SQLiteStore(path) as store:
        flow = WebhookCheckout(CardPayments(limit_cents=10_000), OrderBook(), store=store,
                               clock=clock)  # fmt: skip
        for order_id in ("bad", "good"):
            run = flow.run(
                CheckoutStarted(order_id=order_id, amount_cents=100), workflow_id=order_id
            )
            assert run.status is WorkflowStatus.WAITING
    _damage(path, "UPDATE steps SET outcome = '' WHERE workflow_id = 'bad'")
    with SQLiteStore(path) as store:
        flow = WebhookCheckout(CardPayments(limit_cents=10_000), OrderBook(), store=store,
                               clock=clock)  # fmt: skip
        clock.advance(WEBHOOK_TIMEOUT + 1)
        moved = flow.resume_due()
        assert [run.workflow_id for run in moved] == ["good"]
        assert moved[0].status.finished
