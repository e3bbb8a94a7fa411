"""What a choreography adds to a saga's writes: the envelopes it publishes (the outbox).

An orchestrated saga publishes nothing; a choreography's saga is given a `Publishing` (its
`Outbox`), so the one saga writes each envelope in the same commit as the fact that
produced it, whichever runner drives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from coordination._messages import Envelope, Message
from coordination.engine._plan import PlannedAction, PlannedWait
from coordination.engine._undo import Undo

__all__ = ["Publishing"]


class Publishing(Protocol):
    """What a choreography adds to the saga's writes: the envelopes it publishes.

    The saga writes them in the same commit as the fact that produced them (the outbox) and
    hands them back through `committed()` once that commit succeeded, to be delivered.
    """

    def outputs(
        self, action: PlannedAction, output: Any, causes: tuple[str | None, ...]
    ) -> tuple[Envelope[Message], ...]:
        """Envelopes for what `action` produced; pure (ids derived from the causes)."""
        ...

    def failure(
        self, action: PlannedAction, error: str, attempts: int, cause: str | None
    ) -> tuple[Envelope[Message], ...]: ...

    def undone(self, undo: Undo, output: Any) -> tuple[Envelope[Message], ...]: ...

    def arrived(self, planned: PlannedWait, message: Message) -> Envelope[Message]:
        """The envelope an outside message goes out in (its id derived: idempotent)."""
        ...

    def handled(
        self, action: PlannedAction, causes: tuple[str | None, ...]
    ) -> tuple[tuple[str, str], ...]: ...

    def committed(self, envelopes: Sequence[Envelope[Message]]) -> None: ...
