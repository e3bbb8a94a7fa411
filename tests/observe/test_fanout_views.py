"""A fan-out on the graph, in the timeline and under lint: one node per mapped step."""

from __future__ import annotations

from coordination.choreography import Choreography, EventBus
from coordination.observe import graph, lint, timeline
from tests.fanout_flow import CrawlRequested, IndexSite, fanout_services
from tests.observe.renderers import dot_errors, mermaid_errors

ONE_BAD = CrawlRequested(site="s", paths=["a", "bad", "ccc"])


def test_the_graph_marks_the_fan_out_the_mapped_step_and_the_gather() -> None:
    text = graph(IndexSite).mermaid()
    assert 'a0["Crawler.crawl<br/>fans out: many PageFound"]' in text
    assert "Indexer.index<br/>mapped: once per PageFound<br/>2 attempts" in text
    assert 'a2["Publisher.publish<br/>gathers every PageIndexed"]' in text
    # A choreography of the same participants derives the same marks from the signatures.
    derived = graph(Choreography(EventBus(), *fanout_services())).mermaid()
    assert "mapped: once per PageFound" in derived
    assert graph(list(fanout_services())).model.nodes[1].mapped


def test_a_run_is_drawn_on_its_mapped_step_and_both_renderers_accept_it() -> None:
    run = IndexSite(*fanout_services()).run(ONE_BAD, workflow_id="wf")
    diagram = graph(IndexSite, run=run)
    assert diagram.states["Indexer.index"] == "compensated"
    assert diagram.states["Indexer.unindex"] == "compensated"
    assert diagram.states["Publisher.publish"] == "not_run"
    sequence = timeline(run).mermaid()
    assert "index 1 attempt 1" in sequence
    assert mermaid_errors({"graph": diagram.mermaid(), "timeline": sequence}) == {}
    assert dot_errors({"graph": diagram.dot()}) == {}


def test_the_timeline_shows_each_item_and_its_undo() -> None:
    run = IndexSite(*fanout_services()).run(ONE_BAD, workflow_id="wf")
    text = str(timeline(run))
    assert "Indexer.index[1] (generation 2)" in text
    assert "Indexer.unindex[2] (undo of Indexer.index[2])" in text
    assert text.index("Indexer.unindex[2]") < text.index("Indexer.unindex[0]")


def test_lint_finds_nothing_on_a_well_wired_fan_out() -> None:
    assert lint(IndexSite) == []
    assert lint(Choreography(EventBus(), *fanout_services())) == []
    assert lint(list(fanout_services())) == []
