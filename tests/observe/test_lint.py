"""Lint finds each seeded defect, by its stable code, and nothing on the examples."""

from __future__ import annotations

import pytest
from bench.lint import wide_participants

from coordination.choreography import Choreography, EventBus
from coordination.errors import DefinitionError
from coordination.observe import CODES, Finding, Severity, lint
from coordination.testing import fake
from tests.observe import broken
from tests.observe.examples import EXAMPLES

SEEDED = {
    "CYCLE": ("cycle", ("Clock.tick", "Pendulum.swing", "Tock", "Tick")),
    "UNPRODUCED": ("unproduced-input", ("Shipping.ship", "LabelPrinted")),
    "INCOMPLETE_JOIN": (
        "incomplete-join",
        ("Reconcile.reconcile", "PaymentCaptured", "AuditOpened"),
    ),
    "TWO_HANDLERS": ("command-handlers", ("Reserve", "Warehouse.reserve", "Backup.reserve_too")),
    "NO_HANDLER": ("command-handlers", ("Reserve",)),
    "UNCONSUMED": ("unconsumed-event", ("ScoringPayments.charge", "FraudScored")),
    "IRREVERSIBLE": ("irreversible-before-failure", ("Emails.welcome", "LatePayments.charge")),
    "PIVOT_BESIDE": ("pivot-in-parallel", ("Capture.capture", "Fraud.check")),
    "UNFANNED_GATHER": ("unfanned-gather", ("Totals.total", "Counted")),
}


@pytest.mark.parametrize("flow", sorted(SEEDED))
def test_each_broken_flow_has_exactly_its_finding(flow: str) -> None:
    code, subjects = SEEDED[flow]
    [finding] = lint(getattr(broken, flow))
    assert (finding.code, finding.subjects) == (code, subjects)
    assert finding.severity is CODES[code]
    assert str(finding) == f"{finding.severity.value}: {code}: {finding.message}"


def test_every_code_has_a_seeded_defect() -> None:
    assert {code for code, _ in SEEDED.values()} == set(CODES)


def test_findings_say_what_to_fix() -> None:
    messages = {flow: lint(getattr(broken, flow))[0].message for flow in SEEDED}
    assert "break the loop" in messages["CYCLE"]
    assert "add the participant that produces it" in messages["UNPRODUCED"]
    assert "no start message leads to all of them" in messages["INCOMPLETE_JOIN"]
    assert "handled by 2: Warehouse.reserve, Backup.reserve_too" in messages["TWO_HANDLERS"]
    assert "nothing handles it" in messages["NO_HANDLER"]
    assert "nothing consumes it before the flow ends" in messages["UNCONSUMED"]
    assert "give it a compensation (@welcome.compensation)" in messages["IRREVERSIBLE"]
    assert "make the pivot the only action of its generation" in messages["PIVOT_BESIDE"]
    assert "there is no fan-out to gather" in messages["UNFANNED_GATHER"]


def test_a_declared_flow_and_its_choreography_are_linted_alike() -> None:
    [declared] = lint(broken.EmailFirst)
    flow = Choreography(EventBus(), fake(broken.Emails), fake(broken.LatePayments))
    [derived] = lint(flow)
    assert declared == derived
    assert declared.code == "irreversible-before-failure"


def test_what_a_choreography_refuses_to_build_lint_explains() -> None:
    for flow in ("UNPRODUCED", "TWO_HANDLERS"):
        implementations = [fake(interface) for interface in getattr(broken, flow)]
        with pytest.raises(DefinitionError):
            Choreography(EventBus(), *implementations)
        assert [f.severity for f in lint(implementations)] == [Severity.ERROR]


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_no_finding_on_the_examples(example: str) -> None:
    assert lint(EXAMPLES[example]()) == []


def test_a_choreography_of_200_actions_is_well_wired() -> None:
    """Its speed is measured by bench/lint.py, not asserted here."""
    participants = wide_participants(200)
    assert lint(participants) == []
    # Leave out P53: P54 joins M54 (now produced by nobody) with M52 (from the first flow).
    findings: list[Finding] = lint(participants[:53] + participants[54:])
    assert [(f.code, f.subjects) for f in findings] == [("unproduced-input", ("P54.a54", "M54"))]
