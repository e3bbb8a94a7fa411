"""Recommendations gathered from several sources: a fan-out, each source on its own, merged.

A user asks for recommendations; `Quota.allot` spends one query of the user's quota per
source and returns one `SourceQuery` each (`tuple[SourceQuery, ...]`: a fan-out);
`Sources.ask` runs once per query (`Sources.ask[0]`, `[1]`, ...: its own idempotency key)
and caches what the source said; `Ranker.merge` takes `tuple[SourceAnswered, ...]`, every
answer in source order, and ranks the picks.

A slow source (past its budget) or a failing one never fails the run: `ask` answers
"unavailable" as a business result, so the run COMPLETES with what the other sources
said, and names the sources it went without. Only a failure of the flow itself (the
ranker refusing) undoes anything: the cached answers are evicted in reverse source order,
then the quota is given back.
"""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping

from pydantic import Field

from coordination import Context, Event, NonRetryable, Participant, action
from coordination.orchestration import Orchestrator, step

#: How long one source may take before the run goes on without it (seconds).
BUDGET = 0.2


class RecommendationsRequested(Event):
    user_id: str
    limit: int = Field(default=5, gt=0)


class SourceQuery(Event):
    user_id: str
    source: str
    limit: int
    budget: float


class SourceAnswered(Event):
    user_id: str
    source: str
    limit: int
    #: The source's picks, best first (empty when it was unavailable).
    picks: list[str] = Field(default_factory=list)
    #: Why the source gave nothing (timed out, failed); None when it answered.
    unavailable: str | None = None


class RecommendationsReady(Event):
    user_id: str
    picks: list[str]
    #: The sources that answered, and those the run went without (with why).
    answered: list[str]
    degraded: list[str]


class Quota(Participant):
    """Spends a user's queries, one per source asked."""

    @action
    @abstractmethod
    def allot(self, request: RecommendationsRequested) -> tuple[SourceQuery, ...]: ...

    @allot.compensation
    @abstractmethod
    def refund(self, queries: tuple[SourceQuery, ...]) -> None: ...


class Sources(Participant):
    """Asks one source (once per query: a mapped step) and caches its answer."""

    @action
    @abstractmethod
    async def ask(self, query: SourceQuery, ctx: Context) -> SourceAnswered: ...

    @ask.compensation
    @abstractmethod
    async def evict(self, answer: SourceAnswered, ctx: Context) -> None: ...


class Ranker(Participant):
    """Merges every source's answer into one ranked list."""

    @action
    @abstractmethod
    def merge(self, answers: tuple[SourceAnswered, ...]) -> RecommendationsReady: ...


class Recommend(Orchestrator[RecommendationsRequested, RecommendationsReady]):
    steps = (step(Quota.allot), step(Sources.ask), step(Ranker.merge))


#: A source: given a user id, its picks, best first (a coroutine: it may be slow).
Source = Callable[[str], Awaitable[list[str]]]


class QuotaBook(Quota):
    """Queries spent per user, each allotment kept by the user and its sources."""

    def __init__(self, sources: list[str], *, budget: float = BUDGET) -> None:
        self.sources = sources
        self.budget = budget
        self.spent: dict[str, int] = {}
        self._lock = threading.Lock()

    def allot(self, request: RecommendationsRequested) -> tuple[SourceQuery, ...]:
        with self._lock:
            self.spent[request.user_id] = self.spent.get(request.user_id, 0) + len(self.sources)
        return tuple(
            SourceQuery(
                user_id=request.user_id, source=name, limit=request.limit, budget=self.budget
            )
            for name in self.sources
        )

    def refund(self, queries: tuple[SourceQuery, ...]) -> None:
        with self._lock:
            for query in queries:
                left = self.spent.get(query.user_id, 0) - 1
                if left > 0:
                    self.spent[query.user_id] = left
                else:
                    self.spent.pop(query.user_id, None)

    def snapshot(self) -> list[tuple[str, int]]:
        return sorted(self.spent.items())


class SourceClients(Sources):
    """Asks the source a query names, within the query's budget; caches the answers."""

    def __init__(self, sources: Mapping[str, Source]) -> None:
        self.sources = dict(sources)
        #: What each source said, by (user, source): what a failed run must not leave.
        self.cache: dict[tuple[str, str], list[str]] = {}
        self.asked: list[str] = []

    async def ask(self, query: SourceQuery, ctx: Context) -> SourceAnswered:
        self.asked.append(ctx.idempotency_key)
        answer = SourceAnswered(user_id=query.user_id, source=query.source, limit=query.limit)
        try:
            picks = await asyncio.wait_for(self.sources[query.source](query.user_id), query.budget)
        except TimeoutError:
            return answer.model_copy(update={"unavailable": f"no answer within {query.budget:g}s"})
        except Exception as error:  # a source down degrades the result, never the run
            return answer.model_copy(update={"unavailable": f"{type(error).__name__}: {error}"})
        self.cache[(query.user_id, query.source)] = picks
        return answer.model_copy(update={"picks": picks})

    async def evict(self, answer: SourceAnswered, ctx: Context) -> None:
        self.cache.pop((answer.user_id, answer.source), None)

    def snapshot(self) -> list[tuple[tuple[str, str], list[str]]]:
        return sorted(self.cache.items())


class BordaRanker(Ranker):
    """Ranks by the sum of positions across sources (best first scores most)."""

    def __init__(self) -> None:
        self.shown: dict[str, list[str]] = {}

    def merge(self, answers: tuple[SourceAnswered, ...]) -> RecommendationsReady:
        if not answers:
            raise NonRetryable("no source was asked")
        scores: dict[str, int] = {}
        for answer in answers:
            for position, pick in enumerate(answer.picks):
                scores[pick] = scores.get(pick, 0) + len(answer.picks) - position
        ranked = sorted(scores, key=lambda pick: (-scores[pick], pick))[: answers[0].limit]
        ready = RecommendationsReady(
            user_id=answers[0].user_id,
            picks=ranked,
            answered=[a.source for a in answers if a.unavailable is None],
            degraded=[f"{a.source}: {a.unavailable}" for a in answers if a.unavailable],
        )
        self.shown[ready.user_id] = ready.picks
        return ready

    def snapshot(self) -> list[tuple[str, list[str]]]:
        return sorted(self.shown.items())
