"""A worker process for the fan-out crash test: recover what a killed predecessor left,
then index the remaining sites (a crawl fanned out to one indexing per page, gathered).

python -m tests.crash.fanout_worker STORE EFFECTS COUNT [--pause S] [--seed N] [--mode M]

Each effect is recorded in the shared effects file under its idempotency key and an action
naming the page (`index:p2`), so an item run again under another key shows up as a second
effect of one action.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from coordination import Context, NonRetryable
from coordination.choreography import Choreography, EventBus
from tests.crash.shop import Effects, step_key
from tests.fanout_flow import (
    Crawler,
    CrawlRequested,
    Indexer,
    IndexSite,
    PageFound,
    PageIndexed,
    Publisher,
    SiteIndexed,
)
from tests.postgres import open_spec

PAGES = 4


def site_for(index: int) -> CrawlRequested:
    """Site `index`'s crawl: every third has a page the indexer refuses (compensated)."""
    paths = [f"p{page}" for page in range(PAGES)]
    if index % 3 == 0:
        paths[2] = "bad-p2"
    return CrawlRequested(site=f"site-{index}", paths=paths)


class DurableCrawler(Crawler):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def crawl(self, request: CrawlRequested, ctx: Context) -> tuple[PageFound, ...]:
        self.effects.apply(ctx, "crawl")
        return tuple(PageFound(site=request.site, path=path) for path in request.paths)

    def forget(self, pages: tuple[PageFound, ...], ctx: Context) -> None:
        self.effects.undo(step_key(ctx), "forget")


class DurableIndexer(Indexer):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def index(self, page: PageFound, ctx: Context) -> PageIndexed:
        if page.path.startswith("bad"):
            raise NonRetryable(f"cannot index {page.path}")
        self.effects.apply(ctx, f"index:{page.path}")
        return PageIndexed(path=page.path, words=len(page.path))

    def unindex(self, page: PageIndexed, ctx: Context) -> None:
        self.effects.undo(step_key(ctx), f"unindex:{page.path}")


class DurablePublisher(Publisher):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def publish(self, pages: tuple[PageIndexed, ...], ctx: Context) -> SiteIndexed:
        self.effects.apply(ctx, "publish")
        return SiteIndexed(
            site="s", paths=[p.path for p in pages], words=sum(p.words for p in pages)
        )


def participants(effects: Effects) -> tuple[DurableCrawler, DurableIndexer, DurablePublisher]:
    return DurableCrawler(effects), DurableIndexer(effects), DurablePublisher(effects)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("effects", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mode", choices=("orchestration", "choreography"), default="orchestration"
    )
    args = parser.parse_args(argv)
    effects = Effects(args.effects, pause=args.pause, seed=args.seed)
    store = open_spec(args.store)
    try:
        if args.mode == "choreography":
            flow = Choreography(EventBus(), *participants(effects), flow=IndexSite, store=store)
            flow.recover()
            for index in range(args.count):
                flow.publish(site_for(index), correlation_id=f"site-{index}")
        else:
            sites = IndexSite(*participants(effects), store=store)
            sites.recover()
            for index in range(args.count):
                sites.run(site_for(index), workflow_id=f"site-{index}")
    finally:
        store.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
