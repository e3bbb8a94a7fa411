"""SpanObserver: one trace per instance, a span per attempt and undo, the same for both runners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from coordination.errors import UsageError
from coordination.observe.otel import SpanObserver, conversation_span_id, trace_id_for
from tests.observe.scenarios import PLANS, choreographed, orchestrated


def traced(runner: Callable[..., Any], plan: str) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runner(plan, observers=[SpanObserver(provider)])
    return list(exporter.get_finished_spans())


def tree(spans: list[ReadableSpan]) -> list[tuple[object, ...]]:
    """Each span's name, parent, outcome and the names of what it links to: no ids, no times."""
    names = {span.context.span_id: span.name for span in spans}
    return [
        (
            span.name,
            span.parent.span_id if span.parent else None,
            span.attributes["coordination.attempt"] if span.attributes else None,
            span.status.status_code,
            tuple(names[link.context.span_id] for link in span.links),
        )
        for span in spans
    ]


def test_a_refused_order_is_one_trace_of_attempts_and_undos_linked_by_causation() -> None:
    spans = traced(orchestrated, "refused")
    root = conversation_span_id("order-1")
    assert {span.context.trace_id for span in spans} == {trace_id_for("order-1")}
    charge, courier = "process Payments.charge", "process Logistics.assign_courier"
    ok, error = StatusCode.UNSET, StatusCode.ERROR
    assert sorted(tree(spans)) == sorted(
        [
            (charge, root, 1, ok, ()),
            ("process Sellers.reserve_stock", root, 1, error, (charge,)),
            (courier, root, 1, error, (charge,)),
            (courier, root, 2, ok, (charge,)),
            ("compensate Logistics.release_courier", root, 1, ok, (courier,)),
            ("compensate Payments.refund", root, 1, ok, (charge,)),
        ]
    )
    refused = next(s for s in spans if s.name == "process Sellers.reserve_stock")
    assert refused.kind is SpanKind.CONSUMER
    assert refused.attributes is not None
    assert refused.attributes["messaging.message.conversation_id"] == "order-1"
    assert refused.attributes["messaging.operation.type"] == "process"
    assert refused.attributes["messaging.system"] == "coordination"
    assert refused.attributes["error.type"] == "InjectedRefusal"
    assert refused.end_time is not None
    assert refused.start_time is not None
    assert refused.end_time >= refused.start_time


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_both_runners_give_the_same_span_tree(plan: str) -> None:
    assert sorted(tree(traced(orchestrated, plan))) == sorted(tree(traced(choreographed, plan)))


def test_every_process_derives_the_same_trace_from_the_correlation_id() -> None:
    assert trace_id_for("order-1") == trace_id_for("order-1") != trace_id_for("order-2")
    first = traced(orchestrated, "completed")
    second = traced(choreographed, "completed")  # as if another process ran it
    assert {s.context.trace_id for s in first} == {s.context.trace_id for s in second}
    assert {s.parent.span_id for s in first if s.parent} == {conversation_span_id("order-1")}


def test_a_span_observer_needs_a_tracer_provider() -> None:
    with pytest.raises(UsageError, match="TracerProvider"):
        SpanObserver("jaeger")  # type: ignore[arg-type]
