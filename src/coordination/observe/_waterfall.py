"""The rich rendering of a timeline: a waterfall of attempts (needs rich, extra `cli`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from coordination.observe._timeline import Attempt, Timeline

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


def waterfall(timeline: Timeline) -> Table:
    """A table with one line per attempt and a bar placed by when it ran."""
    table = Table(
        title=f"{timeline.workflow_id}: {timeline.status.name}",
        caption=f"{timeline.total * 1000:.2f} ms" + "".join(f" · {n}" for n in timeline.notes),
    )
    table.add_column("step", no_wrap=True)
    table.add_column("attempt", justify="right")
    table.add_column("outcome")
    table.add_column("time", justify="right")
    table.add_column("waterfall", no_wrap=True, min_width=WIDTH)
    for row in timeline.rows:
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
                _bar(attempt, timeline.total),
            )
    return table
