"""Event claims are leases, with the same rule on both backends (SQLite default, PostgreSQL):
a claim records its holder and expiry and is marked done once the reply is posted; a
redelivery takes over only a claim whose lease expired undone (its replica died while
answering), never a held one and never a done one.
"""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.store.dedup import DEFAULT_LEASE, DedupStore

from .conftest import Backend

T0 = 1_000_000.0


def test_an_expired_undone_claim_is_taken_over_once_and_a_done_one_never(backend: Backend) -> None:
    now = [T0]
    a = backend.dedup(clock=lambda: now[0])  # two replicas on one store
    b = backend.dedup(clock=lambda: now[0])
    assert a.claim("slack:E1") and a.claim("slack:E2")
    assert not b.claim("slack:E1")  # held: Slack's quick redelivery is dropped
    a.done("slack:E2")  # E2 was answered; E1's replica dies while answering
    now[0] += DEFAULT_LEASE - 1
    assert not b.claim("slack:E1")  # still within the lease
    now[0] += 2
    assert b.claim("slack:E1")  # lapsed undone: the redelivery is answered by b
    assert not a.claim("slack:E1") and not b.claim("slack:E1")  # b holds it now
    assert not b.claim("slack:E2")  # done: never taken over
    b.done("slack:E1")
    now[0] += 10 * DEFAULT_LEASE
    assert not a.claim("slack:E1") and not b.claim("slack:E2")


def test_the_claim_records_holder_expiry_and_done(backend: Backend) -> None:
    now = [T0]
    a = backend.dedup(clock=lambda: now[0], lease=30.0)
    b = backend.dedup(clock=lambda: now[0], lease=30.0)
    assert a.holder != b.holder
    assert a.claimed("slack:E1") is None
    assert a.claim("slack:E1")
    assert a.claimed("slack:E1") == (a.holder, T0 + 30.0, False)
    now[0] += 31
    assert b.claim("slack:E1")
    assert b.claimed("slack:E1") == (b.holder, T0 + 61.0, False)
    a.done("slack:E1")  # the slow first holder posted after all: a reply is a reply
    assert b.claimed("slack:E1") == (b.holder, T0 + 61.0, True)


def test_many_replicas_racing_for_one_lapsed_claim_give_it_to_one(backend: Backend) -> None:
    now = [T0]
    first = backend.dedup(clock=lambda: now[0])
    keys = [f"slack:E{n}" for n in range(20)]
    assert all(first.claim(k) for k in keys)
    now[0] += DEFAULT_LEASE + 1  # the first holder died with all twenty in hand
    racers = [backend.dedup(clock=lambda: now[0]) for _ in range(4)]
    start = threading.Barrier(16)

    def take(job: tuple[int, str]) -> tuple[str, int] | None:
        n, key = job
        if n < 16:
            start.wait()
        return (key, n % 4) if racers[n % 4].claim(key) else None

    jobs = list(enumerate(k for k in keys for _ in range(4)))
    with ThreadPoolExecutor(16) as pool:
        won = [w for w in pool.map(take, jobs) if w is not None]
    assert sorted(k for k, _ in won) == sorted(keys)  # each lapsed claim taken over exactly once
    for key, who in won:
        claimed = first.claimed(key)
        assert claimed is not None and claimed[0] == racers[who].holder


def test_rows_from_before_leases_count_as_done(backend: Backend, tmp_path: Path) -> None:
    """An upgrade must not reopen events answered before it: the old rows become done
    claims (SQLite migrates its file in place; PostgreSQL's dedup_leases migration defaults)."""
    if backend.db is None:
        old = sqlite3.connect(tmp_path / DedupStore.FILE)
        old.executescript(
            "CREATE TABLE seen_events (key TEXT PRIMARY KEY, seen REAL NOT NULL);"
            "CREATE TABLE answered_threads (channel TEXT NOT NULL, thread TEXT NOT NULL, "
            "seen REAL NOT NULL, PRIMARY KEY (channel, thread));"
        )
        old.execute("INSERT INTO seen_events VALUES ('slack:OLD', ?)", (T0,))
        old.commit()
        old.close()
    else:
        backend.sql("", "insert into seen_events (key, seen) values ('slack:OLD', ?)", [T0])
    now = [T0 + 10 * DEFAULT_LEASE]
    store = backend.dedup(clock=lambda: now[0])
    assert store.claimed("slack:OLD") == ("", 0.0, True)
    assert not store.claim("slack:OLD")
    assert store.claim("slack:NEW")
    store.close()
    if backend.db is None:  # opening the migrated file again changes nothing
        again = DedupStore.in_state_dir(tmp_path, clock=lambda: now[0])
        assert not again.claim("slack:OLD")
        assert again.claimed("slack:NEW") == (store.holder, now[0] + DEFAULT_LEASE, False)
        again.close()


def test_a_claim_renewed_when_its_answer_starts_is_not_taken_over(backend: Backend) -> None:
    """An answer that waited in the in-flight queue renews its lease when it starts, so a
    redelivery cannot take the event over mid-answer; one already taken over is not renewed
    (its old holder then leaves the answer to the new one)."""
    now = [T0]
    a = backend.dedup(clock=lambda: now[0], lease=30.0)
    b = backend.dedup(clock=lambda: now[0], lease=30.0)
    assert a.claim("slack:E1") and a.claim("slack:E2")
    now[0] += 25  # queued behind other answers
    assert a.renew("slack:E1")
    now[0] += 10  # past the first lease, within the renewed one
    assert not b.claim("slack:E1")
    assert b.claim("slack:E2")  # E2 was never renewed: a redelivery took it over
    assert not a.renew("slack:E2")  # ... so its first holder must not answer it too
    a.done("slack:E1")
    assert not a.renew("slack:E1")  # done: nothing to renew
