"""Messages: frozen pydantic models with stable type names, JSON round trips, envelopes."""

from __future__ import annotations

import json
import os
import types
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import Field, ValidationError

from coordination import Command, Envelope, Event, Message, from_json, to_json
from coordination._messages import persistence_problem, resolve_type_name, type_name_of
from coordination.errors import (
    CoordinationError,
    DefinitionError,
    MalformedMessage,
    MessageError,
    UnknownMessageType,
)


class OrderPlaced(Event):
    order_id: str
    amount_cents: int = Field(gt=0)


class Renamed(Event, type_name="shop.Renamed"):
    order_id: str


class ChildOfRenamed(Renamed):
    pass


class ShipOrder(Command):
    order_id: str
    express: bool = False


class Nested:
    class Inner(Event):
        value: int


NOT_A_MESSAGE = 42


class Plain:
    """A class that is not a message."""


# -- models -------------------------------------------------------------------------------


def test_event_and_command_are_messages() -> None:
    assert issubclass(Event, Message)
    assert issubclass(Command, Message)
    assert not issubclass(Event, Command)
    assert not issubclass(Command, Event)


def test_messages_are_frozen() -> None:
    order = OrderPlaced(order_id="o-1", amount_cents=100)
    with pytest.raises(ValidationError):
        order.order_id = "o-2"  # type: ignore[misc]
    assert order.order_id == "o-1"


def test_commands_are_frozen_too() -> None:
    command = ShipOrder(order_id="o-1")
    with pytest.raises(ValidationError):
        command.express = True  # type: ignore[misc]


def test_messages_are_hashable_and_compare_by_value() -> None:
    assert OrderPlaced(order_id="o", amount_cents=1) == OrderPlaced(order_id="o", amount_cents=1)
    assert OrderPlaced(order_id="o", amount_cents=1) != OrderPlaced(order_id="o", amount_cents=2)
    assert (
        len(
            {OrderPlaced(order_id="o", amount_cents=1)}
            | {OrderPlaced(order_id="o", amount_cents=1)}
        )
        == 1
    )


def test_extra_fields_are_forbidden() -> None:
    with pytest.raises(ValidationError) as caught:
        OrderPlaced(order_id="o-1", amount_cents=100, coupon="FREE")  # type: ignore[call-arg]
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    "data",
    [
        {"order_id": "o-1", "amount_cents": 0},
        {"order_id": "o-1", "amount_cents": -5},
        {"order_id": "o-1", "amount_cents": "lots"},
        {"order_id": "o-1"},
        {"amount_cents": 10},
    ],
)
def test_bad_input_raises_validation_error(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        OrderPlaced(**data)


# -- type names -----------------------------------------------------------------------------


def test_type_name_is_module_and_qualname_by_default() -> None:
    assert type_name_of(OrderPlaced) == f"{__name__}:OrderPlaced"
    assert type_name_of(Nested.Inner) == f"{__name__}:Nested.Inner"


def test_explicit_type_name_wins() -> None:
    assert type_name_of(Renamed) == "shop.Renamed"


def test_subclass_does_not_inherit_the_explicit_type_name() -> None:
    assert type_name_of(ChildOfRenamed) == f"{__name__}:ChildOfRenamed"


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_type_name_is_a_definition_error(bad: str) -> None:
    with pytest.raises(DefinitionError, match="type_name must be a non-empty string"):

        class Broken(Event, type_name=bad):
            pass


def test_non_string_type_name_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="Broken"):

        class Broken(Event, type_name=3):  # type: ignore[arg-type]
            pass


# -- JSON round trips -----------------------------------------------------------------------


def test_round_trip_of_a_module_level_class() -> None:
    order = OrderPlaced(order_id="o-1", amount_cents=250)
    text = to_json(order)
    assert json.loads(text) == {
        "type": f"{__name__}:OrderPlaced",
        "data": {"order_id": "o-1", "amount_cents": 250},
    }
    back = from_json(text)
    assert type(back) is OrderPlaced
    assert back == order


def test_round_trip_of_a_nested_class() -> None:
    inner = Nested.Inner(value=3)
    assert from_json(to_json(inner)) == inner


def test_round_trip_of_a_command() -> None:
    command = ShipOrder(order_id="o-9", express=True)
    back = from_json(to_json(command))
    assert type(back) is ShipOrder
    assert back == command


def test_from_json_accepts_bytes() -> None:
    order = OrderPlaced(order_id="o-1", amount_cents=1)
    assert from_json(to_json(order).encode()) == order


def test_round_trip_with_explicit_type_name() -> None:
    message = Renamed(order_id="o-1")
    text = to_json(message)
    assert json.loads(text)["type"] == "shop.Renamed"
    assert type(from_json(text)) is Renamed  # found in the index of defined classes
    back = from_json(text, types=[OrderPlaced, Renamed])
    assert type(back) is Renamed
    assert back == message


def test_types_take_precedence_over_the_index() -> None:
    class Other(Event, type_name=f"{__name__}:OrderPlaced"):
        order_id: str
        amount_cents: int

    text = to_json(OrderPlaced(order_id="o", amount_cents=1))
    assert type(from_json(text, types=(OrderPlaced,))) is OrderPlaced
    assert resolve_type_name(f"{__name__}:OrderPlaced", (OrderPlaced,)) is OrderPlaced
    assert type(from_json(text, types=(Other,))) is Other


def test_an_explicit_name_of_a_class_that_is_gone_is_unknown() -> None:
    import gc

    def define() -> None:
        class Fleeting(Event, type_name="tests.Fleeting"):
            n: int

        assert from_json(to_json(Fleeting(n=1))) == Fleeting(n=1)

    define()
    gc.collect()  # the index holds classes weakly: a class nobody holds is not readable
    with pytest.raises(UnknownMessageType, match=r"tests\.Fleeting"):
        from_json(json.dumps({"type": "tests.Fleeting", "data": {"n": 1}}))


def test_subclass_of_explicitly_named_class_round_trips_by_import() -> None:
    child = ChildOfRenamed(order_id="o-2")
    back = from_json(to_json(child))
    assert type(back) is ChildOfRenamed


# -- from_json errors -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["not json", "{", "", b"\xff\xfe"])
def test_from_json_of_non_json_is_malformed(text: str | bytes) -> None:
    with pytest.raises(MalformedMessage, match="not a JSON message"):
        from_json(text)


@pytest.mark.parametrize(
    "document",
    [
        [],
        "text",
        {"data": {}},
        {"type": f"{__name__}:OrderPlaced"},
        {"type": 3, "data": {}},
        {"type": f"{__name__}:OrderPlaced", "data": []},
        {"type": f"{__name__}:OrderPlaced", "data": "x"},
    ],
)
def test_from_json_of_wrong_shape_is_malformed(document: object) -> None:
    with pytest.raises(MalformedMessage, match='"type"'):
        from_json(json.dumps(document))


def test_unknown_module_is_unknown_message_type() -> None:
    text = json.dumps({"type": "no_such_module_xyz:Thing", "data": {}})
    with pytest.raises(UnknownMessageType, match=r"import the module.*no_such_module_xyz"):
        from_json(text)


def test_unknown_attribute_is_unknown_message_type() -> None:
    text = json.dumps({"type": f"{__name__}:Vanished", "data": {}})
    with pytest.raises(UnknownMessageType, match="type_name="):
        from_json(text)


def test_unknown_nested_attribute_is_unknown_message_type() -> None:
    with pytest.raises(UnknownMessageType):
        from_json(json.dumps({"type": f"{__name__}:Nested.Gone", "data": {}}))


@pytest.mark.parametrize("name", ["no-colon", ":Thing", "shop.Unknown", ".x:Y", "", "a" * 10_000])
def test_names_nobody_defined_are_unknown(name: str) -> None:
    with pytest.raises(UnknownMessageType, match="reading never imports"):
        from_json(json.dumps({"type": name, "data": {}}))


@pytest.mark.parametrize(
    "name", [f"{__name__}:NOT_A_MESSAGE", f"{__name__}:Plain", "json:dumps", "json:JSONDecodeError"]
)
def test_a_name_that_is_not_a_message_class_is_unknown(name: str) -> None:
    with pytest.raises(UnknownMessageType, match="no message class of that name"):
        from_json(json.dumps({"type": name, "data": {}}))


def test_invalid_data_is_malformed_with_validation_error_as_cause() -> None:
    text = json.dumps(
        {"type": f"{__name__}:OrderPlaced", "data": {"order_id": "o", "amount_cents": 0}}
    )
    with pytest.raises(MalformedMessage, match="not a valid") as caught:
        from_json(text)
    assert isinstance(caught.value.__cause__, ValidationError)


def test_extra_data_is_malformed() -> None:
    text = json.dumps(
        {"type": f"{__name__}:OrderPlaced", "data": {"order_id": "o", "amount_cents": 1, "x": 1}}
    )
    with pytest.raises(MalformedMessage) as caught:
        from_json(text)
    assert isinstance(caught.value.__cause__, ValidationError)


def test_message_errors_are_coordination_errors() -> None:
    assert issubclass(MalformedMessage, MessageError)
    assert issubclass(UnknownMessageType, MessageError)
    assert issubclass(MessageError, CoordinationError)


# -- to_json errors -------------------------------------------------------------------------


def test_to_json_of_a_local_class_asks_for_a_type_name() -> None:
    class Local(Event):
        n: int

    message = Local(n=1)
    assert persistence_problem(Local) is not None
    with pytest.raises(MessageError, match=r"inside a function.*type_name") as caught:
        to_json(message)
    assert not isinstance(caught.value, MalformedMessage | UnknownMessageType)


def test_local_class_with_type_name_round_trips() -> None:
    class Local(Event, type_name="tests.Local"):
        n: int

    assert persistence_problem(Local) is None
    assert from_json(to_json(Local(n=5)), types=[Local]) == Local(n=5)


def _scripted_class(**keywords: Any) -> Any:
    """A message class as a script would define it: module `__main__`, a plain qualname."""

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(
            {"__module__": "__main__", "__qualname__": "Scripted", "__annotations__": {"n": int}}
        )

    return types.new_class("Scripted", (Event,), keywords, body)


def test_to_json_of_a_class_in_main_asks_for_a_type_name() -> None:
    scripted = _scripted_class()
    assert type_name_of(scripted) == "__main__:Scripted"
    assert "<locals>" not in scripted.__qualname__
    with pytest.raises(MessageError, match=r"__main__.*type_name"):
        to_json(scripted(n=1))


def test_class_in_main_with_type_name_is_fine() -> None:
    scripted = _scripted_class(type_name="scripts.Scripted")
    assert persistence_problem(scripted) is None
    assert from_json(to_json(scripted(n=2)), types=[scripted]) == scripted(n=2)


@pytest.mark.parametrize("value", [{"order_id": "o"}, "text", None, Plain()])
def test_to_json_of_a_non_message_is_a_message_error(value: object) -> None:
    with pytest.raises(MessageError, match="to_json"):
        to_json(value)  # type: ignore[arg-type]


# -- envelopes ------------------------------------------------------------------------------


def test_envelope_defaults() -> None:
    order = OrderPlaced(order_id="o", amount_cents=1)
    before = datetime.now(UTC)
    first = Envelope(order)
    second = Envelope(order)
    after = datetime.now(UTC)
    assert first.message is order
    assert first.causation_id is None
    assert first.correlation_id
    assert first.message_id
    assert first.correlation_id != second.correlation_id
    assert first.message_id != second.message_id
    assert first.message_id != first.correlation_id
    assert first.occurred_at.tzinfo is not None
    assert before <= first.occurred_at <= after


def test_envelope_is_frozen() -> None:
    envelope = Envelope(OrderPlaced(order_id="o", amount_cents=1))
    with pytest.raises(AttributeError):
        envelope.correlation_id = "x"  # type: ignore[misc]


def test_envelope_fields_cannot_be_set_at_all() -> None:
    envelope = Envelope(OrderPlaced(order_id="o", amount_cents=1))
    for name in ("message", "causation_id", "message_id", "occurred_at", "timestamp"):
        with pytest.raises(AttributeError):
            setattr(envelope, name, None)
    assert envelope.message_id == envelope.message_id  # formatted once, then the same


def test_envelopes_compare_by_their_fields() -> None:
    order = OrderPlaced(order_id="o", amount_cents=1)
    at = datetime(2026, 1, 2, tzinfo=UTC)
    first = Envelope(order, "c", None, "m", at)
    assert first == Envelope(order, "c", None, "m", at)
    assert hash(first) == hash(Envelope(order, "c", None, "m", at))
    assert first != Envelope(order, "c", None, "other", at)
    assert first.timestamp == at.timestamp()
    assert "message_id='m'" in repr(first)


def test_an_envelope_made_before_a_fork_keeps_its_id_in_the_child() -> None:
    # Ids are formatted when first read; one made in the parent and first read in a forked
    # child (which draws a new id prefix and counts from 1 again) must still be the
    # parent's id, and never one the child hands out itself.
    made = Envelope(OrderPlaced(order_id="o", amount_cents=1))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        own = [Envelope(made.message).message_id for _ in range(3)]
        os.write(write, json.dumps([made.message_id, *own]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        seen = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert seen[0] == made.message_id
    assert made.message_id not in seen[1:]


def test_wrap_without_cause_starts_a_new_correlation() -> None:
    order = OrderPlaced(order_id="o", amount_cents=1)
    first = Envelope.wrap(order)
    second = Envelope.wrap(order)
    assert first.message is order
    assert first.causation_id is None
    assert first.correlation_id != second.correlation_id
    assert Envelope.wrap(order, correlation_id="flow-1").correlation_id == "flow-1"


def test_wrap_with_cause_continues_correlation_and_records_causation() -> None:
    cause = Envelope.wrap(OrderPlaced(order_id="o", amount_cents=1), correlation_id="flow-7")
    effect = Envelope.wrap(ShipOrder(order_id="o"), cause=cause)
    assert effect.correlation_id == "flow-7"
    assert effect.causation_id == cause.message_id
    assert effect.message_id != cause.message_id
    assert isinstance(effect.message, ShipOrder)
    # A chain keeps the correlation and points each link at the one before it.
    third = Envelope.wrap(Renamed(order_id="o"), cause=effect)
    assert third.correlation_id == "flow-7"
    assert third.causation_id == effect.message_id


def test_wrap_with_cause_and_explicit_correlation_prefers_the_explicit_one() -> None:
    cause = Envelope.wrap(OrderPlaced(order_id="o", amount_cents=1), correlation_id="flow-7")
    effect = Envelope.wrap(ShipOrder(order_id="o"), cause=cause, correlation_id="other")
    assert effect.correlation_id == "other"
    assert effect.causation_id == cause.message_id
