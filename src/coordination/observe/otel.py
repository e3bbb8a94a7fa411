"""OpenTelemetry tracing for flow instances (extra `otel`): `SpanObserver(tracer_provider)`.

One trace per flow instance, its id derived from the correlation id, so every process that
works on an instance puts its spans into the same trace without passing anything along.
Each action attempt and each compensation attempt is one span, made when its journal entry
says it ended, with the start and end times the journal recorded; each late result,
skipped action, wait and recovery is a span of no length (`late`, `skip`, `wait`,
`recover`). No span is ever held open, across a wait or otherwise. Every span hangs under
one parent derived from the correlation id (a remote parent, as if the conversation had
been propagated to each process) and links to the span of what caused it: the action whose
output it consumed, or, for an undo, the action it undoes. Names and attributes follow
OpenTelemetry's messaging conventions (`messaging.message.conversation_id` is the
correlation id).

OpenTelemetry is imported when a `SpanObserver` is made, so `import coordination.observe.otel`
works without the extra; making one without it raises `UsageError` saying what to install.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coordination._journal import EntryKind, JournalEntry
from coordination.errors import UsageError

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext, TracerProvider

__all__ = ["SpanObserver", "conversation_span_id", "trace_id_for"]

#: Entries that end one attempt (of an action, or of a compensation when `undoes` is set).
_ENDS = {
    EntryKind.COMPLETED,
    EntryKind.FAILED,
    EntryKind.COMPENSATED,
    EntryKind.COMPENSATION_FAILED,
}
_FAILURES = {EntryKind.FAILED, EntryKind.COMPENSATION_FAILED}
#: Entries that are moments of the instance, not attempts: each a span of its own, made
#: when it is recorded (`late`: a timed-out attempt's result; `skip`: an action a business
#: outcome left out; `wait`: a suspension for a message or a timer; `recover`: a takeover).
_MOMENTS = {
    EntryKind.LATE_RESULT: "late",
    EntryKind.SKIPPED: "skip",
    EntryKind.WAITING: "wait",
    EntryKind.RECOVERED: "recover",
}

#: Instances whose links are remembered at once; the oldest are forgotten first (an
#: instance that finished long ago gets no new spans but a late undo's).
_REMEMBERED = 10_000


def _digest(correlation_id: str) -> bytes:
    return hashlib.sha256(f"coordination:{correlation_id}".encode()).digest()


def trace_id_for(correlation_id: str) -> int:
    """The trace id of a flow instance: the same in every process, derived from its id."""
    return int.from_bytes(_digest(correlation_id)[:16], "big") or 1


def conversation_span_id(correlation_id: str) -> int:
    """The span id of the remote parent every span of the instance hangs under."""
    return int.from_bytes(_digest(correlation_id)[16:24], "big") or 1


@dataclass(slots=True)
class _Instance:
    """What one instance's later spans need: when attempts started, what to link to."""

    started: dict[tuple[str, int], float] = field(default_factory=dict)
    #: The latest span of each `Participant.action` (forward or undo).
    latest: dict[str, SpanContext] = field(default_factory=dict)
    #: Choreography: message id -> the span of the attempt that published it.
    published: dict[str, SpanContext] = field(default_factory=dict)
    #: The latest span of each participant (what its next publish came from).
    by_participant: dict[str, SpanContext] = field(default_factory=dict)


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class SpanObserver:
    """An observer that turns each attempt and compensation into an OpenTelemetry span.

    Pass `observers=[SpanObserver(provider)]` to an `Orchestrator` or a `Choreography`;
    `provider` is an OpenTelemetry `TracerProvider` (the SDK's, configured with the
    exporter of your choice). Both runners give the same span tree for the same run.
    """

    def __init__(self, tracer_provider: TracerProvider) -> None:
        try:
            from opentelemetry import trace
        except ModuleNotFoundError as error:  # pragma: no cover - the dev install has it
            raise UsageError(
                "SpanObserver needs OpenTelemetry: pip install 'coordination[otel]'"
            ) from error
        if not isinstance(tracer_provider, trace.TracerProvider):
            raise UsageError(
                f"SpanObserver(tracer_provider) takes an OpenTelemetry TracerProvider, "
                f"got {tracer_provider!r}"
            )
        self._trace: Any = trace
        self._tracer = tracer_provider.get_tracer("coordination")
        self._instances: OrderedDict[str, _Instance] = OrderedDict()
        self._lock = threading.Lock()

    def _instance(self, correlation_id: str) -> _Instance:
        instance = self._instances.get(correlation_id)
        if instance is None:
            instance = self._instances[correlation_id] = _Instance()
            if len(self._instances) > _REMEMBERED:
                self._instances.popitem(last=False)
        else:
            self._instances.move_to_end(correlation_id)
        return instance

    def __call__(self, entry: JournalEntry) -> None:
        with self._lock:
            instance = self._instance(entry.correlation_id)
            if entry.kind is EntryKind.STARTED:
                instance.started[(entry.name, entry.attempt)] = entry.at
            elif entry.kind is EntryKind.PUBLISHED:
                source = instance.by_participant.get(entry.participant)
                if source is not None and entry.detail:
                    instance.published[entry.detail] = source
            elif entry.kind in _ENDS:
                self._span(instance, entry)
            elif entry.kind in _MOMENTS:
                self._span(instance, entry, _MOMENTS[entry.kind])
            elif entry.kind is EntryKind.WORKFLOW_FINISHED:
                # Late results may still come; they would only need the links, kept here.
                instance.started.clear()

    def _cause(self, instance: _Instance, entry: JournalEntry) -> SpanContext | None:
        if entry.undoes:
            return instance.latest.get(entry.undoes)
        if entry.causation_id is None:
            return None
        # Orchestration names the causing action; a choreography, the message it consumed.
        return instance.latest.get(entry.causation_id) or instance.published.get(entry.causation_id)

    def _span(self, instance: _Instance, entry: JournalEntry, moment: str | None = None) -> None:
        trace = self._trace
        started = entry.at  # a moment: no length (a wait's duration is its timer's)
        if moment is None:
            # Not seen started: in another process, or before this observer existed.
            started = instance.started.pop(
                (entry.name, entry.attempt), entry.at - (entry.duration or 0.0)
            )
        parent = trace.NonRecordingSpan(
            trace.SpanContext(
                trace_id=trace_id_for(entry.correlation_id),
                span_id=conversation_span_id(entry.correlation_id),
                is_remote=True,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
        )
        operation = moment or ("compensate" if entry.undoes else "process")
        attributes: dict[str, str | int] = {
            "messaging.system": "coordination",
            "messaging.operation.type": "process",
            "messaging.operation.name": operation,
            "messaging.destination.name": entry.name,
            "messaging.message.conversation_id": entry.correlation_id,
            "coordination.participant": entry.participant,
            "coordination.action": entry.action,
            "coordination.attempt": entry.attempt,
            "coordination.outcome": entry.kind.value,
        }
        if entry.undoes:
            attributes["coordination.undoes"] = entry.undoes
        if entry.causation_id:
            attributes["coordination.causation_id"] = entry.causation_id
        if entry.detail and moment:
            attributes["coordination.detail"] = entry.detail
        # A late result links to the attempt it came back from; other moments to their cause.
        cause = (
            instance.latest.get(entry.name) if moment == "late" else self._cause(instance, entry)
        )
        links = [trace.Link(cause)] if cause is not None else []
        span = self._tracer.start_span(
            f"{operation} {entry.name}",
            context=trace.set_span_in_context(parent),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
            start_time=_ns(started),
        )
        if entry.kind in _FAILURES:
            error = entry.error or entry.kind.value
            span.set_attribute("error.type", error.split(":", 1)[0])
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        span.end(end_time=_ns(entry.at))
        if moment is not None:
            return  # what later spans link to stays the attempts
        context = span.get_span_context()
        instance.latest[entry.name] = context
        instance.by_participant[entry.participant] = context

    def __repr__(self) -> str:
        return f"SpanObserver({self._tracer!r})"
