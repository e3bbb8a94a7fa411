"""Reading never imports: a type name read from a payload or a store never runs code.

A stored name used to be imported before it was checked, so `{"type": "venv.__main__:X"}`
in a run's start column made `recover()` run `python -m venv` and exit the process.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordination import from_json
from coordination.errors import CoordinationError, UnknownMessageType
from coordination.stores import SQLiteStore
from tests.orchestration.flows import FakeAlpha, Single, Start

EVIL = "coordination_evil_module_xyz"


@pytest.fixture
def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable module whose import leaves a marker file: a side effect to look for."""
    marker = tmp_path / "imported.marker"
    (tmp_path / f"{EVIL}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from coordination import Event\n"
        "class X(Event):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, EVIL, raising=False)
    yield marker
    sys.modules.pop(EVIL, None)  # a test that imported it on purpose leaves nothing behind


@pytest.mark.parametrize("name", [f"{EVIL}:X", f"{EVIL}.sub:X", f"{EVIL}:os.system"])
def test_from_json_never_imports_the_module_a_name_names(evil_module: Path, name: str) -> None:
    with pytest.raises(UnknownMessageType, match="reading never imports"):
        from_json(json.dumps({"type": name, "data": {}}))
    assert not evil_module.exists()
    assert EVIL not in sys.modules


def test_a_class_already_defined_in_the_process_is_read(evil_module: Path) -> None:
    __import__(EVIL)  # the reader imports what it reads, as it imports what handles it
    evil_module.unlink()
    message = from_json(json.dumps({"type": f"{EVIL}:X", "data": {}}))
    assert type(message).__name__ == "X"
    assert not evil_module.exists()  # found in the index, not imported again


def _poison_start(path: Path, type_name: str) -> None:
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "UPDATE runs SET start = ?, status = 'running', owner = NULL",
            (json.dumps({"type": type_name, "data": {}}),),
        )
    connection.close()


def test_recover_never_imports_a_stored_start_message(tmp_path: Path, evil_module: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    Single(FakeAlpha(), store=store).run(Start(n=1), workflow_id="wf-1")
    store.close()
    _poison_start(path, f"{EVIL}:X")

    store = SQLiteStore(path)
    orchestrator = Single(FakeAlpha(), store=store)
    refusal = None
    try:
        orchestrator.recover()
    except CoordinationError as error:
        refusal = str(error)
    finally:
        store.close()
    assert refusal is None or "reading never imports" in refusal
    assert not evil_module.exists()
    assert EVIL not in sys.modules


def test_recover_of_a_venv_main_payload_runs_nothing(tmp_path: Path) -> None:
    """The payload that once ran `python -m venv` in the working directory."""
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    Single(FakeAlpha(), store=store).run(Start(n=1), workflow_id="wf-1")
    store.close()
    _poison_start(path, "venv.__main__:X")
    work = tmp_path / "cwd"
    work.mkdir()
    script = textwrap.dedent(
        f"""
        import sys
        from coordination.errors import CoordinationError
        from coordination.stores import SQLiteStore
        from tests.orchestration.flows import FakeAlpha, Single
        store = SQLiteStore({str(path)!r})
        try:
            Single(FakeAlpha(), store=store).recover()
        except CoordinationError as error:
            print("refused:", type(error).__name__)
        print("venv imported:", "venv.__main__" in sys.modules or "venv" in sys.modules)
        print("finished")
        """
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work,
        env={"PYTHONPATH": f"{root}{':' + str(root / 'src')}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "venv imported: False" in done.stdout
    assert "finished" in done.stdout
    assert list(work.iterdir()) == []  # no pyvenv.cfg, no bin/
