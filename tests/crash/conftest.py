"""What the crash tests tell the terminal: how many kill points a sweep tried."""

from __future__ import annotations

from collections.abc import Callable

import pytest

_LINES = pytest.StashKey[list[str]]()


@pytest.fixture
def sweep_report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Report a line: printed (seen with -s) and repeated in the terminal summary."""
    lines = request.config.stash.setdefault(_LINES, [])

    def report(line: str) -> None:
        print(line)
        lines.append(line)

    return report


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_LINES, [])
    if lines:
        terminalreporter.section("crash sweep")
        for line in lines:
            terminalreporter.write_line(line)
