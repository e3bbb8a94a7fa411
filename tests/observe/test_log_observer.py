"""LogObserver: each journal entry as a log record, with the ids in `extra`."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from coordination import EntryKind
from coordination.errors import UsageError
from coordination.observe import DEFAULT_LEVELS, LogObserver
from tests.observe.scenarios import choreographed, orchestrated


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "coordination.flow"]


@pytest.mark.parametrize("runner", [orchestrated, choreographed])
def test_every_entry_is_a_record_with_correlation_id_and_action(
    runner: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="coordination.flow"):
        view = runner("refused", observers=[LogObserver()])  # type: ignore[operator]
    records = _records(caplog)
    assert len(records) == len(view.journal) - 1  # observers see all but workflow_started
    for record, entry in zip(records, list(view.journal)[1:], strict=True):
        assert record.correlation_id == "order-1"  # type: ignore[attr-defined]
        assert record.action == entry.name  # type: ignore[attr-defined]
        assert record.entry_kind == entry.kind.value  # type: ignore[attr-defined]
        assert record.levelno == DEFAULT_LEVELS[entry.kind]
        assert record.getMessage() == f"order-1 {entry}"
    failed = [r for r in records if r.entry_kind == "failed"]  # type: ignore[attr-defined]
    assert {r.action for r in failed} == {  # type: ignore[attr-defined]
        "Sellers.reserve_stock",
        "Logistics.assign_courier",
    }
    assert all(r.levelno == logging.WARNING for r in failed)


def test_step_transitions_are_info_and_attempt_detail_is_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="coordination.flow"):
        orchestrated("completed", observers=[LogObserver()])
    kinds = [r.entry_kind for r in _records(caplog)]  # type: ignore[attr-defined]
    assert kinds == ["completed"] * 4 + ["workflow_finished"]


def test_levels_and_logger_can_be_chosen(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("shop.orders")
    observer = LogObserver(logger, levels={EntryKind.STARTED: logging.INFO})
    assert observer.logger is logger
    with caplog.at_level(logging.INFO, logger="shop.orders"):
        orchestrated("completed", observers=[observer])
    kinds = [r.entry_kind for r in caplog.records if r.name == "shop.orders"]  # type: ignore[attr-defined]
    assert kinds.count("started") == 4


@pytest.mark.parametrize(
    ("logger", "levels"),
    [(3, None), ("x", {"started": logging.INFO}), ("x", {EntryKind.STARTED: "INFO"})],
)
def test_bad_arguments_are_usage_errors(logger: object, levels: object) -> None:
    with pytest.raises(UsageError, match="LogObserver"):
        LogObserver(logger, levels=levels)  # type: ignore[arg-type]


def test_the_library_logs_nothing_until_the_application_configures_logging() -> None:
    script = (
        "from coordination.observe import LogObserver\n"
        "from tests.observe.scenarios import orchestrated\n"
        "run = orchestrated('undo-failed', observers=[LogObserver()])\n"
        "print(run.status.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "COMPENSATION_FAILED\n"
    assert done.stderr == ""  # WARNING records included: no last-resort handler output
