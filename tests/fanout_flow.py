"""A fan-out flow for the tests: a crawl finds pages, each is indexed on its own, a
publisher gathers them.

`Crawler.crawl` returns `tuple[PageFound, ...]` (a fan-out); `Indexer.index` takes one
`PageFound`, so it runs once per page (`Indexer.index[i]`, its own idempotency key and
undo); `Publisher.publish` takes `tuple[PageIndexed, ...]`, so it gathers them in page
order. A page whose path starts with "bad" is refused (`NonRetryable`); every effect is
kept under its idempotency key, so a snapshot shows what stands.
"""

from __future__ import annotations

import threading
from abc import abstractmethod

from coordination import Context, Event, NonRetryable, Participant, Retry, action
from coordination.orchestration import Orchestrator, step
from tests.equivalence_shapes import forward_key


class CrawlRequested(Event):
    site: str
    paths: list[str]


class PageFound(Event):
    site: str
    path: str


class PageIndexed(Event):
    path: str
    words: int


class SiteIndexed(Event):
    site: str
    paths: list[str]
    words: int


class Crawler(Participant):
    @action
    @abstractmethod
    def crawl(self, request: CrawlRequested, ctx: Context) -> tuple[PageFound, ...]: ...

    @crawl.compensation
    @abstractmethod
    def forget(self, pages: tuple[PageFound, ...], ctx: Context) -> None: ...


class Indexer(Participant):
    @action(retry=Retry(attempts=2, backoff=0.0))
    @abstractmethod
    def index(self, page: PageFound, ctx: Context) -> PageIndexed: ...

    @index.compensation
    @abstractmethod
    def unindex(self, page: PageIndexed, ctx: Context) -> None: ...


class Publisher(Participant):
    @action
    @abstractmethod
    def publish(self, pages: tuple[PageIndexed, ...], ctx: Context) -> SiteIndexed: ...


class _Kept:
    """Effects by idempotency key, and the order things happened in."""

    def __init__(self) -> None:
        self.effects: dict[str, object] = {}
        self.log: list[str] = []
        self.lock = threading.Lock()

    def keep(self, ctx: Context, value: object) -> None:
        with self.lock:
            self.effects.setdefault(ctx.idempotency_key, value)
            self.log.append(ctx.idempotency_key)

    def drop(self, ctx: Context) -> None:
        with self.lock:
            self.effects.pop(forward_key(ctx.idempotency_key), None)
            self.log.append(ctx.idempotency_key)

    def snapshot(self) -> list[tuple[str, str]]:
        return sorted((key, repr(value)) for key, value in self.effects.items())


class FakeCrawler(Crawler, _Kept):
    def __init__(self) -> None:
        _Kept.__init__(self)

    def crawl(self, request: CrawlRequested, ctx: Context) -> tuple[PageFound, ...]:
        self.keep(ctx, len(request.paths))
        return tuple(PageFound(site=request.site, path=path) for path in request.paths)

    def forget(self, pages: tuple[PageFound, ...], ctx: Context) -> None:
        self.drop(ctx)


class FakeIndexer(Indexer, _Kept):
    def __init__(self) -> None:
        _Kept.__init__(self)

    def index(self, page: PageFound, ctx: Context) -> PageIndexed:
        if page.path.startswith("bad"):
            raise NonRetryable(f"cannot index {page.path}")
        self.keep(ctx, page.path)
        return PageIndexed(path=page.path, words=len(page.path))

    def unindex(self, page: PageIndexed, ctx: Context) -> None:
        self.drop(ctx)


class FakePublisher(Publisher, _Kept):
    def __init__(self) -> None:
        _Kept.__init__(self)

    def publish(self, pages: tuple[PageIndexed, ...], ctx: Context) -> SiteIndexed:
        if any(page.path.startswith("late") for page in pages):
            raise NonRetryable("a late page cannot be published")
        self.keep(ctx, [page.path for page in pages])
        return SiteIndexed(
            site="s", paths=[page.path for page in pages], words=sum(p.words for p in pages)
        )


class IndexSite(Orchestrator[CrawlRequested, SiteIndexed]):
    steps = (step(Crawler.crawl), step(Indexer.index), step(Publisher.publish))


def fanout_services() -> tuple[Participant, ...]:
    return (FakeCrawler(), FakeIndexer(), FakePublisher())
