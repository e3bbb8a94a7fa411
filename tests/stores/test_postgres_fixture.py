"""The PostgreSQL tests fail, never skip, when the server they are told about is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]

USES_THE_SERVER = """
def test_uses_it(postgres):
    postgres.store().list_runs()
"""


def _run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, url: str | None
) -> pytest.RunResult:
    pytester.makeconftest("from tests.postgres import postgres  # noqa: F401\n")
    pytester.makepyfile(test_uses=USES_THE_SERVER)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    if url is None:
        monkeypatch.delenv("COORDINATION_TEST_POSTGRES", raising=False)
    else:
        monkeypatch.setenv("COORDINATION_TEST_POSTGRES", url)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def test_a_named_server_that_cannot_be_reached_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot be reached*"])
    assert result.ret != 0


def test_without_a_named_server_the_tests_are_skipped(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(pytester, monkeypatch, None).assert_outcomes(skipped=1)
