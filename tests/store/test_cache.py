"""Answer cache storage: faithful round trip, TTL, eviction; a broken row is a miss."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.types import Answer, Citation, Classification, Status, Timings, Usage
from bot.store.cache import MemoryAnswerCache, SqliteAnswerCache, dumps, loads

ANSWER = Answer(
    text="Full-time employees receive 25 days [1]. Überstunden are paid [2].",
    request_id="abc123",
    status=Status.ANSWERED,
    citations=(
        Citation(
            n=1,
            title="Time off",
            path="knowledge/hr/time-off.md",
            department="hr",
            score=0.82,
            snippet="Full-time employees…",
            anchor="Time off › Annual vacation",
            modified=datetime(2026, 9, 14, 8, 30, tzinfo=UTC),
            doc_id="hr/time-off.md",
            chunk_id="hr/time-off.md#1",
        ),
        Citation(n=2, title="Pay", path="p", department="hr", score=0.5, snippet="s"),
    ),
    confidence=0.77,
    department="hr",
    department_title="Human Resources",
    generator="anthropic",
    model="claude-haiku-4-5",
    route="cloud",
    route_reason="internal data → cloud; small tier",
    timings=Timings(1.5, 200.25, 210.0),
    usage=Usage(120, 18, 0.00021),
    notice="n",
    alternative_department="finance",
    low_confidence=False,
    channel_safe=False,
    classification=Classification.CONFIDENTIAL,
    created=datetime(2026, 9, 15, 10, 0, tzinfo=UTC),
    extra={"k": "v"},
)


def test_round_trip_is_faithful() -> None:
    assert loads(dumps(ANSWER)) == ANSWER
    back = loads(dumps(ANSWER))
    assert isinstance(back.status, Status) and isinstance(back.classification, Classification)
    assert back.citations[0].modified == ANSWER.citations[0].modified
    assert back.created is not None and back.created.tzinfo is not None


@pytest.fixture(params=["memory", "sqlite"])
def make_cache(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(ttl: float = 60, max_entries: int = 100, clock=None):  # type: ignore[no-untyped-def]
        kw = {"ttl_seconds": ttl, "max_entries": max_entries}
        if clock is not None:
            kw["clock"] = clock
        if request.param == "memory":
            return MemoryAnswerCache(**kw)
        return SqliteAnswerCache(path=tmp_path / "cache.db", **kw)

    return make


def test_get_put_and_ttl(make_cache) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    cache = make_cache(ttl=60, clock=lambda: now[0])
    assert cache.get("k") is None
    cache.put("k", ANSWER)
    assert cache.get("k") == ANSWER
    now[0] += 61
    assert cache.get("k") is None


def test_memory_cache_evicts_least_recently_used() -> None:
    cache = MemoryAnswerCache(max_entries=2)
    cache.put("a", ANSWER)
    cache.put("b", ANSWER)
    cache.get("a")
    cache.put("c", ANSWER)
    assert cache.get("b") is None and cache.get("a") is not None


def test_sqlite_cache_survives_reopen_and_treats_garbage_as_miss(tmp_path: Path) -> None:
    SqliteAnswerCache(path=tmp_path / "c.db").put("k", ANSWER)
    cache = SqliteAnswerCache(path=tmp_path / "c.db")
    assert cache.get("k") == ANSWER
    cache._db.execute("update answers set answer = '{not json' where key = 'k'")
    assert cache.get("k") is None
