"""The events the choreography itself publishes, so subscribers can see failures happen."""

from __future__ import annotations

from coordination._messages import Event

__all__ = ["ActionFailed", "HandlerFailed"]


class HandlerFailed(Event, type_name="coordination.HandlerFailed"):
    """A subscriber raised while handling a message; the other subscribers still got it.

    A failure inside a `HandlerFailed` subscriber is logged, never published again.
    """

    handler: str
    message_type: str
    message_id: str
    correlation_id: str
    error: str


class ActionFailed(Event, type_name="coordination.ActionFailed"):
    """A participant's action failed after all its attempts: its flow instance compensates."""

    correlation_id: str
    action: str
    attempts: int
    error: str
