"""The answer cache and admin notices, the same assertions on both backends; on
PostgreSQL two replicas share them (an answer cached by one is a hit on the other, a
notice seen by both is stored once)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.store.backend import ENV_VAR
from bot.store.cache import open_answer_cache
from bot.store.notices import REPEAT_SECONDS, open_notices

from .conftest import Backend
from .test_cache import ANSWER


def test_cache_round_trip_ttl_and_sealing(backend: Backend) -> None:
    now = [1000.0]
    cache = backend.cache(ttl_seconds=60, clock=lambda: now[0])
    assert cache.get("k1") is None
    cache.put("k1", ANSWER)
    assert cache.get("k1") == ANSWER and len(cache) == 1
    cache.put("k1", replace(ANSWER, text="newer"))  # the same key again: replaced, not added
    assert cache.get("k1").text == "newer" and len(cache) == 1  # type: ignore[union-attr]
    ((blob,),) = backend.sql("cache.db", "select answer from answers")
    assert b"Full-time" not in bytes(blob) and b"newer" not in bytes(blob)  # sealed at rest
    now[0] += 61
    assert cache.get("k1") is None  # expired
    backend.sql("cache.db", "update answers set answer = ?", [b"\x01garbage" * 8])
    now[0] -= 61
    assert cache.get("k1") is None  # a damaged row is a miss, never an error


def test_cache_evicts_beyond_max_entries_and_purges_by_age(backend: Backend) -> None:
    now = [1000.0]
    cache = backend.cache(max_entries=3, clock=lambda: now[0])
    for n in range(5):
        now[0] += 1
        cache.put(f"k{n}", replace(ANSWER, request_id=f"r{n}"))
    now[0] += 1
    cache._writes = 100  # eviction runs every 100 writes: this put is the 101st
    cache.put("k5", replace(ANSWER, request_id="r5"))
    assert len(cache) == 3 and cache.get("k5") is not None and cache.get("k2") is None
    cutoff = datetime.fromtimestamp(now[0] - 0.5, UTC)  # k3 and k4 are older; k5 is not
    assert cache.purge_older_than("cache", cutoff, batch=1) == 2
    assert len(cache) == 1
    with pytest.raises(ValueError, match="only 'cache'"):
        cache.purge_older_than("audit", cutoff)


def test_cache_export_and_erase_by_request(backend: Backend) -> None:
    cache = backend.cache()
    for n in range(3):
        cache.put(f"k{n}", replace(ANSWER, request_id=f"r{n}"))
    got = cache.entries_for_requests(["r0", "r2", "nope"])
    assert sorted(e["request_id"] for e in got) == ["r0", "r2"]
    assert got[0]["answer"]["text"] == ANSWER.text
    assert cache.delete_for_requests(["r0", "r2"]) == 2
    assert len(cache) == 1 and cache.get("k1") is not None


def test_notices_are_told_once_a_day_newest_first(backend: Backend) -> None:
    now = [1_800_000_000.0]
    notices = backend.notices(clock=lambda: now[0])
    assert notices.notify("hr", "files-skipped", "2 files skipped")
    assert not notices.notify("hr", "files-skipped", "2 files skipped")
    assert notices.notify(None, "config-invalid", "groups.yaml: bad")
    assert not notices.notify(None, "config-invalid", "groups.yaml: bad")  # "all departments" too
    assert notices.notify("finance", "files-skipped", "2 files skipped")
    assert [n.kind for n in notices.recent("hr")] == ["config-invalid", "files-skipped"]
    assert [n.department for n in notices.recent()] == ["finance", None, "hr"]
    assert notices.recent(limit=1)[0].time == datetime.fromtimestamp(now[0], UTC)
    now[0] += REPEAT_SECONDS + 1
    assert notices.notify("hr", "files-skipped", "2 files skipped")  # a day later: told again


def test_notices_from_many_threads_are_stored_once(backend: Backend) -> None:
    notices = backend.notices()
    start = threading.Barrier(8)

    def tell(_: int) -> bool:
        start.wait()
        return notices.notify("hr", "refresh-failed", "the index could not be rebuilt")

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(tell, range(8))) == 1
    assert len(notices.recent()) == 1


def _replica(tmp_path: Path, name: str, url: str) -> Settings:
    return Settings(departments_dir=Path("."), state_dir=tmp_path / name, env={ENV_VAR: url})


def test_two_replicas_share_the_cache_and_the_notices(tmp_path: Path, pg_url: str) -> None:
    a, b = _replica(tmp_path, "machine-a", pg_url), _replica(tmp_path, "machine-b", pg_url)
    open_answer_cache(a, ttl_seconds=600, max_entries=100).put("same-question-key", ANSWER)
    assert open_answer_cache(b, ttl_seconds=600, max_entries=100).get("same-question-key") == ANSWER
    assert open_notices(a).notify("hr", "files-skipped", "1 file skipped")
    assert not open_notices(b).notify("hr", "files-skipped", "1 file skipped")
    assert [n.text for n in open_notices(b).recent("hr")] == ["1 file skipped"]
    for machine in ("machine-a", "machine-b"):  # nothing of either landed in a local file
        assert not any((tmp_path / machine).glob("*.db")) and not any((tmp_path / machine).glob("*.sqlite3"))
