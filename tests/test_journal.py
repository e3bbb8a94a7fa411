"""The journal: readable entries and a read-only sequence to look into."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from coordination import EntryKind, Journal, JournalEntry

K = EntryKind


def _entry(
    kind: EntryKind, participant: str = "Payments", action: str = "charge", **kw: object
) -> JournalEntry:
    return JournalEntry(kind, participant, action, "flow-1", **kw)  # type: ignore[arg-type]


ENTRIES = (
    _entry(K.WORKFLOW_STARTED, "place-order", ""),
    _entry(K.STARTED, attempt=1),
    _entry(K.FAILED, attempt=1, duration=0.0125, error="ConnectionError: reset"),
    _entry(K.RETRIED, attempt=1, detail="waiting 0.05 s"),
    _entry(K.STARTED, attempt=2),
    _entry(K.COMPLETED, attempt=2, duration=0.002),
    _entry(K.STARTED, "Sellers", "reserve_stock", attempt=1),
    _entry(K.FAILED, "Sellers", "reserve_stock", attempt=1, error="OutOfStock"),
    _entry(K.COMPENSATED, "Payments", "refund", attempt=1, undoes="Payments.charge"),
    _entry(K.WORKFLOW_FINISHED, "place-order", "", detail="compensated"),
)


# -- entries -------------------------------------------------------------------------------


def test_entry_defaults() -> None:
    entry = JournalEntry(K.STARTED, "Payments", "charge", "flow-1")
    assert entry.causation_id is None
    assert entry.attempt == 0
    assert entry.at == 0.0
    assert entry.duration is None
    assert entry.undoes is None
    assert entry.error is None
    assert entry.detail is None


def test_entries_are_immutable() -> None:
    entry = _entry(K.STARTED)
    with pytest.raises(AttributeError):
        entry.attempt = 3  # type: ignore[misc]


def test_name_is_participant_dot_action() -> None:
    assert _entry(K.STARTED).name == "Payments.charge"
    assert _entry(K.WORKFLOW_STARTED, "place-order", "").name == "place-order"


def test_str_names_kind_and_action() -> None:
    text = str(_entry(K.STARTED))
    assert text.startswith("started")
    assert "Payments.charge" in text
    assert "attempt" not in text  # attempt 0 means "not about an attempt"
    assert "ms" not in text
    assert "error" not in text


def test_str_kind_column_is_aligned() -> None:
    short = str(_entry(K.STARTED))
    long = str(_entry(K.COMPENSATION_FAILED))
    assert short.index("Payments.charge") == long.index("Payments.charge") == 20


def test_str_shows_attempt_duration_and_error() -> None:
    entry = _entry(K.FAILED, attempt=2, duration=0.0125, error="ConnectionError: reset")
    assert str(entry) == (
        "failed              Payments.charge attempt 2 12.50 ms error: ConnectionError: reset"
    )


def test_str_shows_zero_duration() -> None:
    assert "0.00 ms" in str(_entry(K.COMPLETED, attempt=1, duration=0.0))


def test_str_shows_what_a_compensation_undoes() -> None:
    entry = _entry(K.COMPENSATED, "Payments", "refund", attempt=1, undoes="Payments.charge")
    text = str(entry)
    assert "Payments.refund (undoes Payments.charge)" in text
    assert text.endswith("attempt 1")


def test_str_shows_detail_before_error() -> None:
    text = str(_entry(K.LATE_RESULT, attempt=1, detail="left alone", error="boom"))
    assert text.endswith("attempt 1 left alone error: boom")


def test_str_of_a_workflow_entry() -> None:
    assert str(_entry(K.WORKFLOW_FINISHED, "place-order", "", detail="completed")) == (
        "workflow_finished   place-order completed"
    )


# -- the journal ---------------------------------------------------------------------------


def test_journal_is_a_read_only_sequence() -> None:
    journal = Journal(ENTRIES)
    assert isinstance(journal, Sequence)
    assert len(journal) == len(ENTRIES)
    assert list(journal) == list(ENTRIES)
    assert journal[0] is ENTRIES[0]
    assert journal[-1] is ENTRIES[-1]
    assert ENTRIES[3] in journal
    assert journal.index(ENTRIES[4]) == 4
    assert journal.count(ENTRIES[1]) == 1
    assert list(reversed(journal)) == list(reversed(ENTRIES))
    assert not hasattr(journal, "append")
    with pytest.raises(TypeError):
        journal[0] = ENTRIES[1]  # type: ignore[index]
    with pytest.raises(AttributeError):
        journal.extra = 1  # type: ignore[attr-defined]


def test_journal_copies_its_input() -> None:
    source = list(ENTRIES[:2])
    journal = Journal(source)
    source.append(ENTRIES[2])
    assert len(journal) == 2


def test_journal_accepts_a_generator() -> None:
    journal = Journal(entry for entry in ENTRIES)
    assert len(journal) == len(ENTRIES)
    assert list(journal) == list(ENTRIES)  # iterable more than once


def test_empty_journal() -> None:
    journal = Journal()
    assert len(journal) == 0
    assert not journal
    assert journal.render() == ""
    assert journal.names(K.STARTED) == []
    with pytest.raises(IndexError):
        journal[0]


def test_slicing_returns_a_journal() -> None:
    journal = Journal(ENTRIES)
    head = journal[:3]
    assert isinstance(head, Journal)
    assert list(head) == list(ENTRIES[:3])
    assert list(journal[::2]) == list(ENTRIES[::2])
    assert isinstance(journal[5:2], Journal)
    assert len(journal[5:2]) == 0


def test_of_kind() -> None:
    journal = Journal(ENTRIES)
    failed = journal.of_kind(K.FAILED)
    assert isinstance(failed, Journal)
    assert list(failed) == [ENTRIES[2], ENTRIES[7]]
    both = journal.of_kind(K.COMPLETED, K.COMPENSATED)
    assert list(both) == [ENTRIES[5], ENTRIES[8]]  # in journal order, not argument order
    assert len(journal.of_kind()) == 0
    assert len(journal.of_kind(K.PUBLISHED)) == 0


def test_names() -> None:
    journal = Journal(ENTRIES)
    assert journal.names(K.STARTED) == [
        "Payments.charge",
        "Payments.charge",
        "Sellers.reserve_stock",
    ]
    assert journal.names(K.COMPENSATED, K.FAILED) == [
        "Payments.charge",
        "Sellers.reserve_stock",
        "Payments.refund",
    ]
    assert journal.names(K.WORKFLOW_STARTED) == ["place-order"]


def test_render_is_one_line_per_entry() -> None:
    journal = Journal(ENTRIES)
    lines = journal.render().splitlines()
    assert lines == [str(entry) for entry in ENTRIES]
    assert "(undoes Payments.charge)" in lines[8]


def test_equality_and_hash() -> None:
    assert Journal(ENTRIES) == Journal(list(ENTRIES))
    assert hash(Journal(ENTRIES)) == hash(Journal(ENTRIES))
    assert Journal(ENTRIES) != Journal(ENTRIES[:-1])
    assert Journal(ENTRIES[:2]) != Journal(reversed(ENTRIES[:2]))
    # Compared with other sequences, a journal is not equal even with the same entries.
    assert Journal(ENTRIES) != list(ENTRIES)
    assert Journal(ENTRIES) != ENTRIES
    assert Journal(ENTRIES)[2:4] == Journal(ENTRIES[2:4])


def test_repr_counts_entries() -> None:
    assert repr(Journal(ENTRIES)) == f"Journal({len(ENTRIES)} entries)"


def test_entry_kinds_are_strings() -> None:
    assert K.COMPENSATION_FAILED == "compensation_failed"
    assert K("late_result") is K.LATE_RESULT
    assert len({kind.value for kind in K}) == len(K)
