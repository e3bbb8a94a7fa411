"""The rich rendering of a timeline: a waterfall of attempts (needs rich, extra `cli`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from coordination.observe._rows import Attempt, TimelineRow

__all__ = ["waterfall"]

WIDTH = 30
_STYLES = {
    "completed": "green",
    "failed": "red",
    "compensated": "yellow",
    "compensation_failed": "bold magenta",
    "running": "cyan",
}


def _bar(attempt: Attempt, total: float) -> Text:
    scale = WIDTH / total if total > 0 else 0.0
    offset = min(WIDTH - 1, int(attempt.start * scale))
    length = max(1, int((attempt.duration or 0.0) * scale))
    length = min(length, WIDTH - offset)
    bar = Text(" " * offset)
    bar.append("█" * length, style=_STYLES.get(attempt.outcome, "white"))
    if attempt.late is not None:
        bar.append(" ↩ late", style="dim")
    return bar


def waterfall(title: str, caption: str, rows: Sequence[TimelineRow], total: float) -> Table:
    """A table with one line per attempt and a bar placed by when it ran (`total`: the
    run's length in seconds, the bars' full width)."""
    table = Table(title=title, caption=caption)
    table.add_column("step", no_wrap=True)
    table.add_column("attempt", justify="right")
    table.add_column("outcome")
    table.add_column("time", justify="right")
    table.add_column("waterfall", no_wrap=True, min_width=WIDTH)
    for row in rows:
        name = Text(f"undo {row.name}" if row.undoes else row.name)
        if not row.attempts:
            table.add_row(name, "", ", ".join(row.notes), "", "")
        for position, attempt in enumerate(row.attempts):
            outcome = Text(attempt.outcome, style=_STYLES.get(attempt.outcome, ""))
            if attempt.error:
                outcome.append(f" {attempt.error.split(':', 1)[0]}", style="dim")
            if attempt.retried_after:
                outcome.append(f", retried {attempt.retried_after}", style="dim")
            duration = attempt.duration
            table.add_row(
                name if position == 0 else "",
                str(attempt.number),
                outcome,
                "-" if duration is None else f"{duration * 1000:.2f} ms",
                _bar(attempt, total),
            )
    return table
