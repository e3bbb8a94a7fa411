"""coordination: run one business flow as orchestration or as choreography.

The names here are the core both runners share: messages, participants and their actions,
retry policy, statuses, the journal. The runners live in `coordination.orchestration` and
`coordination.choreography`; errors in `coordination.errors`; stores in
`coordination.stores`; test helpers in `coordination.testing`.
"""

import logging

from coordination._clock import Clock, SystemClock
from coordination._context import Context
from coordination._journal import EntryKind, Journal, JournalEntry
from coordination._messages import Command, Envelope, Event, Message, from_json, to_json
from coordination._participants import Action, Compensation, Participant, action
from coordination._retry import Retry
from coordination._status import WorkflowStatus
from coordination.errors import NonRetryable

__all__ = [
    "Action",
    "Clock",
    "Command",
    "Compensation",
    "Context",
    "EntryKind",
    "Envelope",
    "Event",
    "Journal",
    "JournalEntry",
    "Message",
    "NonRetryable",
    "Participant",
    "Retry",
    "SystemClock",
    "WorkflowStatus",
    "action",
    "from_json",
    "to_json",
]

__version__ = "0.1.0"

# A library leaves logging output to the application (the standard-library convention).
logging.getLogger("coordination").addHandler(logging.NullHandler())
