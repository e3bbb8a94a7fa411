"""Choreography: participants react to events on a bus; nobody holds the sequence."""

from coordination.choreography._bus import EventBus
from coordination.choreography._choreography import Choreography
from coordination.choreography._events import ActionFailed, HandlerFailed
from coordination.choreography._monitor import ProcessMonitor, ProcessView
from coordination.engine import wait

__all__ = [
    "ActionFailed",
    "Choreography",
    "EventBus",
    "HandlerFailed",
    "ProcessMonitor",
    "ProcessView",
    "wait",
]
