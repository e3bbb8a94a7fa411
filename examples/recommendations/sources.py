"""Stand-in recommendation sources: a fast one per kind, a slow one, a failing one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from .flow import Source

_PICKS = {
    "history": ["dune", "solaris", "foundation", "hyperion"],
    "trending": ["foundation", "project-hail-mary", "dune", "the-martian"],
    "friends": ["hyperion", "dune", "piranesi"],
}


def answering(name: str) -> Source:
    """A source that answers at once with its picks for anyone."""

    async def fetch(user_id: str) -> list[str]:
        return list(_PICKS[name])

    return fetch


def slow(seconds: float = 30.0) -> Source:
    """A source that takes far longer than any budget (the run goes on without it)."""

    async def fetch(user_id: str) -> list[str]:
        await asyncio.sleep(seconds)
        return ["never-seen"]

    return fetch


def failing(why: str = "connection refused") -> Source:
    """A source that is down."""

    async def fetch(user_id: str) -> list[str]:
        raise ConnectionError(why)

    return fetch


def sources(**overrides: Source) -> Mapping[str, Source]:
    """The three sources, answering, with some replaced (`trending=slow()`)."""
    chosen = {name: answering(name) for name in _PICKS}
    chosen.update(overrides)
    return chosen


SOURCE_NAMES = list(_PICKS)
