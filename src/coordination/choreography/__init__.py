"""Choreography: participants react to events on a bus; nobody holds the sequence."""

from coordination.choreography._bus import EventBus
from coordination.choreography._events import ActionFailed, HandlerFailed

__all__ = ["ActionFailed", "EventBus", "HandlerFailed"]
