"""Messages: the typed facts (`Event`) and requests (`Command`) participants exchange.

A message is a frozen pydantic model, so bad input fails validation before any side effect,
and it has a stable type name so it can be written as JSON and read back by name (never by
pickle). The name is `module:QualName`, unless the class gives an explicit `type_name`
because it may move or be renamed.

Reading never imports. A name read from a payload, a store or a transport resolves only to a
message class already defined in this process (an index every `Message` subclass joins when
it is defined, held weakly) or to one passed in `types=`. Importing the module a stored name
names would let a payload run code (`venv.__main__` runs `python -m venv`); so the reader
must import the modules that define its messages, as it imports the code that handles them.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticSerializationError

from coordination.errors import DefinitionError, MalformedMessage, MessageError, UnknownMessageType

__all__ = [
    "ENVELOPE_ID",
    "ENVELOPE_WIDTH",
    "Command",
    "Envelope",
    "Event",
    "Message",
    "envelope_fields",
    "envelope_from_fields",
    "from_json",
    "new_id",
    "persistence_problem",
    "to_json",
    "type_name_of",
]


#: Every readable message class defined in this process, by stable name, each name's classes
#: in definition order. Weakly held, so a class that is gone (a test's local class) is not
#: kept alive by the index; of several live classes of one name the latest defined wins (a
#: reloaded module replaces its classes), and once it is gone the earlier one is back.
_INDEX: dict[str, list[weakref.ref[type[Message]]]] = {}
_INDEX_LOCK = threading.Lock()


def _index(cls: type[Message]) -> None:
    name = type_name_of(cls)

    def forget(ref: weakref.ref[type[Message]]) -> None:
        with _INDEX_LOCK:
            refs = _INDEX.get(name)
            if refs is not None and ref in refs:
                refs.remove(ref)
                if not refs:
                    del _INDEX[name]

    with _INDEX_LOCK:
        _INDEX.setdefault(name, []).append(weakref.ref(cls, forget))


def _indexed(name: str) -> type[Message] | None:
    with _INDEX_LOCK:
        refs = _INDEX.get(name, ())
        for ref in reversed(refs):
            found = ref()
            if found is not None:
                return found
    return None


def type_name_of(cls: type[Message]) -> str:
    """The stable name written to storage for `cls`: its `type_name`, else `module:QualName`."""
    explicit = cls.__dict__.get("__coordination_type_name__")
    if explicit is not None:
        return str(explicit)
    return f"{cls.__module__}:{cls.__qualname__}"


def persistence_problem(cls: type[Message]) -> str | None:
    """Why messages of `cls` could not be read back from storage, or None if they can."""
    if cls.__dict__.get("__coordination_type_name__") is not None:
        return None
    if "<locals>" in cls.__qualname__:
        return (
            f"message class {cls.__qualname__} is defined inside a function, so its name cannot "
            f"be imported back; give it a stable name: class {cls.__name__}(Event, "
            f'type_name="...")'
        )
    if cls.__module__ == "__main__":
        return (
            f"message class {cls.__qualname__} is defined in __main__ (a script), whose module "
            f"name changes when the file is imported; give it a stable name: "
            f'class {cls.__name__}(Event, type_name="...") or move it to a module'
        )
    return None


class Message(BaseModel):
    """Base of every message: frozen, no extra fields, validated on construction.

    Subclass `Event` or `Command` rather than this. Give `type_name="orders.OrderPlaced"` as a
    class keyword when the class may move or be renamed after messages were stored.
    """

    # Non-finite floats are written `Infinity` / `NaN`, as Python's json writes and reads
    # them, not `null` (which reading refuses for a float: the stored run was unreadable).
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    #: The version of this class's shape. Raise it when fields change, and give the class
    #: a static `upcast_v<N>_v<N+1>(data: dict) -> dict` for each step, so payloads stored
    #: in an older shape are upgraded when read (as eventsourcing upcasts).
    class_version: ClassVar[int] = 1

    # Set on every class (not inherited) so a subclass never borrows its parent's name.
    __coordination_type_name__: ClassVar[str | None] = None

    def __init_subclass__(cls, *, type_name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type_name is not None and (not isinstance(type_name, str) or not type_name.strip()):
            raise DefinitionError(
                f"{cls.__qualname__}: type_name must be a non-empty string, got {type_name!r}"
            )
        version = cls.__dict__.get("class_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise DefinitionError(
                f"{cls.__qualname__}: class_version must be a positive int (1, 2, ...), got "
                f"{version!r}; payloads written at any other version could not be read back"
            )
        cls.__coordination_type_name__ = type_name

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Called once pydantic has built the class completely: only whole classes are indexed.
        super().__pydantic_init_subclass__(**kwargs)
        if persistence_problem(cls) is None:
            _index(cls)


class Event(Message):
    """Something that happened; any number of handlers may react to it."""


class Command(Message):
    """A request for exactly one handler to act."""


def to_json(message: Message) -> str:
    """Write `message` as JSON text naming its type, so `from_json` can read it back.

    `MessageError` for a message it could not write (a str holding a lone surrogate).
    """
    if not isinstance(message, Message):
        raise MessageError(
            f"to_json() takes a coordination message (an Event or Command), "
            f"got {type(message).__name__}"
        )
    cls = type(message)
    head = cls.__dict__.get("__coordination_json_head__")
    if head is None:
        head = _json_head(cls)
    try:
        data = message.model_dump_json()
    except PydanticSerializationError as error:  # a str holding a lone surrogate, say
        raise MessageError(f"{cls.__qualname__} cannot be written as JSON: {error}") from error
    return f"{head}{data}}}"


def _json_head(cls: type[Message]) -> str:
    """What every JSON text of `cls` opens with, up to its data; kept on the class (in its
    own `__dict__`, so a subclass makes its own), as messages of a class are written often."""
    problem = persistence_problem(cls)
    if problem is not None:
        raise MessageError(problem)
    name = json.dumps(type_name_of(cls))
    if cls.class_version != 1:
        head = f'{{"type":{name},"version":{int(cls.class_version)},"data":'
    else:
        head = f'{{"type":{name},"data":'
    type.__setattr__(cls, "__coordination_json_head__", head)
    return head


def from_json(text: str | bytes, types: Iterable[type[Message]] = ()) -> Message:
    """Read a message written by `to_json`.

    The type name is looked up among `types`, then among the message classes defined in this
    process; nothing is ever imported. Any text, of any size or nesting, raises a
    `MessageError` or reads back a valid message: never another exception.
    """
    try:
        document = json.loads(text)
    except (ValueError, TypeError, RecursionError) as error:
        raise MalformedMessage(f"not a JSON message: {_describe(error)}") from error
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("type"), str)
        or not isinstance(document.get("data"), dict)
    ):
        raise MalformedMessage(
            'a JSON message is an object {"type": "<type name>", "data": {...}}; '
            f"got {_excerpt(text)}"
        )
    name: str = document["type"]
    cls = resolve_type_name(name, types)
    data = _upcast(cls, name, document.get("version", 1), document["data"])
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise MalformedMessage(
            f"stored data is not a valid {name}: {error.error_count()} problem(s)\n{error}"
        ) from error
    except RecursionError as error:  # a validator of the user's that recurses on deep data
        raise MalformedMessage(f"stored data for {name} is nested too deeply") from error


def _describe(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error)[:300]


def _excerpt(text: str | bytes) -> str:
    shown = text[:200] if isinstance(text, str | bytes) else text
    return repr(shown) + (" ..." if len(text) > 200 else "")


def _upcast(cls: type[Message], name: str, version: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Bring `data`, stored at `version`, up to `cls.class_version`, one step at a time."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MalformedMessage(f"{name}: stored version {version!r} is not a positive integer")
    current = cls.class_version
    if version > current:
        raise MalformedMessage(
            f"{name} was stored at version {version}, newer than this code's version "
            f"{current}; upgrade the code that reads it"
        )
    while version < current:
        upcast = getattr(cls, f"upcast_v{version}_v{version + 1}", None)
        if upcast is None:
            raise MalformedMessage(
                f"{name} was stored at version {version} and is now at {current}, but "
                f"{cls.__qualname__} has no upcast_v{version}_v{version + 1}(data) to upgrade it"
            )
        try:
            upcasted = upcast(dict(data))
        except Exception as error:  # the user's upcaster refusing old data is bad input
            raise MalformedMessage(
                f"{name}: upcast_v{version}_v{version + 1} could not upgrade the stored data: "
                f"{type(error).__name__}: {error}"
            ) from error
        if not isinstance(upcasted, dict):
            raise MalformedMessage(
                f"{name}: upcast_v{version}_v{version + 1} returned "
                f"{type(upcasted).__name__}, not a dict of fields"
            )
        data = upcasted
        version += 1
    return data


def resolve_type_name(name: str, types: Iterable[type[Message]] = ()) -> type[Message]:
    """The message class called `name`: one of `types`, else one defined in this process.

    Never imports: a stored name is data, and importing what it names would run code.
    """
    for candidate in types:
        if type_name_of(candidate) == name:
            return candidate
    found = _indexed(name)
    if found is not None:
        return found
    module_name, colon, _ = name.partition(":")
    shown = repr(name[:200])
    if colon and module_name:
        hint = (
            f"import the module that defines it ({module_name[:100]!r}) before reading, or "
            f"pass the class in types=...; if the class moved or was renamed, give it "
            f"type_name={shown}"
        )
    else:
        hint = "import the module that defines the class of that type_name, or pass it in types="
    raise UnknownMessageType(
        f"unknown message type {shown}: no message class of that name is defined in this "
        f"process (reading never imports); {hint}"
    )


M = TypeVar("M", bound=Message, covariant=True)
N = TypeVar("N", bound=Message)

# Ids are a random per-process prefix and a counter: unique across processes (the prefix
# is drawn again in a forked child) at a twentieth of the cost of uuid4(), which matters
# when every published message gets one.
_ids = itertools.count(1)
_prefix = os.urandom(8).hex()


def _reseed_ids() -> None:
    global _prefix, _ids
    _prefix = os.urandom(8).hex()
    _ids = itertools.count(1)


os.register_at_fork(after_in_child=_reseed_ids)


def new_id() -> str:
    """A fresh id for a message or a correlation, unique across processes."""
    return f"{_prefix}{next(_ids):012x}"


class Envelope(Generic[M]):
    """A message in transit: its ids and when it happened (immutable).

    `correlation_id` names one flow instance (for an orchestration, its `workflow_id`);
    `causation_id` is the `message_id` of the message that caused this one. Ids left out
    are generated; `occurred_at` defaults to now (UTC).

    Every published message gets one, so making one is kept cheap: an id left out is taken
    from the process's counter when the envelope is made (unique from then on) and
    formatted when first read; the time is captured as a float and turned into a
    `datetime` when first read.
    """

    __slots__ = ("_at", "_cause", "_correlation", "_id", "_message", "_occurred", "_origin")

    def __init__(
        self,
        message: M,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        message_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        # Read-only properties over private slots keep it immutable without a __setattr__
        # (which would make every envelope several times dearer to make).
        self._message = message
        self._cause = causation_id
        #: The id prefix of the process that made it (a forked child draws a new one).
        self._origin = _prefix
        self._correlation: str | int = correlation_id or next(_ids)
        self._id: str | int = message_id or next(_ids)
        self._occurred = occurred_at
        self._at = time.time() if occurred_at is None else occurred_at.timestamp()

    # Read by C (`attrgetter`), without a Python frame: the runners read these several
    # times per delivered message.
    message: M = property(operator.attrgetter("_message"))  # type: ignore[assignment]
    causation_id: str | None = property(operator.attrgetter("_cause"))  # type: ignore[assignment]

    @property
    def correlation_id(self) -> str:
        value = self._correlation
        if type(value) is int:
            value = self._correlation = f"{self._origin}{value:012x}"
        return value  # type: ignore[return-value]

    @property
    def message_id(self) -> str:
        value = self._id
        if type(value) is int:
            value = self._id = f"{self._origin}{value:012x}"
        return value  # type: ignore[return-value]

    @property
    def occurred_at(self) -> datetime:
        moment = self._occurred
        if moment is None:
            moment = self._occurred = datetime.fromtimestamp(self._at, UTC)
        return moment

    @property
    def timestamp(self) -> float:
        """When it happened, in seconds since the epoch (what the stores write)."""
        return self._at

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.message, self.correlation_id, self.causation_id, self.message_id,
            self.occurred_at,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Envelope):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.message_id, self.correlation_id))

    def __repr__(self) -> str:
        return (
            f"Envelope(message={self.message!r}, correlation_id={self.correlation_id!r}, "
            f"causation_id={self.causation_id!r}, message_id={self.message_id!r}, "
            f"occurred_at={self.occurred_at!r})"
        )

    @staticmethod
    def wrap(
        message: N,
        *,
        cause: Envelope[Message] | None = None,
        correlation_id: str | None = None,
    ) -> Envelope[N]:
        """Wrap `message`, continuing `cause`'s correlation when given."""
        if cause is not None:
            return Envelope(message, correlation_id or cause.correlation_id, cause.message_id)
        return Envelope(message, correlation_id)


#: How many values `envelope_fields` gives per envelope, and where its message id is.
ENVELOPE_WIDTH = 7
ENVELOPE_ID = 3


def envelope_fields(envelope: Envelope[Any]) -> tuple[Any, ...]:
    """What `envelope` holds, as a plain tuple (its message first, its ids formatted).

    An in-memory log keeps a run's envelopes as these, end to end in one list: one object
    for the garbage collector to walk per run instead of one per envelope (a run kept by
    the thousand with every message it published).
    """
    message_id, correlation_id = envelope.message_id, envelope.correlation_id
    return (
        envelope._message, correlation_id, envelope._cause, message_id, envelope._origin,
        envelope._occurred, envelope._at,
    )  # fmt: skip


def envelope_from_fields(fields: Sequence[Any]) -> Envelope[Any]:
    """The envelope `envelope_fields` gave `fields` of: equal to it, the same ids and time."""
    envelope: Envelope[Any] = Envelope.__new__(Envelope)
    (
        envelope._message, envelope._correlation, envelope._cause, envelope._id,
        envelope._origin, envelope._occurred, envelope._at,
    ) = fields  # fmt: skip
    return envelope
