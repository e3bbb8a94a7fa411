"""The renderers the diagram tests rely on accept good diagrams and refuse broken ones."""

from __future__ import annotations

from tests.observe.renderers import dot_errors, mermaid_errors


def test_mermaids_parser_accepts_flowcharts_and_sequences_and_refuses_a_broken_one() -> None:
    errors = mermaid_errors(
        {
            "flowchart": "flowchart TD\n  a[A] --> b[B]\n",
            "sequence": "sequenceDiagram\n  participant A\n  A->>B: hi\n",
            "broken": "flowchart TD\n  a[A -->\n",
        }
    )
    assert list(errors) == ["broken"]
    assert "Parse error" in errors["broken"]


def test_dot_accepts_a_graph_and_refuses_a_broken_one() -> None:
    errors = dot_errors({"good": "digraph { a -> b }", "broken": "digraph { a -> }"})
    assert list(errors) == ["broken"]
    assert "syntax error" in errors["broken"]
