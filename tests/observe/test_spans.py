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


def moments(spans: list[ReadableSpan]) -> list[tuple[str, tuple[str, ...]]]:
    """The spans of no length (late results, skips, waits, recoveries), with their links."""
    names = {span.context.span_id: span.name for span in spans}
    return sorted(
        (span.name, tuple(names.get(link.context.span_id, "?") for link in span.links))
        for span in spans
        if span.name.split(" ", 1)[0] in ("late", "skip", "wait", "recover")
        and span.start_time == span.end_time
    )


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider, exporter


@pytest.mark.parametrize("runner", [orchestrated, choreographed])
def test_a_late_result_is_a_span_linked_to_the_attempt_it_came_back_from(
    runner: Callable[..., Any],
) -> None:
    spans = traced(runner, "late")
    assert moments(spans) == [
        ("late Logistics.assign_courier", ("process Logistics.assign_courier",))
    ]


def test_a_skipped_step_and_a_wait_are_spans_of_their_own() -> None:
    from examples.checkout import CardPayments, CheckoutStarted, OrderBook, WebhookCheckout

    tracer_provider, exporter = provider()
    declined = WebhookCheckout(
        CardPayments(limit_cents=10_000), OrderBook(), observers=[SpanObserver(tracer_provider)]
    )
    declined.run(CheckoutStarted(order_id="big", amount_cents=25_000), workflow_id="big")
    declined.run(CheckoutStarted(order_id="small", amount_cents=2_500), workflow_id="small")
    spans = list(exporter.get_finished_spans())
    names = [name for name, _ in moments(spans)]
    assert any(name.startswith("skip ") for name in names), names
    assert any(name.startswith("wait ") for name in names), names
    waiting = next(s for s in spans if s.name.startswith("wait "))
    assert waiting.attributes is not None
    assert "no thread, no lease held" in str(waiting.attributes["coordination.detail"])


def test_a_recovery_is_a_span() -> None:
    from coordination.stores import MemoryStore
    from tests.testing.test_fakes import shop

    tracer_provider, exporter = provider()
    store = MemoryStore()
    parts = shop(PLANS["completed"]())
    interrupted = [True]
    charge = parts[0].charge

    def interrupt_once(*args: Any, **kwargs: Any) -> Any:
        if interrupted[0]:
            interrupted[0] = False
            raise KeyboardInterrupt
        return charge(*args, **kwargs)

    parts[0].charge = interrupt_once  # type: ignore[method-assign]
    from examples.ecommerce import PlaceOrder
    from tests.observe.scenarios import ORDER

    orders = PlaceOrder(*parts, store=store, observers=[SpanObserver(tracer_provider)])
    with pytest.raises(KeyboardInterrupt):
        orders.run(ORDER, workflow_id="order-1")
    orders.run(ORDER, workflow_id="order-1")  # taken back from the owner that let go
    assert ("recover place-order", ()) in moments(list(exporter.get_finished_spans()))
