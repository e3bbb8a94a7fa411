"""Flow graphs from the definitions, checked by real renderers, a run drawn on them."""

from __future__ import annotations

import re

import pytest

from coordination.errors import UsageError
from coordination.observe import STATES, graph
from tests.observe import broken
from tests.observe.examples import EXAMPLES, shop_choreography
from tests.observe.golden import assert_golden
from tests.observe.renderers import dot_errors, mermaid_errors
from tests.observe.scenarios import PLANS, choreographed, orchestrated
from tests.testing.test_fakes import shop


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_every_examples_graph_is_pinned(example: str) -> None:
    diagram = graph(EXAMPLES[example]())
    assert_golden(f"graph-{example}.mmd", diagram.mermaid())
    assert_golden(f"graph-{example}.dot", diagram.dot())


def _all_diagrams() -> dict[str, tuple[str, str]]:
    diagrams = {name: graph(make()) for name, make in EXAMPLES.items()}
    for plan in PLANS:
        diagrams[f"run-{plan}"] = graph(EXAMPLES["ecommerce-flow"](), run=orchestrated(plan))
    for name in ("CYCLE", "UNPRODUCED", "INCOMPLETE_JOIN", "TWO_HANDLERS", "UNCONSUMED"):
        diagrams[name] = graph(getattr(broken, name))
    return {name: (d.mermaid(), d.dot()) for name, d in diagrams.items()}


def test_mermaids_parser_accepts_every_graph() -> None:
    diagrams = _all_diagrams()
    assert mermaid_errors({name: text for name, (text, _) in diagrams.items()}) == {}


def test_graphviz_renders_every_graph() -> None:
    diagrams = _all_diagrams()
    assert dot_errors({name: text for name, (_, text) in diagrams.items()}) == {}


def test_a_flow_graph_shows_generations_joins_and_undos() -> None:
    text = graph(EXAMPLES["ecommerce-flow"]()).mermaid()
    assert 'subgraph g2 ["generation 2"]' in text
    assert 'a3["Notifications.send_confirmation<br/>join of 3<br/>3 attempts"]' in text
    assert 'a0["Payments.charge<br/>3 attempts<br/>timeout 2s"]' in text
    assert 'c0{{"undo: Payments.refund"}}' in text
    assert "a0 -.-> c0" in text  # the undo hangs off its action
    assert "c0 -.-> m2" in text  # and announces PaymentRefunded


def test_a_choreography_graph_shows_who_emits_and_who_reacts_subscribers_included() -> None:
    diagram = graph(shop_choreography())
    text = diagram.mermaid()
    found = re.findall(r'^    (m\d+)\(\["(\w+)"\]\)$', text, re.M)
    ids = {name: ident for ident, name in found}
    assert f"a0 --> {ids['PaymentCaptured']}" in text  # Payments.charge emits it
    assert f"{ids['PaymentCaptured']} --> a1" in text  # a participant reacts
    assert 's0[/"LoyaltyProgram.on_payment_captured"/]' in text
    assert f"{ids['PaymentCaptured']} --> s0" in text
    assert f"{ids['PaymentRefunded']} --> s1" in text  # the refund is seen by loyalty too


def test_an_orchestrator_instance_is_drawn_as_its_flow() -> None:
    from examples.ecommerce.app import place_order

    assert graph(place_order()).mermaid() == graph(EXAMPLES["ecommerce-flow"]()).mermaid()


def test_the_choreography_of_the_interfaces_has_the_flows_generations() -> None:
    derived = graph(shop()).model
    declared = graph(EXAMPLES["ecommerce-flow"]()).model
    assert {n.key: n.generation for n in derived.nodes} == {
        n.key: n.generation for n in declared.nodes
    }


def test_a_run_overlay_colours_each_action_and_undo() -> None:
    diagram = graph(EXAMPLES["ecommerce-flow"](), run=orchestrated("refused"))
    assert diagram.states == {
        "Payments.charge": "compensated",
        "Payments.refund": "compensated",
        "Logistics.assign_courier": "compensated",
        "Logistics.release_courier": "compensated",
        "Sellers.reserve_stock": "failed",
        "Notifications.send_confirmation": "not_run",
    }
    text = diagram.mermaid()
    assert "class a2 failed" in text
    assert f"classDef failed fill:{STATES['failed'][0]}" in text
    assert f'fillcolor="{STATES["failed"][0]}"' in diagram.dot()
    assert_golden("graph-run-refused.mmd", text)


def test_both_runners_runs_draw_the_same_overlay() -> None:
    flow = EXAMPLES["ecommerce-flow"]()
    for plan in PLANS:
        ours = graph(flow, run=orchestrated(plan)).states
        assert ours == graph(flow, run=choreographed(plan)).states, plan
    completed = graph(flow, run=orchestrated("completed")).states
    assert {completed[n.key] for n in graph(flow).model.nodes} == {"done"}
    undo_failed = graph(flow, run=orchestrated("undo-failed")).states
    assert undo_failed["Payments.refund"] == "failed"
    assert undo_failed["Payments.charge"] == "compensation_failed"


def test_a_run_of_another_flow_is_refused() -> None:
    with pytest.raises(UsageError, match="does not have"):
        graph(broken.IRREVERSIBLE, run=orchestrated("completed"))


@pytest.mark.parametrize("target", ["PlaceOrder", 42, [object()], []])
def test_graph_takes_flows_choreographies_or_participants(target: object) -> None:
    with pytest.raises(UsageError):
        graph(target)


def test_a_run_that_waited_is_drawn_on_its_flow() -> None:
    from coordination.testing import VirtualClock
    from examples.otp_login import (
        CODE_TTL,
        CodeStore,
        LoginRequested,
        OtpLogin,
        SessionBook,
        SmsGateway,
    )

    clock = VirtualClock()
    logins = OtpLogin(CodeStore(), SmsGateway(), SessionBook(), clock=clock)
    logins.run(LoginRequested(user="cy", phone="1"), workflow_id="login")
    clock.advance(CODE_TTL.total_seconds())
    (expired,) = logins.resume_due()
    diagram = graph(OtpLogin, run=expired)
    text = diagram.mermaid()
    assert "Sessions.expire" in text
    assert diagram.states == {
        "Codes.issue": "done", "Sms.send": "done",
        "Codes.verify": "skipped", "Sessions.expire": "done", "Sessions.open": "skipped",
        "Sessions.refuse": "skipped",
    }  # fmt: skip
    assert mermaid_errors({"otp-expired": text}) == {}
    assert dot_errors({"otp-expired": diagram.dot()}) == {}
