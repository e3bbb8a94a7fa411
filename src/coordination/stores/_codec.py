"""How durable stores turn values into text and back: JSON, never pickle, never an import.

One codec serves every durable backend. Writing refuses what could not be read back;
reading resolves type names only to message classes defined in this process (or
registered), and turns every malformed value — a foreign type name, broken JSON, a
tampered row of any size or depth — into a `StoreError` naming the run and what to do.
Nothing read is ever imported or executed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic_core import PydanticSerializationError
from pydantic_core import to_json as to_json_bytes

from coordination._journal import ROW_WIDTH, EntryKind, Rows
from coordination._messages import Message, from_json, persistence_problem, to_json, type_name_of
from coordination.errors import CompensationFailed, MessageError, StepFailed, StoreError
from coordination.stores._records import Request

__all__ = ["INTEGER", "MAYBE_NUMBER", "MAYBE_TEXT", "NUMBER", "TEXT", "Codec", "column"]

_KINDS = frozenset(kind.value for kind in EntryKind)
#: Per position of a journal row: the types a stored value may have.
_ROW_TYPES: tuple[tuple[type, ...], ...] = (
    (str,),  # kind
    (str,),  # participant
    (str,),  # action
    (str,),  # correlation_id
    (str, type(None)),  # causation_id
    (int,),  # attempt
    (int, float),  # at
    (int, float, type(None)),  # duration
    (str, type(None)),  # undoes
    (str, type(None)),  # error
    (str, type(None)),  # detail
)


def _loads(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as error:
        detail = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
        raise StoreError(f"{what} is not valid JSON ({detail}); the row is left intact") from error


#: What a stored scalar column may hold, by what it means (bools are never numbers here).
TEXT: tuple[type, ...] = (str,)
MAYBE_TEXT: tuple[type, ...] = (str, type(None))
INTEGER: tuple[type, ...] = (int,)
NUMBER: tuple[type, ...] = (int, float)
MAYBE_NUMBER: tuple[type, ...] = (int, float, type(None))


def column(value: Any, kinds: tuple[type, ...], workflow_id: Any, what: str) -> Any:
    """`value` if it is of one of `kinds`, else `StoreError`.

    A tampered or damaged row can hold any type in any column (SQLite does not enforce
    them; a cell that is not UTF-8 reads as bytes): every scalar read is checked here.
    """
    if isinstance(value, kinds) and not isinstance(value, bool):
        return value
    raise StoreError(
        f"run {workflow_id!r}: its {what} is corrupt ({type(value).__name__} "
        f"{repr(value)[:100]}); the row is left intact"
    )


class Codec:
    """Encode and decode what a durable store keeps, with the message types it learned."""

    __slots__ = ("_types",)

    def __init__(self) -> None:
        self._types: dict[str, type[Message]] = {}

    def register(self, types: Iterable[type[Message]]) -> None:
        """Learn message types; `StoreError` at once for one that could not be read back."""
        for message_type in types:
            problem = persistence_problem(message_type)
            if problem is not None:
                raise StoreError(f"a durable store cannot keep it: {problem}")
            self._types[type_name_of(message_type)] = message_type

    # -- messages ---------------------------------------------------------------------------

    def message(self, message: Message, what: str) -> str:
        try:
            return to_json(message)
        except MessageError as error:
            raise StoreError(f"cannot store {what}: {error}") from error

    def starts(self, starts: Sequence[tuple[str, Message]]) -> list[str]:
        """The start messages of a batch of runs, every one encoded before any is written."""
        return [
            self.message(start, f"the start message of {workflow_id!r}")
            for workflow_id, start in starts
        ]

    def read_message(self, text: Any, workflow_id: str, what: str) -> Message:
        if not isinstance(text, str | bytes):
            raise StoreError(
                f"run {workflow_id!r}: its {what} is stored as {type(text).__name__}, not JSON "
                f"text; the row is left intact"
            )
        try:
            return from_json(text, self._types.values())
        except MessageError as error:
            raise StoreError(
                f"run {workflow_id!r}: cannot read its {what} ({error}); the row is left "
                f"intact: import the module that defines the message type (reading never "
                f"imports) or add an upcaster"
            ) from error

    def read_request(self, workflow_id: str, seq: Any, at: Any, text: Any) -> Request:
        """A stored request's row (its number, when it was made, its message or NULL)."""
        column(seq, INTEGER, workflow_id, "request number")
        column(at, NUMBER, workflow_id, "request time")
        message = None if text is None else self.read_message(text, workflow_id, "a request")
        return Request(int(seq), float(at), message)

    def output(self, output: Any, workflow_id: str, what: str) -> str | None:
        """A step's output: None, one message, or a tuple of messages (a JSON list)."""
        if output is None:
            return None
        if isinstance(output, tuple):
            members = (self.message(m, f"{what} of run {workflow_id!r}") for m in output)
            return "[" + ",".join(members) + "]"
        if not isinstance(output, Message):
            raise StoreError(
                f"run {workflow_id!r}: cannot store {what}: {type(output).__name__} is not a "
                f"message"
            )
        return self.message(output, f"{what} of run {workflow_id!r}")

    def read_output(self, text: str | None, workflow_id: str, what: str) -> Any:
        if text is None:
            return None
        if isinstance(text, str) and text.startswith("["):
            members = _loads(text, f"run {workflow_id!r}: {what}")
            if not isinstance(members, list):
                raise StoreError(f"run {workflow_id!r}: {what} is not a list of messages")
            return tuple(
                self.read_message(json.dumps(member), workflow_id, what) for member in members
            )
        return self.read_message(text, workflow_id, what)

    # -- errors -----------------------------------------------------------------------------

    @staticmethod
    def error(error: BaseException | None) -> str | None:
        if error is None:
            return None
        document: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
        for attribute in ("step", "compensation", "attempts"):
            if hasattr(error, attribute):
                document[attribute] = getattr(error, attribute)
        return json.dumps(document)

    @staticmethod
    def read_error(text: str | None, workflow_id: str) -> BaseException | None:
        if text is None:
            return None
        document = _loads(text, f"run {workflow_id!r}: its error")
        if not isinstance(document, dict) or not isinstance(document.get("message"), str):
            raise StoreError(f"run {workflow_id!r}: its stored error is malformed: {text[:200]!r}")
        step = document.get("step", "")
        attempts = document.get("attempts", 0)
        if not isinstance(step, str) or isinstance(attempts, bool) or not isinstance(attempts, int):
            raise StoreError(f"run {workflow_id!r}: its stored error is malformed: {text[:200]!r}")
        if document.get("type") == "CompensationFailed":
            compensation = document.get("compensation", "")
            return CompensationFailed(
                document["message"],
                step=step,
                compensation=compensation if isinstance(compensation, str) else "",
                attempts=attempts,
            )
        return StepFailed(document["message"], step=step, attempts=attempts)

    # -- journal rows -----------------------------------------------------------------------

    @staticmethod
    def rows(rows: Rows) -> str:
        try:
            # pydantic's serializer writes a flat tuple of primitives several times faster
            # than the json module; it refuses what JSON cannot hold as UTF-8 (an error
            # text with a lone surrogate), which the json module then writes escaped.
            return to_json_bytes(rows).decode()
        except (PydanticSerializationError, ValueError):
            pass
        try:
            return json.dumps(rows)
        except (TypeError, ValueError) as error:
            raise StoreError(f"cannot store journal rows: {error}") from error

    @staticmethod
    def read_rows(text: Any, workflow_id: str, key: str) -> Rows:
        """Journal rows as a flat tuple, each value of the type its position holds."""
        what = f"run {workflow_id!r}: the journal of {key!r}"
        if not isinstance(text, str):
            raise StoreError(f"{what} is not JSON text; the row is left intact")
        values = _loads(text, what)
        if not isinstance(values, list) or len(values) % ROW_WIDTH:
            raise StoreError(f"{what} is not a list of journal rows; the row is left intact")
        for index, value in enumerate(values):
            position = index % ROW_WIDTH
            if not isinstance(value, _ROW_TYPES[position]) or isinstance(value, bool):
                raise StoreError(f"{what} holds {value!r} at field {position}: corrupt row")
            if position == 0 and value not in _KINDS:
                raise StoreError(f"{what} names an unknown entry kind {value!r}: corrupt row")
            if isinstance(value, float) and not math.isfinite(value):
                raise StoreError(f"{what} holds {value!r}: corrupt row")
        return tuple(values)
