"""Fuzzing as a test: hostile JSON, stored versions, stored rows and store files.

Four targets, each fed generated and mutated inputs by hypothesis:

1. `from_json` over documents built from scratch and mutations of the payloads the example
   flows really write (both runners): type names that name modules which run code when
   imported, nesting of any depth, huge and special numbers, wrong types, odd keys,
   invalid UTF-8 and other encodings.
2. Upcasting: payloads stored at hostile versions of classes whose upcasters misbehave, and
   classes declared with hostile `class_version`s.
3. Stored rows: a real SQLite store file with runs of both runners (finished, compensated,
   failed, interrupted), columns of some runs' rows corrupted with raw `sqlite3`, then read
   back through the public API and recovered: the healthy runs must still be resumed.
4. The store file itself: bit flips, truncation, zeroed or swapped pages, damaged WAL files
   and foreign schemas, then opened and read.

For every input: nothing escapes but a `coordination.errors` exception or pydantic's
`ValidationError`, no module is imported, no file appears in the working directory, and
the process does not exit (`tests.fuzzing.hostile`). `VOLUME` is how many inputs each test
tries: a few thousand in `make test`, over 100,000 in `make test-long`.
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from coordination import Event, from_json, to_json
from coordination.errors import CoordinationError, DefinitionError, MessageError, StoreError
from coordination.stores import SQLiteStore
from coordination.testing import VirtualClock
from examples.ecommerce import PlaceOrder
from tests import fuzzing
from tests.fuzzing import FUZZ_TYPES, Sandbox, hostile

#: Inputs per test: (`make test`, `make test-long`).
VOLUME: dict[str, tuple[int, int]] = {
    "from_json_mutated": (1_500, 60_000),
    "from_json_generated": (600, 15_000),
    "upcasting": (400, 15_000),
    "class_versions": (100, 1_000),
    "stored_rows": (100, 3_000),
    "store_file": (200, 6_000),
}
DEFAULT_TOTAL = sum(default for default, _ in VOLUME.values())
LONG_TOTAL = sum(long for _, long in VOLUME.values())

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def fuzz(
    name: str, long: bool, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]
) -> None:
    """Feed `VOLUME[name]` inputs drawn from `strategy` to `check`; at least that many ran."""
    examples = VOLUME[name][1 if long else 0]
    count = 0

    @settings(max_examples=examples, deadline=None, suppress_health_check=_HEALTH)
    @given(strategy)
    def one(value: Any) -> None:
        nonlocal count
        count += 1
        check(value)

    started = time.perf_counter()
    one()
    print(f"fuzz {name}: {count} inputs in {time.perf_counter() - started:.1f}s")
    assert count >= examples, f"{name}: only {count} of {examples} inputs ran"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    box = Sandbox(tmp_path_factory.mktemp("fuzz-cwd"))
    fuzzing.warm_up()
    for seed in fuzzing.seeds():  # warm up: whatever reading loads lazily is loaded now
        hostile(box, partial(from_json, seed, FUZZ_TYPES))
    return box


def test_the_volume_is_a_few_thousand_by_default_and_over_100k_long() -> None:
    assert 2_000 <= DEFAULT_TOTAL <= 10_000
    assert LONG_TOTAL >= 100_000


# -- 1. from_json ----------------------------------------------------------------------------


def _read(sandbox: Sandbox, text: Any) -> None:
    outcome = hostile(sandbox, lambda: from_json(text, FUZZ_TYPES))
    if outcome.error is not None:
        assert isinstance(outcome.error, MessageError), repr(outcome.error)
        return
    # What reads back is a message that writes back to the same thing, or that to_json
    # refuses (a str holding a lone surrogate), with a MessageError.
    try:
        text = to_json(outcome.value)
    except MessageError:
        return
    assert to_json(from_json(text, FUZZ_TYPES)) == text


def _mutated() -> st.SearchStrategy[Any]:
    return fuzzing.mutated(fuzzing.seeds())


def _generated() -> st.SearchStrategy[Any]:
    texts = st.one_of(
        fuzzing.documents(),
        fuzzing.fragments(),
        st.text(),
        st.binary(),
    )
    forms = texts.flatmap(
        lambda text: fuzzing.as_text_or_bytes(
            text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        )
    )
    odd = st.one_of(st.none(), st.integers(), st.lists(st.integers()), st.just(bytearray(b"{}")))
    return st.one_of(forms, odd)


def test_from_json_of_mutated_payloads(sandbox: Sandbox) -> None:
    fuzz("from_json_mutated", False, _mutated(), lambda text: _read(sandbox, text))


@pytest.mark.long
@pytest.mark.timeout(900)
def test_from_json_of_mutated_payloads_long(sandbox: Sandbox) -> None:
    fuzz("from_json_mutated", True, _mutated(), lambda text: _read(sandbox, text))


def test_from_json_of_generated_documents(sandbox: Sandbox) -> None:
    fuzz("from_json_generated", False, _generated(), lambda text: _read(sandbox, text))


@pytest.mark.long
@pytest.mark.timeout(900)
def test_from_json_of_generated_documents_long(sandbox: Sandbox) -> None:
    fuzz("from_json_generated", True, _generated(), lambda text: _read(sandbox, text))


# -- 2. upcasting -----------------------------------------------------------------------------

_VERSIONS = st.one_of(
    st.integers(min_value=-3, max_value=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, 2**63, 10**300, -(10**300)]),
    st.floats(),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
_VALUES = st.one_of(
    st.text(max_size=10),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)
_FIELDS = ["order_id", "carrier", "tracking", "code", "n", "amount", "payload", "nested", "x"]
_STORED = st.tuples(
    st.sampled_from([*FUZZ_TYPES, fuzzing.Shipped, fuzzing.Odd]),
    st.one_of(st.none(), _VERSIONS),  # None: no "version" member (version 1)
    st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=5),
)


def _upcast(sandbox: Sandbox, stored: tuple[Any, Any, dict[str, Any]]) -> None:
    cls, version, data = stored
    document: dict[str, Any] = {"type": cls.__coordination_type_name__, "data": data}
    if version is not None:
        document["version"] = version
    text = json.dumps(document)
    outcome = hostile(sandbox, lambda: from_json(text, FUZZ_TYPES))
    effective = 1 if version is None else version
    valid = isinstance(effective, int) and not isinstance(effective, bool)
    if outcome.error is not None:
        assert isinstance(outcome.error, MessageError), repr(outcome.error)
        if not valid or effective < 1 or effective > cls.class_version:
            assert "version" in str(outcome.error)
        return
    assert valid, f"read at version {version!r}"
    assert 1 <= effective <= cls.class_version, f"read at version {version!r}"
    message = outcome.value
    assert type(message) is cls
    if cls is fuzzing.Shipped:  # the upcasters' meaning holds for what they accepted
        if effective < 2:
            assert message.carrier == "unknown"
        if effective < 3:
            assert message.tracking == data["code"]
    if cls is fuzzing.Odd:  # its upcasters all refuse: only current payloads read
        assert effective == cls.class_version


def test_upcasting_hostile_stored_versions(sandbox: Sandbox) -> None:
    fuzz("upcasting", False, _STORED, lambda stored: _upcast(sandbox, stored))


@pytest.mark.long
@pytest.mark.timeout(900)
def test_upcasting_hostile_stored_versions_long(sandbox: Sandbox) -> None:
    fuzz("upcasting", True, _STORED, lambda stored: _upcast(sandbox, stored))


def _declare(sandbox: Sandbox, declared: tuple[Any, Any]) -> None:
    version, type_name = declared
    namespace = {"__annotations__": {"n": "int"}, "class_version": version, "n": 0}

    def declare() -> type[Event]:
        return types.new_class(
            "Declared", (Event,), {"type_name": type_name}, lambda ns: ns.update(namespace)
        )

    outcome = hostile(sandbox, declare)
    good_version = isinstance(version, int) and not isinstance(version, bool) and version >= 1
    good_name = isinstance(type_name, str) and bool(type_name.strip())
    if outcome.error is not None:
        assert isinstance(outcome.error, DefinitionError), repr(outcome.error)
        assert not (good_version and good_name)
        return
    assert good_version, f"declared with class_version={version!r}"
    assert good_name, f"declared with type_name={type_name!r}"
    cls = outcome.value
    written = to_json(cls(n=7))
    assert from_json(written, [cls]) == cls(n=7)  # what is written reads back
    newer = json.dumps({"type": type_name, "version": version + 1, "data": {"n": 1}})
    with pytest.raises(MessageError, match="newer than this code"):
        from_json(newer, [cls])


_DECLARED = st.tuples(
    st.one_of(
        st.integers(min_value=-2, max_value=5),
        st.sampled_from([2**63, 10**100]),
        st.floats(),
        st.booleans(),
        st.text(max_size=3),
        st.none(),
        st.just([2]),
    ),
    st.one_of(st.just("fuzz.Declared"), st.text(max_size=4), st.integers(), st.just(b"x")),
)


def test_class_versions_and_type_names_declared(sandbox: Sandbox) -> None:
    fuzz("class_versions", False, _DECLARED, lambda declared: _declare(sandbox, declared))


@pytest.mark.long
def test_class_versions_and_type_names_declared_long(sandbox: Sandbox) -> None:
    fuzz("class_versions", True, _DECLARED, lambda declared: _declare(sandbox, declared))


# -- 3. stored rows --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox) -> Path:
    path = fuzzing.build_template(tmp_path_factory.mktemp("fuzz-template") / "runs.db")
    # Warm up: everything reading and recovering a file loads lazily is loaded now.
    scratch = tmp_path_factory.mktemp("fuzz-warm-up")
    _read_and_recover(sandbox, fuzzing.copy_of(path, scratch, "warm.db"), [])
    return path


#: The runs corrupted: every one but the healthy ones, the owed (unfinished) ones twice, as
#: recovery resumes them.
TARGETS = [run for run in fuzzing.RUNS if run not in fuzzing.HEALTHY]
TARGETS += [run for run in TARGETS if "cut" in run]


def _reads(sandbox: Sandbox, store: Any, flows: list[Any]) -> None:
    """The public reads of the store and both runners; only typed errors may escape."""
    orchestrator, choreography = flows
    calls: list[Callable[[], Any]] = [
        store.list_runs,
        lambda: store.owed_runs(orchestrator.name),
        lambda: store.owed_runs(choreography.name),
        store.dead_letters,
        orchestrator.runs,
        choreography.processes,
    ]
    for run in fuzzing.RUNS:
        if run.startswith("w-"):  # each runner reads its own runs (get_run, then checks)
            calls.append(partial(orchestrator.get, run))
        else:
            calls += [
                partial(choreography.monitor.get, run),
                partial(store.events_of, run),
                partial(store.handled_of, run),
            ]
    for call in calls:
        hostile(sandbox, call)


def _collect(
    problems: list[tuple[str, BaseException]],
) -> Callable[[str, BaseException], None]:
    def report(workflow_id: str, error: BaseException) -> None:
        problems.append((workflow_id, error))

    return report


def _read_and_recover(sandbox: Sandbox, path: Path, done: list[str]) -> None:
    """Open the damaged file, read everything, recover both runners: the healthy runs must
    be resumed to their end whatever was done to the others, and every run recovery left
    alone reported with a typed error."""
    opened = hostile(sandbox, lambda: SQLiteStore(path))
    assert opened.error is None, f"{done}: opening refused: {opened.error!r}"
    store = opened.value
    try:
        flows: list[Any] = [
            PlaceOrder(*fuzzing.shop(), store=store, clock=VirtualClock()),
            fuzzing.durable_choreography(store, fuzzing.shop()),
        ]
        _reads(sandbox, store, flows)
        problems: list[tuple[str, BaseException]] = []
        for flow in flows:
            recovered = hostile(sandbox, partial(flow.recover, on_problem=_collect(problems)))
            assert recovered.error is None, f"{done}: recover() raised {recovered.error!r}"
        for workflow_id, error in problems:
            assert isinstance(workflow_id, str)
            assert isinstance(error, CoordinationError | ValidationError), repr(error)
        for healthy in fuzzing.HEALTHY:
            record = store.get_run(healthy)
            assert record is not None, f"{done}: healthy run {healthy} is gone"
            assert record.status.finished, (
                f"{done}: healthy run {healthy} was not resumed: {record.status}; "
                f"problems: {problems}"
            )
        hostile(sandbox, store.list_runs)  # and what recovery left reads as before
    finally:
        store.close()


def _stored_rows(sandbox: Sandbox, template: Path, scratch: Path, damage: list[Any]) -> None:
    path = fuzzing.copy_of(template, scratch, "runs.db")
    try:
        done = [fuzzing.corrupt(path, one, fuzzing.HEALTHY) for one in damage]
        _read_and_recover(sandbox, path, done)
    finally:
        fuzzing.remove(path)


def test_stored_rows_corrupted(
    sandbox: Sandbox, template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    scratch = tmp_path_factory.mktemp("fuzz-rows")
    fuzz(
        "stored_rows",
        False,
        fuzzing.corruptions(TARGETS),
        lambda damage: _stored_rows(sandbox, template, scratch, damage),
    )


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_stored_rows_corrupted_long(
    sandbox: Sandbox, template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    scratch = tmp_path_factory.mktemp("fuzz-rows")
    fuzz(
        "stored_rows",
        True,
        fuzzing.corruptions(TARGETS),
        lambda damage: _stored_rows(sandbox, template, scratch, damage),
    )


# -- 4. the store file itself --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources(template: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The store file, the store with a pending WAL or a hot journal, and foreign files."""
    return [template, *fuzzing.build_foreign(tmp_path_factory.mktemp("fuzz-foreign"), template)]


def _store_file(sandbox: Sandbox, source: Path, scratch: Path, changes: list[Any]) -> None:
    path = fuzzing.copy_with_wal(source, scratch, "damaged.db")
    try:
        for change in changes:
            fuzzing.damage(path, change)
        only_store_errors = (StoreError,)
        opened = hostile(sandbox, lambda: SQLiteStore(path), allowed=only_store_errors)
        if opened.error is not None:
            return
        store = opened.value
        try:
            reads: list[Callable[[], Any]] = [
                store.list_runs,
                lambda: store.owed_runs(fuzzing.ORCHESTRATED),
                store.dead_letters,
            ]
            for run in fuzzing.RUNS:
                reads += [
                    partial(store.get_run, run),
                    partial(store.events_of, run),
                    partial(store.handled_of, run),
                ]
            for read in reads:
                hostile(sandbox, read, allowed=only_store_errors)
            flows: list[Any] = []
            for make in (
                lambda: PlaceOrder(*fuzzing.shop(), store=store, clock=VirtualClock()),
                lambda: fuzzing.durable_choreography(store, fuzzing.shop()),
            ):
                made = hostile(sandbox, make)
                if made.error is None:
                    flows.append(made.value)
            for flow in flows:
                hostile(sandbox, partial(flow.recover, on_problem=_collect([])))
        finally:
            store.close()
    finally:
        fuzzing.remove(path)


def _files(sources: list[Path]) -> st.SearchStrategy[Any]:
    """The store itself half the time (as it is, with a WAL or a hot journal), else any."""
    stores = [path for path in sources if path.stem in ("runs", "pending-wal", "hot-journal")]
    return st.tuples(
        st.one_of(st.sampled_from(stores), st.sampled_from(sources)), fuzzing.damages()
    )


def test_store_file_damaged(
    sandbox: Sandbox, sources: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    scratch = tmp_path_factory.mktemp("fuzz-file")
    fuzz(
        "store_file",
        False,
        _files(sources),
        lambda case: _store_file(sandbox, case[0], scratch, case[1]),
    )


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_store_file_damaged_long(
    sandbox: Sandbox, sources: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    scratch = tmp_path_factory.mktemp("fuzz-file")
    fuzz(
        "store_file",
        True,
        _files(sources),
        lambda case: _store_file(sandbox, case[0], scratch, case[1]),
    )


def test_a_directory_where_the_store_file_should_be(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "runs.db").mkdir()
    opened = hostile(sandbox, lambda: SQLiteStore(tmp_path / "runs.db"), allowed=(StoreError,))
    assert isinstance(opened.error, StoreError)
