"""The DESIGN.md example type-checks under `mypy --strict`, and wrong uses are caught.

mypy runs in-process with the project's configuration, its cache in a temporary directory
shared by the checks of this module (a cold run takes a few seconds).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"
TYPING = Path(__file__).resolve().parent / "typing"
EXAMPLE = TYPING / "design_example.py"
WRONG = TYPING / "design_example_wrong.py"

ERROR_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")
EXPECTED = re.compile(r"# expect-error: (?P<code>[a-z-]+)")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(path: Path, cache: Path) -> tuple[str, str, int]:
    stdout, stderr, status = api.run(
        ["--config-file", str(CONFIG), "--cache-dir", str(cache), "--strict", str(path)]
    )
    return stdout, stderr, status


def _errors(stdout: str) -> set[tuple[int, str]]:
    found = set()
    for line in stdout.splitlines():
        match = ERROR_LINE.match(line)
        if match:
            found.add((int(match["line"]), match["code"]))
    return found


def _expected(path: Path) -> set[tuple[int, str]]:
    expected = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECTED.search(line)
        if match:
            expected.add((number, match["code"]))
    return expected


def test_design_example_passes_mypy_strict(mypy_cache: Path) -> None:
    stdout, stderr, status = _mypy(EXAMPLE, mypy_cache)
    assert status == 0, stdout + stderr
    assert "Success: no issues found in 1 source file" in stdout


def test_wrong_uses_are_reported_by_mypy(mypy_cache: Path) -> None:
    expected = _expected(WRONG)
    assert len(expected) >= 4  # the negative file really has deliberate mistakes
    stdout, stderr, status = _mypy(WRONG, mypy_cache)
    assert status == 1, stdout + stderr
    assert _errors(stdout) == expected, stdout
    assert f"Found {len(expected)} errors in 1 file" in stdout


def test_error_parsing_reads_mypy_lines() -> None:
    line = 'x.py:12: error: Argument 1 to "charge" has incompatible type "str"  [arg-type]'
    assert _errors(f"{line}\nFound 1 error in 1 file") == {(12, "arg-type")}
    assert _errors("Success: no issues found in 1 source file") == set()


def test_design_example_runs() -> None:
    from tests.typing.design_example import FakePayments, PaymentCaptured, main

    output = main()
    assert isinstance(output, PaymentCaptured)
    assert output.order_id == "o-1"
    assert output.amount_cents == 1250
    assert isinstance(FakePayments(), FakePayments)
