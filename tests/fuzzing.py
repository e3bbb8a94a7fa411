"""Helpers of tests/test_fuzz.py: hostile inputs, mutators, a seeded store file, the checks.

Everything here builds inputs a hostile user or a bad disk could hand the library: JSON
fragments (deep nesting, huge numbers, NaN, lone surrogates, names of modules that run code
when imported), mutations of valid payloads (bit flips, invalid UTF-8, other encodings,
replaced values and keys), values for corrupting a column of a stored row, and damage to a
whole SQLite file. `hostile()` runs one call on such input and checks the contract: nothing
escapes but `coordination.errors` or pydantic's `ValidationError`, no module is imported,
no file appears in the working directory, and the process does not exit.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import math
import os
import random
import shutil
import socket
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import strategies as st
from pydantic import ValidationError, field_validator

from coordination import Command, Event, Message, to_json
from coordination import errors as coordination_errors
from coordination.choreography import Choreography, EventBus
from coordination.errors import CoordinationError
from coordination.stores import MemoryStore, SQLiteStore
from coordination.testing import VirtualClock
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    OrderPlaced,
    PlaceOrder,
)

T = TypeVar("T")

#: What may escape a call on hostile input: the library's typed errors, pydantic's refusal.
ALLOWED = (CoordinationError, ValidationError)

#: Type names a payload may carry to make a careless reader import (and so run) code.
HOSTILE_NAMES = (
    ".x:Y",
    "..:Y",
    ":",
    "::",
    ":Y",
    "x:",
    "x",
    "",
    " ",
    "\x00",
    "venv.__main__:X",
    "venv:EnvBuilder",
    "idlelib.__main__:X",
    "idlelib.idle:X",
    "antigravity:X",
    "this:X",
    "turtledemo.__main__:X",
    "os:system",
    "os.path:join",
    "builtins:eval",
    "builtins:object",
    "builtins:int",
    "subprocess:Popen",
    "pickle:loads",
    "ctypes:CDLL",
    "webbrowser:open",
    "http.server:test",
    "pdb:set_trace",
    "code:interact",
    "sys:exit",
    "__main__:X",
    "coordination:Message",
    "coordination._messages:Message",
    "coordination._messages:Event",
    "coordination._messages:Command",
    "coordination.errors:StoreError",
    "pydantic:BaseModel",
    "examples.ecommerce:OrderPlaced",
    "examples.ecommerce.messages:OrderPlaced",
    "ecommerce.OrderPlaced",
    "ecommerce.PaymentCaptured",
    "ecommerce.ConfirmationSent",
    "fuzz.Bag",
    "fuzz.Shipped",
    "fuzz.Odd",
    "fuzz.Checked",
    "fuzz.Order",
    "ecommerce.OrderPlaced ",
    "ECOMMERCE.ORDERPLACED",
    "ecommerce.OrderPlaced\x00",
    "a.b.c.d.e.f.g:H.I.J",
    "tests.test_fuzz:X",
    "tests.fuzzing:Bag",
    "tests.fuzzing:hostile",
    "tests.orchestration.flows:Start",
    "\ud800:X",
)

#: Invalid or surprising UTF-8 sequences (lone continuation bytes, overlong forms, encoded
#: surrogates, code points past U+10FFFF, a byte order mark, NUL).
BAD_UTF8 = (
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc3",
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xef\xbb\xbf",
    b"\x00",
)

# -- messages to read back -------------------------------------------------------------------


class Bag(Event, type_name="fuzz.Bag"):
    """Fields of every shape a payload may nest into, including itself."""

    payload: Any = None
    items: list[int] = []
    mapping: dict[str, float] = {}
    nested: Bag | None = None
    label: str = ""


class Shipped(Event, type_name="fuzz.Shipped"):
    """Version 3: `carrier` added in 2, `tracking` renamed from `code` in 3."""

    class_version = 3
    order_id: str
    carrier: str
    tracking: str

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "carrier": "unknown"}

    @staticmethod
    def upcast_v2_v3(data: dict[str, Any]) -> dict[str, Any]:
        data["tracking"] = data.pop("code")  # KeyError on data without it: the user's bug
        return data


class Odd(Event, type_name="fuzz.Odd"):
    """Upcasters that misbehave at each step: a list, a RecursionError, None, then none."""

    class_version = 5
    n: int = 0

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> Any:
        return list(data)

    @staticmethod
    def upcast_v2_v3(data: dict[str, Any]) -> dict[str, Any]:
        # As one that recursed would (recursing for real here would leave the interpreter's
        # own hooks, run at that depth, failing in turn).
        raise RecursionError("maximum recursion depth exceeded")

    @staticmethod
    def upcast_v3_v4(data: dict[str, Any]) -> Any:
        return None


class Checked(Command, type_name="fuzz.Checked"):
    """A validator that refuses some values (pydantic turns its ValueError into a refusal)."""

    amount: int

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("amount must be positive")
        return value


FUZZ_TYPES: tuple[type[Message], ...] = (Bag, Shipped, Odd, Checked)

# -- raw JSON fragments ------------------------------------------------------------------------

_CLOSERS = {"[": "]", '{"a":': "}", '[{"a":': "}]", '{"data":': "}"}

_LITERALS = (
    "null", "true", "false", "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999",
    "-0", "0", "1.0", "0x10", "01", "+1", ".5", "1.", "--1", "[", "{", '"', "]", "}", "",
    '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"\\uZZZZ"', '""', "[]", "{}", "[[]]",
    '{"":0}', "9223372036854775808", "-9223372036854775809", "18446744073709551616",
    "1e309", "4.9e-325",
)  # fmt: skip


def _deep(depth: int, opener: str, leaf: str) -> str:
    return opener * depth + leaf + _CLOSERS[opener] * depth


def _pairs(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"


@cache
def scalar_fragments() -> st.SearchStrategy[str]:
    """JSON scalars, valid or not: the leaves of every hostile document."""
    return st.one_of(
        st.sampled_from(_LITERALS),
        st.sampled_from([4_299, 4_300, 4_301, 10_000]).map(lambda n: "1" * n),  # str digit limit
        st.integers(min_value=300, max_value=400).map(lambda n: "1" * n + ".5"),
        st.integers().map(str),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.integers(min_value=4_200, max_value=5_000).map(lambda n: "9" * n),
        st.floats().map(json.dumps),
        st.text(max_size=20).map(json.dumps),
        st.text(max_size=20).map(lambda s: json.dumps(s, ensure_ascii=False)),
        type_names().map(json.dumps),
    )


@cache
def fragments() -> st.SearchStrategy[str]:
    """Raw JSON text for one value: scalars, small documents, and nesting of any depth."""
    scalars = scalar_fragments()
    keys = st.one_of(
        st.text(max_size=8).map(json.dumps),
        st.sampled_from(["__class__", "__dict__", "model_config", "type", "data", "version"]).map(
            json.dumps
        ),
        st.sampled_from(["1", "null", "[]", "{}", "true"]),  # keys that are not strings
    )
    documents = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
            st.lists(st.tuples(keys, inner), max_size=4).map(_pairs),
        ),
        max_leaves=12,
    )
    depths = st.one_of(
        st.integers(min_value=1, max_value=100_000),
        st.sampled_from([200, 500, 800, 900, 950, 990, 1_000, 1_010, 1_500, 3_000, 50_000]),
    )
    deep = st.builds(_deep, depths, st.sampled_from(sorted(_CLOSERS)), scalars)
    return st.one_of(documents, deep)


@cache
def type_names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE_NAMES),
        st.integers(min_value=1_000, max_value=100_000).map(lambda n: "x" * n),
        st.text(max_size=30),
        st.from_regex(r"[a-z_.]{0,12}:[A-Za-z_.]{0,12}", fullmatch=True),
    )


@st.composite
def documents(draw: st.DrawFn) -> str:
    """Message-shaped documents built from scratch: a name, a version, data, extra members."""
    pairs: list[tuple[str, str]] = []
    if draw(st.integers(0, 9)):
        pairs.append(('"type"', draw(st.one_of(type_names().map(json.dumps), fragments()))))
    if draw(st.integers(0, 9)):
        fields = st.lists(st.tuples(st.text(max_size=8).map(json.dumps), fragments()), max_size=4)
        pairs.append(('"data"', draw(st.one_of(fields.map(_pairs), fragments()))))
    if draw(st.booleans()):
        pairs.append(('"version"', draw(st.one_of(st.integers(-3, 8).map(str), fragments()))))
    extras = st.tuples(st.text(max_size=8).map(json.dumps), fragments())
    pairs += draw(st.lists(extras, max_size=2))
    return _pairs(draw(st.permutations(pairs)))


# -- mutating valid payloads -------------------------------------------------------------------
#
# Mutations are driven by a `random.Random` seeded from one drawn integer: two hypothesis
# draws per input instead of dozens, so a hundred thousand inputs take minutes, not hours;
# the input itself is printed when a check fails.

_PLACEHOLDER = "\x00fuzz-placeholder\x00"
_PLACEHOLDER_JSON = json.dumps(_PLACEHOLDER)
_KEYS = ("type", "data", "version", "", "__class__", "model_config", "\x00", "order_id")


def random_fragment(rng: random.Random, depth: int = 0) -> str:
    """Raw JSON text for one value, valid or not, like `fragments()` draws."""
    choice = rng.randrange(12 if depth < 3 else 8)
    if choice == 0:
        return rng.choice(_LITERALS)
    if choice == 1:
        return str(rng.randint(-(2**70), 2**70))
    if choice == 2:
        return rng.choice(["1", "9", "-1"]) * rng.choice([4_299, 4_300, 4_301, 20_000])
    if choice == 3:
        return json.dumps(rng.choice([1e308, -0.0, 5e-324, float("inf"), float("nan")]))
    if choice == 4:
        return json.dumps(rng.choice(HOSTILE_NAMES))
    if choice == 5:
        return json.dumps(_random_text(rng), ensure_ascii=rng.random() < 0.5)
    if choice == 6:
        return "x" * rng.choice([1_000, 100_000])  # not JSON at all
    if choice == 7:
        opener = rng.choice(sorted(_CLOSERS))
        depth_ = rng.choice([10, 500, 900, 990, 1_000, 1_010, 5_000, 100_000])
        return _deep(depth_, opener, rng.choice(_LITERALS[:8]))
    if choice in (8, 9):
        members = [random_fragment(rng, depth + 1) for _ in range(rng.randrange(4))]
        return "[" + ",".join(members) + "]"
    pairs = [
        (json.dumps(rng.choice(_KEYS)) if rng.random() < 0.8 else rng.choice(["1", "null"]),
         random_fragment(rng, depth + 1))
        for _ in range(rng.randrange(4))
    ]  # fmt: skip
    return _pairs(pairs)


def _random_text(rng: random.Random) -> str:
    alphabet = 'ab:._\x00\u00e9\u2028\U0001f600\ud800\udfff\\"'
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))


def _places(document: Any, depth: int = 0) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) of a parsed document, down to a small depth."""
    if depth > 4:
        return
    if isinstance(document, dict):
        for key, value in document.items():
            yield document, key
            yield from _places(value, depth + 1)
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield document, index
            yield from _places(value, depth + 1)


def _structural(rng: random.Random, raw: bytes) -> bytes:
    """Replace, remove, add or rename one member of the parsed payload, or wrap it."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return _byte_level(rng, raw)
    places = [(None, None), *_places(document)]
    container, key = rng.choice(places)
    action = rng.choice(["replace", "replace", "remove", "add", "rename", "wrap"])
    fragment = random_fragment(rng)
    if container is None:
        return b"[" + raw + b"]" if action == "wrap" else fragment.encode("utf-8", "surrogatepass")
    if action in ("replace", "wrap"):
        container[key] = _PLACEHOLDER
    elif action == "remove":
        del container[key]
        fragment = ""
    elif isinstance(container, dict):
        new_key = rng.choice(_KEYS) if rng.random() < 0.7 else _random_text(rng)
        if action == "rename":
            container[new_key] = container.pop(key)
            fragment = ""
        else:
            container[new_key] = _PLACEHOLDER
    else:
        container.insert(key, _PLACEHOLDER)
    text = json.dumps(document).replace(_PLACEHOLDER_JSON, fragment or "null")
    return text.encode("utf-8", "surrogatepass")


def _byte_level(rng: random.Random, raw: bytes) -> bytes:
    """Flip, set, delete, insert, duplicate or truncate bytes, or change the encoding."""
    size = len(raw)
    position = rng.randrange(size) if size else 0
    length = rng.randrange(size - position + 1)
    operation = rng.randrange(8)
    if operation == 0 and size:
        return (
            raw[:position] + bytes([raw[position] ^ (1 << rng.randrange(8))]) + raw[position + 1 :]
        )
    if operation == 1 and size:
        return raw[:position] + bytes([rng.randrange(256)]) + raw[position + 1 :]
    if operation == 2:
        return raw[:position] + raw[position + length :]
    if operation == 3:
        return raw[:position] + rng.randbytes(rng.randint(1, 16)) + raw[position:]
    if operation == 4:
        return raw[:position] + rng.choice(BAD_UTF8) + raw[position:]
    if operation == 5:
        return raw[:position] + raw[position : position + length] * 2 + raw[position + length :]
    if operation == 6:
        return raw[:position]
    encoding = rng.choice(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
    return raw.decode("utf-8", "replace").encode(encoding)


def mutate(rng: random.Random, raw: bytes) -> bytes:
    """`raw` mutated one to four times, structurally or byte by byte."""
    mode = rng.random()  # structural only (reaches validation), mixed, or bytes only
    structural = 1.0 if mode < 0.5 else 0.6 if mode < 0.8 else 0.0
    for _ in range(rng.randint(1, 4)):
        raw = (_structural if rng.random() < structural else _byte_level)(rng, raw)
    return raw


def as_form(raw: bytes, form: int) -> str | bytes:
    """`raw` as bytes, as text (where it decodes), holding lone surrogates, or as latin-1."""
    form %= 4
    if form == 0:
        return raw
    if form == 1:
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw
    if form == 2:
        return raw.decode("utf-8", "surrogateescape")
    return raw.decode("latin-1")


def mutated(seeds: Sequence[str]) -> st.SearchStrategy[str | bytes]:
    """Valid payloads from `seeds`, each mutated one to four times, as text or bytes."""

    def build(seed: str, state: int) -> str | bytes:
        rng = random.Random(state)
        return as_form(mutate(rng, seed.encode()), rng.randrange(4))

    return st.builds(build, st.sampled_from(seeds), st.integers(min_value=0, max_value=2**64))


def as_text_or_bytes(raw: bytes) -> st.SearchStrategy[str | bytes]:
    return st.integers(min_value=0, max_value=3).map(lambda form: as_form(raw, form))


# -- seeds: valid payloads of the example flows ------------------------------------------------


def shop(couriers: int = 20) -> tuple[Any, ...]:
    """The e-commerce example's four services, with stock and couriers to spare."""
    return (
        InMemoryPayments({"c1": 10_000_000}),
        InMemoryLogistics(f"courier-{index}" for index in range(couriers)),
        InMemorySellers({"sku-1": 1_000}),
        InMemoryNotifications(),
    )


def order(order_id: str, quantity: int = 1) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id="c1",
        email="a@b.c",
        sku="sku-1",
        quantity=quantity,
        amount_cents=1_000,
        address="1 Road",
    )


@cache
def seeds() -> tuple[str, ...]:
    """Every message the example flows write when they run (both runners), plus the fuzz
    classes' payloads at each of their versions."""
    texts: list[str] = []
    store = MemoryStore()
    flow = PlaceOrder(*shop(), store=store, clock=VirtualClock())
    for index, quantity in enumerate((1, 2_000)):  # one completes, one is compensated
        run = flow.run(order(f"o{index}", quantity), workflow_id=f"w{index}")
        texts.append(to_json(run.input))
        texts.extend(_outputs(step.output for step in run.steps))
    events = MemoryStore()
    clock = VirtualClock()
    choreography = Choreography(EventBus(clock=clock), *shop(), clock=clock, store=events)
    for index, quantity in enumerate((1, 2_000)):
        choreography.publish(order(f"c{index}", quantity), correlation_id=f"c{index}")
        texts.extend(to_json(envelope.message) for envelope in events.events_of(f"c{index}"))
    texts += [
        to_json(Bag(payload={"a": [1, 2.5, None]}, items=[1, 2], mapping={"x": 1.5}, label="b")),
        to_json(Bag(nested=Bag(nested=Bag(label="deep")))),
        to_json(Shipped(order_id="o1", carrier="dhl", tracking="T1")),
        '{"type":"fuzz.Shipped","data":{"order_id":"o1","code":"T1"}}',
        '{"type":"fuzz.Shipped","version":2,"data":{"order_id":"o1","carrier":"ups","code":"T"}}',
        to_json(Odd(n=3)),
        '{"type":"fuzz.Odd","version":1,"data":{"n":1}}',
        '{"type":"fuzz.Odd","version":4,"data":{"n":1}}',
        to_json(Checked(amount=5)),
    ]
    return tuple(dict.fromkeys(texts))


def _outputs(outputs: Any) -> list[str]:
    texts: list[str] = []
    for output in outputs:
        if isinstance(output, Message):
            texts.append(to_json(output))
        elif isinstance(output, tuple):
            texts.extend(to_json(member) for member in output)
    return texts


# -- the contract checked on every input ---------------------------------------------------


@dataclass
class Outcome:
    """What one hostile call did: its value, or the allowed error it raised."""

    value: Any = None
    error: BaseException | None = None


class Sandbox:
    """An empty working directory for hostile calls, and the modules loaded before them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        before = os.getcwd()
        os.chdir(self.directory)
        try:
            yield
        finally:
            os.chdir(before)


#: The codecs `json.loads` picks for bytes by their first bytes (RFC 4627's detection): it
#: loads their modules lazily, so they are loaded before the snapshot of `sys.modules`.
JSON_CODECS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-16-le", "utf-32", "utf-32-be",
               "utf-32-le")  # fmt: skip


def warm_up() -> None:
    """Load what reading loads lazily on first use (the codecs `json.loads` may pick)."""
    for codec in JSON_CODECS:
        codecs.lookup(codec)


class _Escapes(logging.Handler):
    """Errors that escaped the library's own bus handlers (the choreography's reactions),
    which the bus catches and logs: each must be typed, as if it had reached the caller."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.untyped: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        arguments = record.args if isinstance(record.args, tuple) else ()
        if not str(record.msg).startswith("handler ") or len(arguments) < 4:
            return
        handler, error = str(arguments[0]), str(arguments[3])
        kind = error.partition(":")[0]
        if handler.startswith("coordination.") and kind not in _TYPED:
            self.untyped.append(f"{handler}: {error[:300]}")


_TYPED = frozenset([*coordination_errors.__all__, "ValidationError"])


def hostile(
    sandbox: Sandbox, call: Callable[[], T], *, allowed: tuple[type[BaseException], ...] = ALLOWED
) -> Outcome:
    """Run `call` on hostile input and check the contract; its value or its allowed error.

    An exception of any other type propagates (hypothesis shrinks and reports it); a module
    imported, a file created in the working directory, an attempt to exit, or an untyped
    error caught and logged by the bus around one of the library's own handlers fails the
    test.
    """
    modules = set(sys.modules)
    outcome = Outcome()
    escapes = _Escapes()
    bus = logging.getLogger("coordination.bus")
    bus.addHandler(escapes)
    try:
        with sandbox.inside():
            try:
                outcome.value = call()
            except allowed as error:
                outcome.error = error
            except SystemExit as error:  # pragma: no cover - only on a regression
                raise AssertionError(
                    f"a hostile input made the process exit ({error!r})"
                ) from error
    finally:
        bus.removeHandler(escapes)
    assert not escapes.untyped, f"untyped errors escaped the library's handlers: {escapes.untyped}"
    imported = sorted(set(sys.modules) - modules)
    assert not imported, f"a hostile input imported {imported}"
    left = sorted(os.listdir(sandbox.directory))
    assert not left, f"a hostile input created {left} in the working directory"
    return outcome


# -- a store file with runs of both runners ------------------------------------------------

ORCHESTRATED = "place-order"
#: Runs in the template file: the healthy ones are never corrupted, and must be resumed.
HEALTHY = ("w-healthy", "c-healthy")
RUNS = ("w-done", "w-undone", "w-cut", "w-cut-undoing", "w-stuck", *HEALTHY[:1],
        "c-done", "c-undone", "c-cut", "c-cut-undoing", HEALTHY[1])  # fmt: skip


def durable_choreography(store: SQLiteStore | MemoryStore, parts: tuple[Any, ...]) -> Choreography:
    clock = VirtualClock()
    return Choreography(EventBus(clock=clock), *parts, clock=clock, store=store)


def build_template(path: Path) -> Path:
    """A store file holding finished, compensated, failed and interrupted runs of the
    example flow under both runners (interrupted ones as a Ctrl-C leaves them: released)."""
    with SQLiteStore(path) as store:
        parts = shop()
        flow = PlaceOrder(*parts, store=store, clock=VirtualClock())
        flow.run(order("o1"), workflow_id="w-done")
        flow.run(order("o2", 5_000), workflow_id="w-undone")
        parts[3].fail("send_confirmation", KeyboardInterrupt())
        with contextlib.suppress(KeyboardInterrupt):
            flow.run(order("o3"), workflow_id="w-cut")
        parts[0].fail("refund", KeyboardInterrupt())
        with contextlib.suppress(KeyboardInterrupt):
            flow.run(order("o4", 5_000), workflow_id="w-cut-undoing")
        parts[0].fail("refund", *(RuntimeError("refunds are down") for _ in range(10)))
        flow.run(order("o5", 5_000), workflow_id="w-stuck")  # COMPENSATION_FAILED
        parts[3].fail("send_confirmation", KeyboardInterrupt())
        with contextlib.suppress(KeyboardInterrupt):
            flow.run(order("o6"), workflow_id="w-healthy")

        parts = shop()
        choreography = durable_choreography(store, parts)
        choreography.publish(order("p1"), correlation_id="c-done")
        choreography.publish(order("p2", 5_000), correlation_id="c-undone")
        parts[3].fail("send_confirmation", KeyboardInterrupt())
        with contextlib.suppress(KeyboardInterrupt):
            choreography.publish(order("p3"), correlation_id="c-cut")
        parts[0].fail("refund", KeyboardInterrupt())
        with contextlib.suppress(KeyboardInterrupt):
            choreography.publish(order("p4", 5_000), correlation_id="c-cut-undoing")
        parts[2].fail("reserve_stock", KeyboardInterrupt())
        with contextlib.suppress(KeyboardInterrupt):
            choreography.publish(order("p6"), correlation_id="c-healthy")
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{path}{suffix}").exists(), "the template must be one whole file"
    return path


def copy_of(template: Path, directory: Path, name: str) -> Path:
    """A fresh copy of the template file to damage."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{target}{suffix}")
    shutil.copyfile(template, target)
    return target


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(f"{path}{suffix}")
    if path.is_dir():
        shutil.rmtree(path)


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, as a hostile user (or a bad script) would open the file."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.text_factory = _text_or_bytes
    return connection


def _text_or_bytes(data: bytes) -> str | bytes:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


# -- corrupting stored rows ------------------------------------------------------------------

#: Per table: its primary key and the columns a corruption may change. Columns that point a
#: row at another run (`workflow_id` of steps, events and inbox) are left alone, so the
#: damage stays with the runs it was done to.
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "runs": (
        ("workflow_id",),
        ("workflow_id", "flow", "start", "status", "owner", "token", "lease_expires", "owed",
         "created_at", "updated_at", "finished_at", "output", "error", "compensation_error",
         "recoveries", "recovery_step", "shape", "parked_reason"),
    ),
    "steps": (
        ("workflow_id", "key"),
        ("key", "seq", "outcome", "attempts", "output", "error", "rows"),
    ),
    "events": (
        ("message_id",),
        ("message_id", "seq", "causation_id", "occurred_at", "message"),
    ),
    "inbox": (
        ("message_id", "subscriber"),
        ("message_id", "subscriber", "handled", "deliveries", "dead", "error", "dead_at"),
    ),
}  # fmt: skip

_STATUSES = ("running", "compensating", "completed", "compensated", "compensation_failed",
             "cancelled", "parked", "waiting", "RUNNING", "")  # fmt: skip
_OUTCOMES = ("completed", "failed", "skipped", "compensated", "compensation_failed", "late",
             "noted", "")  # fmt: skip


@dataclass(frozen=True)
class Invalid:
    """Text that is not UTF-8, stored as TEXT (as a flipped bit in a text cell leaves it)."""

    data: bytes


@dataclass(frozen=True)
class Mutate:
    """Write what is there, mutated by a `random.Random(seed)` (see `mutate`)."""

    seed: int


@dataclass(frozen=True)
class Corruption:
    """One change a hostile user or a bad disk makes to the rows of one run."""

    run: str
    table: str  # a key of TABLES, "shapes" (its flow shape) or "delete" (one of its rows)
    row: int  # which of the run's rows of that table (modulo how many it has)
    column: str  # which column (for "delete": which table)
    value: Any  # what to write, or a `Mutate` of what is there


def owners() -> list[str]:
    """Owner ids that look alive, dead, foreign or malformed to this process."""
    from coordination.engine import process_owner

    host = socket.gethostname()
    me = process_owner()
    return [
        me, f"{host}:1:k1", f"{host}:{os.getpid()}:t0", f"{host}:999999999:k1",
        f"{host}:{'9' * 5000}:t1", f"{host}:{2**40}:t1", f"{host}:\u00b2:t1", f"{host}:0:t1",
        f"{host}:-1:t1", f"{host}::", f"{host}:{os.getpid()}", "other-host:1:k1", host, ":", "",
    ]  # fmt: skip


_FLOWS = ("place-order", "choreography:OrderPlaced", "other-flow", "")
_KEYS_OF_STEPS = (
    "Payments.charge", "Payments.charge:undo", "Sellers.reserve_stock",
    "Logistics.assign_courier", "Notifications.send_confirmation", "Payments.charge:late1",
    "Payments.charge:late1:undo", "recovered:2", "",
)  # fmt: skip
_ERRORS = (
    '{"type": "StepFailed", "message": "x", "step": "Payments.charge", "attempts": 1}',
    '{"type": "CompensationFailed", "message": "x", "step": 1, "attempts": "1"}',
    '{"type": "StepFailed", "message": 1}',
    '{"message": "x", "attempts": true}',
    "[]",
    "null",
)
_TIMES = (0.0, -1.0, 1e308, -1e308, math.inf, -math.inf, 1.7e9, 1e20, 2**63 - 1, "1700000000",
          "now")  # fmt: skip
#: What each column means, for the values worth trying in it.
_KINDS = {
    "start": "message", "output": "message", "message": "message",
    "error": "error", "compensation_error": "error", "rows": "json",
    "status": "status", "outcome": "outcome", "owner": "owner",
    "token": "integer", "owed": "integer", "recoveries": "integer", "attempts": "integer",
    "seq": "integer", "handled": "integer", "deliveries": "integer", "dead": "integer",
    "lease_expires": "time", "created_at": "time", "updated_at": "time",
    "finished_at": "time", "occurred_at": "time", "dead_at": "time",
    "flow": "flow", "key": "key",
}  # fmt: skip


@cache
def _values(kind: str) -> st.SearchStrategy[Any]:
    mutations = st.builds(Mutate, st.integers(min_value=0, max_value=2**32))
    generic = st.one_of(
        st.none(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(),
        st.text(max_size=20),
        st.binary(max_size=24),
        st.sampled_from(BAD_UTF8).map(lambda data: Invalid(b"running" + data)),
        st.builds(lambda n: "x" * n, st.sampled_from([1_000, 300_000])),
        mutations,
    )
    integers = st.sampled_from([0, 1, -1, 2, 3, 99, 2**31, 2**53 + 1, 2**63 - 1, -(2**63)])
    specific = {
        "message": st.one_of(mutations, st.sampled_from(seeds())),
        "error": st.one_of(mutations, st.sampled_from(_ERRORS)),
        "json": mutations,
        "status": st.sampled_from(_STATUSES),
        "outcome": st.sampled_from(_OUTCOMES),
        "owner": st.sampled_from(owners()),
        "integer": st.one_of(integers, st.sampled_from([1.5, 1e300, float("inf"), "1", "x"])),
        "time": st.sampled_from(_TIMES),
        "flow": st.sampled_from(_FLOWS),
        "key": st.sampled_from(_KEYS_OF_STEPS),
        "text": st.sampled_from(HOSTILE_NAMES),
    }[kind]
    return st.one_of(specific, specific, generic)


def corruptions(targets: Sequence[str]) -> st.SearchStrategy[list[Corruption]]:
    """One to three corruptions of the runs named in `targets`, each a column of one of
    their rows (with values that mean something there, and any others), their flow's
    shape, or one of their rows deleted."""
    places = [(table, column) for table, (_, columns) in TABLES.items() for column in columns]
    places += [("runs", column) for column in TABLES["runs"][1]] * 2  # what recovery reads
    places += [("shapes", "shape")] * 3
    places += [("delete", "steps"), ("delete", "events"), ("delete", "inbox")]

    def at(place: tuple[str, str]) -> st.SearchStrategy[Corruption]:
        table, column = place
        kind = "json" if table == "shapes" else _KINDS.get(column, "text")
        return st.builds(
            Corruption,
            st.sampled_from(targets),
            st.just(table),
            st.integers(min_value=0, max_value=20),
            st.just(column),
            _values(kind),
        )

    return st.lists(st.sampled_from(places).flatmap(at), min_size=1, max_size=3)


def corrupt(path: Path, corruption: Corruption, protected: Sequence[str]) -> str:
    """Apply one corruption with plain sqlite3; what it did, in words (for failure output)."""
    connection = raw(path)
    try:
        return _corrupt(connection, corruption, protected)
    except sqlite3.IntegrityError as error:  # NOT NULL, a duplicate key: nothing changed
        return f"{corruption} refused by SQLite ({error})"
    finally:
        connection.close()


def _corrupt(
    connection: sqlite3.Connection, corruption: Corruption, protected: Sequence[str]
) -> str:
    run, table = corruption.run, corruption.table
    if table == "shapes":
        shape = connection.execute(
            "SELECT s.shape FROM runs r JOIN shapes s ON s.id = r.shape WHERE r.workflow_id = ?",
            (run,),
        ).fetchone()
        value = _value(corruption.value, shape[0] if shape else "[]")
        slot, parameter = _bound(value)
        connection.execute(
            f"INSERT OR REPLACE INTO shapes (id, shape) VALUES ('fuzz', {slot})", (parameter,)
        )
        connection.execute("UPDATE runs SET shape = 'fuzz' WHERE workflow_id = ?", (run,))
        return f"run {run}: shape {value!r:.200}"
    if table == "delete":
        name = corruption.column
        keys = _keys(connection, name, run)
        if not keys:
            return f"run {run}: no {name} rows to delete"
        key = keys[corruption.row % len(keys)]
        where, parameters = _where(TABLES[name][0], key)
        connection.execute(f"DELETE FROM {name} WHERE {where}", parameters)
        return f"run {run}: deleted {name} row {key!r:.200}"
    key_columns, _ = TABLES[table]
    keys = _keys(connection, table, run)
    if not keys:
        return f"run {run}: no {table} rows"
    key = keys[corruption.row % len(keys)]
    column = corruption.column
    where, parameters = _where(key_columns, key)
    (current,) = connection.execute(
        f"SELECT {column} FROM {table} WHERE {where}", parameters
    ).fetchone()
    value = _value(corruption.value, current)
    if isinstance(value, str) and value in protected:
        return f"run {run}: left alone (would name a protected run)"
    slot, parameter = _bound(value)
    connection.execute(
        f"UPDATE {table} SET {column} = {slot} WHERE {where}", (parameter, *parameters)
    )
    return f"run {run}: {table}.{column} of {key!r:.100} = {value!r:.200}"


def _bound(value: Any) -> tuple[str, Any]:
    """The SQL slot and parameter that store `value` (non-UTF-8 text as TEXT, not a BLOB)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:  # lone surrogates: stored as the bytes they would be
            value = Invalid(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, Invalid):
        return "CAST(? AS TEXT)", value.data
    return "?", value


def _where(columns: Sequence[str], key: Sequence[Any]) -> tuple[str, list[Any]]:
    """A WHERE clause matching `key`, whether a bytes value was a BLOB or non-UTF-8 TEXT."""
    clauses: list[str] = []
    parameters: list[Any] = []
    for name, value in zip(columns, key, strict=True):
        if isinstance(value, bytes):
            clauses.append(f"({name} = ? OR {name} = CAST(? AS TEXT))")
            parameters += [value, value]
        else:
            clauses.append(f"{name} = ?")
            parameters.append(value)
    return " AND ".join(clauses), parameters


def _keys(connection: sqlite3.Connection, table: str, run: str) -> list[tuple[Any, ...]]:
    key_columns = ", ".join(TABLES[table][0])
    return connection.execute(
        f"SELECT {key_columns} FROM {table} WHERE workflow_id = ? ORDER BY {key_columns}", (run,)
    ).fetchall()


def _value(value: Any, current: Any) -> Any:
    """The value to write: `value`, or for a `Mutate` a mutation of `current`'s text."""
    if isinstance(value, Mutate):
        rng = random.Random(value.seed)
        if isinstance(current, bytes):
            data = current
        else:
            text = current if isinstance(current, str) else json.dumps(current)
            data = text.encode("utf-8", "surrogatepass")
        mutated = mutate(rng, data)[:300_000]  # hostile enough; bigger only reads slower
        try:
            return mutated.decode()
        except UnicodeDecodeError:
            return Invalid(mutated)
    return value


# -- damaging the store file itself ------------------------------------------------------------

PAGE = 4096


@dataclass(frozen=True)
class Damage:
    """One change to the bytes of the store file (or of its WAL, `wal=True`)."""

    operation: str  # flip, set, truncate, zero-page, copy-page, append
    position: int  # a byte offset, or a page number (modulo the file's size)
    value: int  # the bit, the byte, or the other page
    wal: bool = False


def damages() -> st.SearchStrategy[list[Damage]]:
    positions = st.one_of(
        st.integers(min_value=0, max_value=99),  # the header: page size, counts, encoding
        st.integers(min_value=0, max_value=2**20),
        st.builds(
            lambda page, offset: page * PAGE + offset, st.integers(0, 40), st.integers(0, 12)
        ),
    )
    one = st.builds(
        Damage,
        st.sampled_from(["flip", "flip", "set", "truncate", "zero-page", "copy-page", "append"]),
        positions,
        st.integers(min_value=0, max_value=255),
        st.booleans(),
    )
    return st.lists(one, max_size=4)


def damage(path: Path, change: Damage) -> None:
    """Apply `change` to the file at `path` (or to its WAL), in place."""
    target = Path(f"{path}-wal") if change.wal else path
    try:
        data = bytearray(target.read_bytes())
    except (FileNotFoundError, IsADirectoryError):
        return
    size = len(data)
    operation = change.operation
    if operation == "append":
        data += random.Random(change.value).randbytes(change.value + 1)
    elif not size:
        return
    elif operation == "flip":
        data[change.position % size] ^= 1 << (change.value % 8)
    elif operation == "set":
        data[change.position % size] = change.value
    elif operation == "truncate":
        del data[change.position % size :]
    else:
        pages = max(size // PAGE, 1)
        page = (change.position % pages) * PAGE
        if operation == "zero-page":
            data[page : page + PAGE] = bytes(len(data[page : page + PAGE]))
        else:  # copy-page: another page's bytes over this one
            other = (change.value % pages) * PAGE
            data[page : page + PAGE] = data[other : other + PAGE]
    target.write_bytes(bytes(data))


#: Files that are not (or not quite) a coordination store: name -> SQL building it, or raw
#: bytes. Each must be refused with a StoreError, or opened and read with nothing else.
FOREIGN_SQL: dict[str, str] = {
    "other-app": "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
    "meta-shape": "CREATE TABLE coordination_meta (k TEXT, v TEXT, w TEXT)",
    "meta-app": "CREATE TABLE coordination_meta (key TEXT, value TEXT);"
    "INSERT INTO coordination_meta VALUES ('application', 'other'), ('schema', '2')",
    "meta-empty": "CREATE TABLE coordination_meta (key TEXT, value TEXT)",
    "meta-null": "CREATE TABLE coordination_meta (key, value);"
    "INSERT INTO coordination_meta VALUES ('application', 'coordination'), ('schema', NULL)",
    "meta-int": "CREATE TABLE coordination_meta (key, value);"
    "INSERT INTO coordination_meta VALUES ('application', 'coordination'), ('schema', 2)",
    "meta-blob": "CREATE TABLE coordination_meta (key, value);"
    "INSERT INTO coordination_meta VALUES ('application', X'ff'), ('schema', X'32')",
    "meta-view": "CREATE VIEW coordination_meta AS SELECT 'application' AS key, 'x' AS value",
    "only-views": "CREATE VIEW runs AS SELECT 1 AS workflow_id",
}
#: Schema versions a coordination_meta table may claim (`²` and `٢` are digits to isdigit).
SCHEMA_VALUES = ("v2", "3", "1", "0", "", " 2", "2 ", "02", "+2", "-1", "2.0", "²", "٢",
                 "9" * 5000, "\x00")  # fmt: skip
FOREIGN_BYTES: dict[str, bytes] = {
    "empty": b"",
    "text": b"hello, not a database\n",
    "header-only": b"SQLite format 3\x00",
    "zeros": bytes(PAGE),
    "random": random.Random(7).randbytes(3 * PAGE),
}


def build_foreign(directory: Path, template: Path) -> list[Path]:
    """The foreign files of FOREIGN_SQL, SCHEMA_VALUES and FOREIGN_BYTES, and stores whose
    tables were changed (dropped, reshaped, with triggers that refuse every write)."""
    directory.mkdir(parents=True, exist_ok=True)
    built: list[Path] = []
    for name, sql in FOREIGN_SQL.items():
        built.append(_sqlite_file(directory / f"{name}.db", sql))
    for index, version in enumerate(SCHEMA_VALUES):
        path = shutil.copyfile(template, directory / f"schema-{index}.db")
        connection = raw(Path(path))
        connection.execute(
            "UPDATE coordination_meta SET value = ? WHERE key = 'schema'", (version,)
        )
        connection.close()
        built.append(Path(path))
    for name, data in FOREIGN_BYTES.items():
        path = directory / f"{name}.db"
        path.write_bytes(data)
        built.append(path)
    changes = {
        "no-runs": "DROP TABLE runs",
        "no-steps": "DROP TABLE steps",
        "no-events": "DROP TABLE events",
        "no-shapes": "DROP TABLE shapes",
        "runs-reshaped": "ALTER TABLE runs DROP COLUMN parked_reason",
        "no-owed-index": "DROP INDEX runs_owed",
        "refusing": "CREATE TRIGGER refuse BEFORE UPDATE ON runs BEGIN "
        "SELECT RAISE(ABORT, 'refused'); END",
        "refusing-steps": "CREATE TRIGGER refuse BEFORE INSERT ON steps BEGIN "
        "SELECT RAISE(FAIL, 'refused'); END",
    }
    for name, sql in changes.items():
        path = Path(shutil.copyfile(template, directory / f"{name}.db"))
        connection = raw(path)
        connection.executescript(sql)
        connection.close()
        built.append(path)
    built.append(_with_pending_wal(template, directory / "pending-wal.db"))
    built.append(_with_hot_journal(template, directory / "hot-journal.db"))
    return built


def _sqlite_file(path: Path, sql: str) -> Path:
    connection = raw(path)
    connection.executescript(sql)
    connection.close()
    return path


def _with_pending_wal(template: Path, target: Path) -> Path:
    """A copy of the store as a killed process leaves it: commits still in the WAL."""
    work = target.with_suffix(".work")
    shutil.copyfile(template, work)
    connection = raw(work)
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    connection.execute("UPDATE runs SET parked_reason = 'pending' WHERE workflow_id = 'w-cut'")
    connection.execute("DELETE FROM steps WHERE workflow_id = 'c-cut' AND key LIKE 'Logistics%'")
    shutil.copyfile(work, target)
    shutil.copyfile(f"{work}-wal", f"{target}-wal")
    connection.close()
    remove(work)
    return target


def _with_hot_journal(template: Path, target: Path) -> Path:
    """A copy in rollback-journal mode with a hot journal (a transaction killed half-way)."""
    work = target.with_suffix(".work")
    shutil.copyfile(template, work)
    connection = raw(work)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.execute("PRAGMA cache_size = 1")  # spill: the file changes before COMMIT
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("UPDATE steps SET rows = rows || rows")
    shutil.copyfile(work, target)
    if Path(f"{work}-journal").exists():
        shutil.copyfile(f"{work}-journal", f"{target}-journal")
    connection.execute("ROLLBACK")
    connection.close()
    remove(work)
    return target


def copy_with_wal(source: Path, directory: Path, name: str) -> Path:
    """`copy_of` that also copies the source's -wal and -journal files, if any."""
    target = copy_of(source, directory, name)
    for suffix in ("-wal", "-journal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
    return target
