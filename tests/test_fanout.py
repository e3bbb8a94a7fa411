"""Fan-out over a list: a `tuple[X, ...]` output maps the next step over its items, a
`tuple[Y, ...]` input gathers what the items returned.

Each item runs as `Interface.action[i]` with its own idempotency key and undo; a failing
item lets every started sibling run to its end, then everything done is undone, items in
reverse item order (DESIGN.md, "One engine, one rule"); zero items skip the mapped step
and hand the gather an empty tuple. Under all four entry points, in memory and on SQLite,
with the same outcome.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import (
    Context,
    EntryKind,
    Event,
    NonRetryable,
    Participant,
    WorkflowStatus,
    action,
)
from coordination.choreography import Choreography, EventBus
from coordination.errors import DefinitionError
from coordination.orchestration import Orchestrator, parallel, step
from coordination.stores import SQLiteStore, StepOutcome
from coordination.testing import (
    FaultPlan,
    assert_crash_safe,
    assert_equivalent,
    fault_plans,
    run_both,
)
from tests.fanout_flow import (
    Crawler,
    CrawlRequested,
    FakeCrawler,
    FakeIndexer,
    FakePublisher,
    Indexer,
    IndexSite,
    PageFound,
    PageIndexed,
    Publisher,
    SiteIndexed,
    fanout_services,
)

COMPLETED = WorkflowStatus.COMPLETED
COMPENSATED = WorkflowStatus.COMPENSATED
THREE = CrawlRequested(site="s", paths=["a", "bb", "ccc"])
ONE_BAD = CrawlRequested(site="s", paths=["a", "bad", "ccc"])
NONE = CrawlRequested(site="s", paths=[])


def test_each_item_runs_under_its_own_key_and_the_gather_gets_them_in_item_order() -> None:
    crawler, indexer, publisher = FakeCrawler(), FakeIndexer(), FakePublisher()
    run = IndexSite(crawler, indexer, publisher).run(THREE, workflow_id="wf")

    assert run.status is COMPLETED
    assert run.output == SiteIndexed(site="s", paths=["a", "bb", "ccc"], words=6)
    assert [record.key for record in run.steps] == [
        "Crawler.crawl",
        "Indexer.index[0]",
        "Indexer.index[1]",
        "Indexer.index[2]",
        "Publisher.publish",
    ]
    assert sorted(indexer.effects) == ["wf:Indexer.index[0]", "wf:Indexer.index[1]",
                                       "wf:Indexer.index[2]"]  # fmt: skip
    assert [r.output for r in run.steps if r.key.startswith("Indexer.index[")] == [
        PageIndexed(path="a", words=1),
        PageIndexed(path="bb", words=2),
        PageIndexed(path="ccc", words=3),
    ]
    assert run.output_of(PageIndexed) == PageIndexed(path="a", words=1)  # the first item's
    assert run.journal.names(EntryKind.COMPLETED)[1:4] == [
        "Indexer.index[0]",
        "Indexer.index[1]",
        "Indexer.index[2]",
    ]


def test_a_failing_item_lets_its_siblings_finish_then_all_is_undone_in_reverse_item_order() -> None:
    crawler, indexer, publisher = FakeCrawler(), FakeIndexer(), FakePublisher()
    run = IndexSite(crawler, indexer, publisher).run(ONE_BAD, workflow_id="wf")

    assert run.status is COMPENSATED
    outcomes = {record.key: record.outcome for record in run.steps}
    assert outcomes["Indexer.index[1]"] is StepOutcome.FAILED
    # The item after the failing one still ran to its end (a sibling, like any other)...
    assert outcomes["Indexer.index[2]"] is StepOutcome.COMPLETED
    # ...then everything done was undone: items in reverse item order, then the crawl.
    assert [r.key for r in run.steps if r.outcome is StepOutcome.COMPENSATED] == [
        "Indexer.index[2]:undo",
        "Indexer.index[0]:undo",
        "Crawler.crawl:undo",
    ]
    assert indexer.effects == {}
    assert crawler.effects == {}
    assert "Publisher.publish" not in outcomes


def test_zero_items_skip_the_mapped_step_and_the_gather_gets_an_empty_tuple() -> None:
    publisher = FakePublisher()
    run = IndexSite(FakeCrawler(), FakeIndexer(), publisher).run(NONE, workflow_id="wf")

    assert run.status is COMPLETED
    assert run.output == SiteIndexed(site="s", paths=[], words=0)
    assert run.journal.names(EntryKind.SKIPPED) == ["Indexer.index"]
    skipped = run.journal.of_kind(EntryKind.SKIPPED)[0]
    assert "zero items" in str(skipped.detail)
    assert publisher.effects == {"wf:Publisher.publish": []}


@pytest.mark.parametrize("start", [THREE, ONE_BAD, NONE], ids=["three", "one-bad", "none"])
def test_all_four_entry_points_agree(start: CrawlRequested) -> None:
    both = run_both(IndexSite, fanout_services, start, correlation_id="wf")

    assert_equivalent(both)
    expected = COMPENSATED if start is ONE_BAD else COMPLETED
    assert {outcome.status for outcome in both.outcomes} == {expected}


def test_a_choreography_without_flow_derives_the_same_fan_out() -> None:
    bus = EventBus()
    crawler, indexer, publisher = fanout_services()
    flow = Choreography(bus, crawler, indexer, publisher)
    flow.publish(THREE, correlation_id="wf")

    view = flow.monitor.get("wf")
    assert view is not None
    assert view.status is COMPLETED
    assert view.done == (
        "Crawler.crawl",
        "Indexer.index[0]",
        "Indexer.index[1]",
        "Indexer.index[2]",
        "Publisher.publish",
    )
    assert publisher.snapshot() == [("wf:Publisher.publish", "['a', 'bb', 'ccc']")]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Any]:
    opened: list[SQLiteStore] = []

    def make() -> SQLiteStore:
        opened.append(SQLiteStore(tmp_path / f"store-{len(opened)}.db"))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def durable_stores(request: pytest.FixtureRequest, stores: Any) -> Any:
    """Fresh durable stores, one per entry point: SQLite files, or PostgreSQL schemas."""
    if request.param == "sqlite":
        return stores
    server = request.getfixturevalue("postgres")
    return lambda: server.store()


@pytest.mark.parametrize("start", [THREE, ONE_BAD, NONE], ids=["three", "one-bad", "none"])
def test_durable_all_four_entry_points_agree(start: CrawlRequested, durable_stores: Any) -> None:
    both = run_both(IndexSite, fanout_services, start, correlation_id="wf", stores=durable_stores)

    assert_equivalent(both)
    expected = COMPENSATED if start is ONE_BAD else COMPLETED
    assert {outcome.status for outcome in both.outcomes} == {expected}


def test_a_crash_at_any_postgres_write_recovers_to_the_same_end(postgres: Any) -> None:
    assert assert_crash_safe(IndexSite, fanout_services, ONE_BAD, store=lambda: postgres.store())


def test_a_fan_out_is_read_back_from_sqlite_and_never_runs_again(tmp_path: Path) -> None:
    path = tmp_path / "sites.db"
    with SQLiteStore(path) as store:
        IndexSite(*fanout_services(), store=store).run(THREE, workflow_id="wf")
    with SQLiteStore(path) as store:
        services = fanout_services()
        run = IndexSite(*services, store=store).get("wf")
        assert run.status is COMPLETED
        assert run.steps[0].output == tuple(PageFound(site="s", path=p) for p in ("a", "bb", "ccc"))
        again = IndexSite(*services, store=store).run(THREE, workflow_id="wf")
        assert again.journal == run.journal  # idempotent: nothing ran again
        assert all(not getattr(s, "log", None) for s in services)


@pytest.mark.parametrize("start", [THREE, ONE_BAD], ids=["three", "one-bad"])
def test_a_crash_at_any_write_recovers_to_the_same_end(start: CrawlRequested) -> None:
    assert assert_crash_safe(IndexSite, fanout_services, start)


def test_a_crash_at_any_sqlite_write_recovers_to_the_same_end(stores: Any) -> None:
    assert assert_crash_safe(IndexSite, fanout_services, ONE_BAD, store=stores)


def _planned(plan: FaultPlan) -> tuple[Participant, ...]:
    services = fanout_services()
    plan.fresh().install(*services)
    return services


@settings(max_examples=40, deadline=None)
@given(plan=fault_plans(IndexSite), start=st.sampled_from([THREE, ONE_BAD, NONE]))
def test_every_fault_plan_gives_the_same_outcome_under_all_four_entry_points(
    plan: FaultPlan, start: CrawlRequested
) -> None:
    assert_equivalent(run_both(IndexSite, fanout_services, start, plan, correlation_id="wf"))


# -- definitions ------------------------------------------------------------------------------


class Lonely(Event):
    n: int


class Counted(Event):
    n: int


class Declined(Event):
    n: int


class Gatherer(Participant):
    @action
    @abstractmethod
    def count(self, lonely: Lonely) -> Counted: ...

    @action
    @abstractmethod
    def total(self, counted: tuple[Counted, ...]) -> Declined: ...


def test_a_gather_of_a_message_that_comes_one_at_a_time_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"takes tuple\[Counted, \.\.\.\], but Counted comes"):

        class Flow(Orchestrator[Lonely, Declined]):
            steps = (step(Gatherer.count), step(Gatherer.total))


class Branchy(Participant):
    @action
    @abstractmethod
    def judge(self, page: PageFound) -> Counted | Declined: ...


def test_a_mapped_step_returning_a_union_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="a mapped step returns one message type"):

        class Flow(Orchestrator[CrawlRequested, Any]):
            steps = (step(Crawler.crawl), step(Branchy.judge))


def test_a_mapped_pivot_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="a pivot is one step of its own"):

        class Flow(Orchestrator[CrawlRequested, Any]):
            steps = (step(Crawler.crawl), step(Indexer.index, pivot=True))


def test_the_undo_of_a_fan_out_takes_the_whole_tuple() -> None:
    with pytest.raises(DefinitionError, match=r"must take tuple\[PageFound, \.\.\.\]"):

        class Finder(Participant):
            @action
            def find(self, request: CrawlRequested) -> tuple[PageFound, ...]:
                return ()

            @find.compensation
            def lose(self, page: PageFound) -> None: ...


def test_a_declared_output_of_a_mapped_last_step_is_the_tuple_of_its_items() -> None:
    class Flow(Orchestrator[CrawlRequested, tuple[PageIndexed, ...]]):
        steps = (step(Crawler.crawl), step(Indexer.index))

    run = Flow(FakeCrawler(), FakeIndexer()).run(THREE, workflow_id="wf")
    assert run.output == (
        PageIndexed(path="a", words=1),
        PageIndexed(path="bb", words=2),
        PageIndexed(path="ccc", words=3),
    )
    with pytest.raises(DefinitionError, match=r"tuple\[PageIndexed, \.\.\.\]"):

        class Wrong(Orchestrator[CrawlRequested, PageIndexed]):
            steps = (step(Crawler.crawl), step(Indexer.index))


def test_a_fixed_tuple_keeps_its_meaning() -> None:
    signature = Crawler.crawl.signature
    assert signature.returns_many
    assert not signature.returns_tuple
    assert Publisher.publish.signature.gathers == (0,)
    _ = Context


# -- with a pivot, and cancelled ----------------------------------------------------------


class Reader(Participant):
    @action
    @abstractmethod
    def read(self, page: PageFound) -> PageIndexed: ...


class FlakyReader(Reader):
    def __init__(self) -> None:
        self.broken = True
        self.read_paths: list[str] = []

    def read(self, page: PageFound) -> PageIndexed:
        if self.broken and page.path == "bb":
            raise NonRetryable("the reader is down")
        self.read_paths.append(page.path)
        return PageIndexed(path=page.path, words=len(page.path))


class ReadSite(Orchestrator[CrawlRequested, SiteIndexed]):
    steps = (step(Crawler.crawl, pivot=True), step(Reader.read), step(Publisher.publish))


def test_an_item_failing_after_the_pivot_parks_and_a_retry_runs_only_the_failed_item() -> None:
    reader = FlakyReader()
    orchestrator = ReadSite(FakeCrawler(), reader, FakePublisher())
    parked = orchestrator.run(THREE, workflow_id="wf")

    assert parked.status is WorkflowStatus.PARKED
    assert sorted(reader.read_paths) == ["a", "ccc"]  # its siblings ran to their end
    assert not parked.journal.of_kind(EntryKind.COMPENSATED)

    reader.broken = False
    done = orchestrator.retry("wf")
    assert done.status is COMPLETED
    assert sorted(reader.read_paths) == ["a", "bb", "ccc"]  # only the failed item again
    assert done.output == SiteIndexed(site="s", paths=["a", "bb", "ccc"], words=6)


class CancellingIndexer(FakeIndexer):
    """Calls the run off while it indexes its second page (an operator, mid-fan-out)."""

    orchestrator: Any = None

    def index(self, page: PageFound, ctx: Context) -> PageIndexed:
        if page.path == "bb":
            assert self.orchestrator.cancel(ctx.correlation_id).status is (
                WorkflowStatus.COMPENSATING
            )
        return super().index(page, ctx)


def test_a_cancel_mid_fan_out_lets_the_items_finish_then_undoes_them_in_reverse() -> None:
    crawler, indexer, publisher = FakeCrawler(), CancellingIndexer(), FakePublisher()
    orchestrator = IndexSite(crawler, indexer, publisher)
    indexer.orchestrator = orchestrator
    run = orchestrator.run(THREE, workflow_id="wf")

    assert run.status is WorkflowStatus.CANCELLED
    assert run.journal.names(EntryKind.COMPENSATED) == [
        "Indexer.unindex[2]",
        "Indexer.unindex[1]",
        "Indexer.unindex[0]",
        "Crawler.forget",
    ]
    assert indexer.effects == {}
    assert crawler.effects == {}
    assert publisher.effects == {}


def test_all_four_entry_points_park_an_item_failing_after_the_pivot() -> None:
    both = run_both(
        ReadSite,
        lambda: (FakeCrawler(), FlakyReader(), FakePublisher()),
        THREE,
        correlation_id="wf",
    )
    assert_equivalent(both)
    assert {outcome.status for outcome in both.outcomes} == {WorkflowStatus.PARKED}


# -- a mapped step whose other input comes last ----------------------------------------------


class Go(Event):
    n: int


class Part(Event):
    i: int


class Tag(Event):
    t: str


class Done(Event):
    i: int
    t: str


class All(Event):
    total: int


class Splitter(Participant):
    @action
    def split(self, go: Go) -> tuple[Part, ...]:
        return tuple(Part(i=i) for i in range(go.n))


class Tagger(Participant):
    @action
    def tag(self, go: Go) -> Tag:
        return Tag(t="x")


class Worker(Participant):
    @action
    def work(self, part: Part, tag: Tag) -> Done:
        return Done(i=part.i, t=tag.t)


class Summer(Participant):
    @action
    def gather(self, done: tuple[Done, ...]) -> All:
        return All(total=len(done))


class TaggedParts(Orchestrator[Go, All]):
    steps = (
        parallel(step(Splitter.split), step(Tagger.tag)),
        step(Worker.work),
        step(Summer.gather),
    )


def test_items_run_when_the_whole_input_they_share_is_delivered_after_their_own() -> None:
    """Regression: in a choreography the parts were delivered (held), then the tag that
    opened their generation; the items were never handed out and the instance hung."""
    both = run_both(
        TaggedParts,
        lambda: (Splitter(), Tagger(), Worker(), Summer()),
        Go(n=3),
        correlation_id="wf",
    )
    assert_equivalent(both)
    assert {outcome.status for outcome in both.outcomes} == {COMPLETED}


class Scored(Event):
    path: str
    score: int


class Scorer(Participant):
    @action
    def score(self, page: PageIndexed) -> Scored:
        return Scored(path=page.path, score=page.words * 10)


class Ranker(Participant):
    @action
    def rank(self, scores: tuple[Scored, ...]) -> SiteIndexed:
        return SiteIndexed(
            site="s", paths=[s.path for s in scores], words=sum(s.score for s in scores)
        )


class ScoreSite(Orchestrator[CrawlRequested, SiteIndexed]):
    steps = (step(Crawler.crawl), step(Indexer.index), step(Scorer.score), step(Ranker.rank))


@pytest.mark.parametrize("start", [THREE, ONE_BAD, NONE], ids=["three", "one-bad", "none"])
def test_a_mapped_step_maps_over_the_items_of_the_one_before(start: CrawlRequested) -> None:
    both = run_both(
        ScoreSite,
        lambda: (FakeCrawler(), FakeIndexer(), Scorer(), Ranker()),
        start,
        correlation_id="wf",
    )
    assert_equivalent(both)
    if start is THREE:
        run = both["run"]
        assert [n for n in run.journal.names(EntryKind.COMPLETED) if n.startswith("Scorer")] == [
            "Scorer.score[0]",
            "Scorer.score[1]",
            "Scorer.score[2]",
        ]
        assert run.output == SiteIndexed(site="s", paths=["a", "bb", "ccc"], words=60)
