"""``claim`` says how it got a key (``Claimed``), the same on both backends: a first delivery
is ``FRESH``; a redelivery that takes over a claim whose holder left it undone is
``TAKEN_OVER`` (that holder may have posted its reply and died before ``done``, so the
Slack adapter looks for the reply first); a held or done key is ``NO``, which is falsy."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.store.dedup import DEFAULT_LEASE, DEFAULT_TTL, Claimed, DedupStore

from .conftest import Backend

T0 = 2_000_000.0


def test_a_first_delivery_is_fresh_and_only_a_lapsed_undone_claim_is_taken_over(backend: Backend) -> None:
    now = [T0]
    a, b, c = (backend.dedup(clock=lambda: now[0]) for _ in range(3))
    assert a.claim("slack:E1") is Claimed.FRESH and a.claim("slack:E2") is Claimed.FRESH
    assert b.claim("slack:E1") is Claimed.NO and not Claimed.NO  # held; falsy as before
    a.done("slack:E2")
    now[0] += DEFAULT_LEASE + 1
    assert b.claim("slack:E1") is Claimed.TAKEN_OVER  # a never marked it done
    assert b.claim("slack:E2") is Claimed.NO  # done: never taken over, never looked up
    now[0] += DEFAULT_LEASE + 1  # b dies too
    assert c.claim("slack:E1") is Claimed.TAKEN_OVER
    c.done("slack:E1")
    now[0] += DEFAULT_TTL + 1  # a delivery long after the TTL is a new one, not a takeover
    assert a.claim("slack:E2") is Claimed.FRESH and a.claim("slack:E1") is Claimed.FRESH


def test_of_many_racers_for_a_lapsed_claim_one_takes_it_over(backend: Backend) -> None:
    now = [T0]
    first = backend.dedup(clock=lambda: now[0])
    keys = [f"slack:E{n}" for n in range(12)]
    assert all(first.claim(k) is Claimed.FRESH for k in keys)
    now[0] += DEFAULT_LEASE + 1
    racers = [backend.dedup(clock=lambda: now[0]) for _ in range(4)]
    start = threading.Barrier(8)

    def take(job: tuple[int, str]) -> tuple[str, Claimed]:
        n, key = job
        if n < 8:
            start.wait()
        return key, racers[n % 4].claim(key)

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(take, enumerate(k for k in keys for _ in range(4))))
    for key in keys:
        assert sorted(c for k, c in got if k == key) == [Claimed.NO] * 3 + [Claimed.TAKEN_OVER], key


def test_a_file_from_before_takeovers_gets_the_column_and_keeps_its_claims(
    backend: Backend, tmp_path: Path
) -> None:
    """SQLite adds ``took_over`` in place (PostgreSQL: migration 0011); an undone claim
    written by the previous release is still taken over once its lease lapsed."""
    if backend.db is None:
        old = sqlite3.connect(tmp_path / DedupStore.FILE)
        old.executescript(
            "CREATE TABLE seen_events (key TEXT PRIMARY KEY, seen REAL NOT NULL, holder TEXT NOT NULL "
            "DEFAULT '', expires REAL NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 1);"
        )
        old.execute("INSERT INTO seen_events VALUES ('slack:OLD', ?, 'old:1:x', ?, 0)", (T0, T0 + 10))
        old.execute("INSERT INTO seen_events VALUES ('slack:DONE', ?, 'old:1:x', ?, 1)", (T0, T0 + 10))
        old.commit()
        old.close()
    else:
        backend.sql(
            "",
            "insert into seen_events (key, seen, holder, expires, done) values "
            "('slack:OLD', ?, 'old:1:x', ?, 0), ('slack:DONE', ?, 'old:1:x', ?, 1)",
            [T0, T0 + 10, T0, T0 + 10],
        )
    now = [T0 + 11]
    store = backend.dedup(clock=lambda: now[0])
    assert store.claim("slack:DONE") is Claimed.NO
    assert store.claim("slack:OLD") is Claimed.TAKEN_OVER
    assert store.claim("slack:NEW") is Claimed.FRESH
    store.close()
