"""Recommendations from several sources: fan out, gather, degrade instead of failing.

`Quota.allot` fans out one query per source (`tuple[SourceQuery, ...]`), `Sources.ask`
runs once per query, `Ranker.merge` gathers every answer (`tuple[SourceAnswered, ...]`).
A slow or failing source answers "unavailable" as a business result: the run completes
with what the others said and names what it went without. `python -m
examples.recommendations` runs it under both runners, one source slow and one down.
"""

from .flow import (
    BUDGET,
    BordaRanker,
    Quota,
    QuotaBook,
    Ranker,
    Recommend,
    RecommendationsReady,
    RecommendationsRequested,
    Source,
    SourceAnswered,
    SourceClients,
    SourceQuery,
    Sources,
)
from .sources import SOURCE_NAMES, answering, failing, slow, sources

__all__ = [
    "BUDGET",
    "SOURCE_NAMES",
    "BordaRanker",
    "Quota",
    "QuotaBook",
    "Ranker",
    "Recommend",
    "RecommendationsReady",
    "RecommendationsRequested",
    "Source",
    "SourceAnswered",
    "SourceClients",
    "SourceQuery",
    "Sources",
    "answering",
    "failing",
    "services",
    "slow",
    "sources",
]


def services(**overrides: Source) -> tuple[QuotaBook, SourceClients, BordaRanker]:
    """Fresh participants: the three sources (some replaced, `trending=slow()`)."""
    return QuotaBook(SOURCE_NAMES), SourceClients(sources(**overrides)), BordaRanker()
