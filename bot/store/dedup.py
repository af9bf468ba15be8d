"""Seen-event ids and answered threads for chat adapters, in SQLite (WAL) so they survive a restart.

Slack redelivers an event when it did not see an acknowledgement in time, and again after
a restart of ours; ``claim`` makes "exactly one reply per event" hold across both. A claim
is a lease, not a tombstone: it records who holds the event (``holder``) and until when
(``expires``), and the adapter marks it ``done`` once the reply is posted. A redelivery
may take over an event only when its claim expired undone — its holder died (SIGKILL, a
lost machine) while answering — so the question still gets its one reply from another
replica. A holder killed after posting the reply but before ``done`` was written (one
database write) leaves a lapsed claim whose question *was* answered: the taker is told so
(``Claimed.TAKEN_OVER``) and the Slack adapter then looks for its own reply first. Window
left: Slack redelivers only what it saw no acknowledgement for, so a replica killed after
its HTTP 200 (bolt acknowledges before answering) leaves the question unanswered, lease or not.
The ``threads`` table remembers where the bot answered, so a plain follow-up in that thread
(without a mention) is answered too. Rows expire after ``ttl`` seconds; cleanup runs on
open and every ``CLEANUP_EVERY`` writes, so the file stays small without a scheduler.

``claim`` says *how* it got the key (``Claimed``): a first delivery, or one taken over from
a holder whose lease lapsed undone. Only the second may have been answered already (the
holder died between posting and ``done``), so only then does the Slack adapter look for
its own earlier reply before answering; a first delivery costs no extra call.
"""

from __future__ import annotations

import enum
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bot.errors import StoreError
from bot.store.db import open_db

DEFAULT_TTL = 24 * 3600.0  # Slack retries within minutes; a day is generous
THREAD_TTL = 14 * 24 * 3600.0  # follow-ups in an answered thread, for two weeks
DEFAULT_LEASE = 120.0  # twice the default [llm] deadline_seconds: an answer ends well before
CLEANUP_EVERY = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_events (
    key TEXT PRIMARY KEY, seen REAL NOT NULL,
    holder TEXT NOT NULL DEFAULT '', expires REAL NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 1,
    took_over INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS seen_events_seen ON seen_events(seen);
CREATE TABLE IF NOT EXISTS answered_threads (
    channel TEXT NOT NULL, thread TEXT NOT NULL, seen REAL NOT NULL, PRIMARY KEY (channel, thread)
);
CREATE INDEX IF NOT EXISTS answered_threads_seen ON answered_threads(seen);
"""
# Files written before claims were leases have (key, seen) only. Their rows were answered
# (or dropped as answered) then, so they become done claims: the column defaults say so.
# The same columns and defaults as the PostgreSQL migrations *_dedup_leases.sql and
# *_dedup_takeovers.sql (``took_over``: old rows were fresh claims, or are done anyway).
_LEASE_COLUMNS = (
    ("holder", "TEXT NOT NULL DEFAULT ''"),
    ("expires", "REAL NOT NULL DEFAULT 0"),
    ("done", "INTEGER NOT NULL DEFAULT 1"),
    ("took_over", "INTEGER NOT NULL DEFAULT 0"),
)


# Written for both backends (bot.store.pg_dedup runs them with %s placeholders). One rule,
# in the WHERE of one upsert, so it is atomic in SQLite and PostgreSQL alike: a row is
# (re)taken when it is older than the TTL (a new delivery long after), or when its lease
# expired before anyone marked it done (its holder died while answering). ``took_over``
# records, in the same statement, whether the row it replaced was left undone, and
# RETURNING hands it back: no row returned means the key stays with someone else. (In the
# SET, ``seen_events.done`` is the old row's value in both databases.)
CLAIM_SQL = (
    "INSERT INTO seen_events(key, seen, holder, expires, done, took_over) VALUES (?, ?, ?, ?, 0, 0) "
    "ON CONFLICT(key) DO UPDATE SET seen = excluded.seen, holder = excluded.holder, "
    "expires = excluded.expires, done = 0, "
    "took_over = CASE WHEN seen_events.done = 0 THEN 1 ELSE 0 END "
    "WHERE seen_events.seen < ? OR (seen_events.done = 0 AND seen_events.expires <= ?) "
    "RETURNING took_over"
)
DONE_SQL = "UPDATE seen_events SET done = 1 WHERE key = ?"
RENEW_SQL = "UPDATE seen_events SET expires = ? WHERE key = ? AND holder = ? AND done = 0"
MARK_SQL = (
    "INSERT INTO answered_threads(channel, thread, seen) VALUES (?, ?, ?) "
    "ON CONFLICT(channel, thread) DO UPDATE SET seen = excluded.seen"
)
THREAD_SQL = "SELECT seen FROM answered_threads WHERE channel = ? AND thread = ?"
CLAIM_ROW_SQL = "SELECT holder, expires, done FROM seen_events WHERE key = ?"


class Claimed(enum.IntEnum):
    """What ``claim`` got. Falsy only for ``NO``, so ``if store.claim(key)`` reads as before.

    ``TAKEN_OVER``: the key's previous holder left it undone and its lease lapsed. It may
    have died before posting (nothing was said) or after (the reply is out, only ``done``
    is missing); the caller that can tell the two apart (the Slack adapter, by its reply's
    message metadata) should look before answering again."""

    NO = 0  # held by another holder, or done
    FRESH = 1  # the first delivery (or a new one after the TTL)
    TAKEN_OVER = 2  # a lapsed claim, taken over from a holder that never marked it done


def new_holder() -> str:
    """Who holds a claim: host and process (for an operator reading the table) plus a
    random part, so two stores in one process, or a restarted process reusing a pid, differ."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dedup:
    """Claims and answered threads, written once for every backend: a subclass says how
    statements run (``_session``: a connection, serialized as the backend needs).

    ``claim`` is one upsert, atomic in SQLite and PostgreSQL alike: of any number of
    processes claiming one key at once, exactly one sees a row inserted (or an expired
    one renewed). ``lease`` seconds after a claim that was never marked ``done``, the
    next delivery of the key may take it over."""

    def _init_dedup(self, *, ttl: float, thread_ttl: float, lease: float, clock: Callable[[], float]) -> None:
        if lease <= 0:
            raise ValueError("a claim's lease must be positive")
        self._ttl = ttl
        self._thread_ttl = thread_ttl
        self._lease = lease
        self._clock = clock
        self._writes = 0
        self.holder = new_holder()

    def _session(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def claim(self, key: str) -> Claimed:
        """Truthy when this caller now holds ``key``: ``FRESH`` for the first delivery (within
        the TTL), ``TAKEN_OVER`` for a redelivery after the holder's lease expired undone.
        ``NO`` (falsy) while the key is held or done."""
        now = self._clock()
        params = (key, now, self.holder, now + self._lease, now - self._ttl, now)
        with self._session() as conn:
            # fetchall, not fetchone: SQLite ends (and, in autocommit, commits) a RETURNING
            # statement only once its rows are all read; one row at most here
            rows = conn.execute(CLAIM_SQL, params).fetchall()
            self._tick(conn)
        if not rows:
            return Claimed.NO
        return Claimed.TAKEN_OVER if int(rows[0][0]) else Claimed.FRESH

    def renew(self, key: str) -> bool:
        """Restart this holder's lease on ``key`` (its answer leaves the in-flight queue and
        starts). False when the key is done or another holder took it over meanwhile: then
        that holder answers, and this one must not."""
        with self._session() as conn:
            kept = conn.execute(RENEW_SQL, (self._clock() + self._lease, key, self.holder)).rowcount == 1
        return bool(kept)

    def done(self, key: str) -> None:
        """The reply to ``key`` was posted (or nothing is to be posted): no redelivery may take
        it over any more, whoever holds it (a reply is a reply, even from a slow holder)."""
        with self._session() as conn:
            conn.execute(DONE_SQL, (key,))

    def claimed(self, key: str) -> tuple[str, float, bool] | None:
        """(holder, expires, done) of ``key``, None when unclaimed; for tests and operators."""
        with self._session() as conn:
            row = conn.execute(CLAIM_ROW_SQL, (key,)).fetchone()
        return None if row is None else (str(row[0]), float(row[1]), bool(row[2]))

    def mark_thread(self, channel: str, thread: str) -> None:
        with self._session() as conn:
            conn.execute(MARK_SQL, (channel, thread, self._clock()))
            self._tick(conn)

    def has_thread(self, channel: str, thread: str) -> bool:
        with self._session() as conn:
            row = conn.execute(THREAD_SQL, (channel, thread)).fetchone()
        return row is not None and row[0] >= self._clock() - self._thread_ttl

    def cleanup(self) -> None:
        with self._session() as conn:
            self._cleanup(conn)

    def _cleanup(self, conn: Any) -> None:
        now = self._clock()
        conn.execute("DELETE FROM seen_events WHERE seen < ?", (now - self._ttl,))
        conn.execute("DELETE FROM answered_threads WHERE seen < ?", (now - self._thread_ttl,))

    def _tick(self, conn: Any) -> None:
        self._writes += 1
        if self._writes % CLEANUP_EVERY == 0:
            self._cleanup(conn)

    def close(self) -> None:
        """Nothing to release by default (a shared pool)."""


class DedupStore(Dedup):
    """Thread-safe; one small database file per state directory."""

    FILE = "chat-state.sqlite3"

    def __init__(
        self,
        *,
        path: Path,
        ttl: float = DEFAULT_TTL,
        thread_ttl: float = THREAD_TTL,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._init_dedup(ttl=ttl, thread_ttl=thread_ttl, lease=lease, clock=clock)
        self._lock = threading.Lock()
        self._conn = open_db(path, _SCHEMA, "the chat state database")
        try:
            self._migrate()
            self._cleanup(self._conn)
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the chat state database at {path}.") from exc

    def _migrate(self) -> None:
        """Add the lease columns to a file from before leases, in place (old rows: done).
        Two processes opening the same old file at once: the loser's ALTER finds the column."""
        ex = self._conn.execute
        for name, decl in _LEASE_COLUMNS:
            columns = {row[1] for row in ex("PRAGMA table_info(seen_events)").fetchall()}
            if name in columns:
                continue
            try:
                ex(f"ALTER TABLE seen_events ADD COLUMN {name} {decl}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc).lower():
                    raise

    @classmethod
    def in_state_dir(cls, state_dir: Path, **kwargs: float) -> DedupStore:
        return cls(path=Path(state_dir) / cls.FILE, **kwargs)  # type: ignore[arg-type]

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def lease_seconds(settings: Any) -> float:
    """``[runtime] claim_lease_seconds``, where 0 means twice ``[llm] deadline_seconds`` (the
    longest a generation may take, fallbacks included)."""
    values = settings.values
    configured = float(values.runtime.claim_lease_seconds)
    return configured if configured > 0 else 2.0 * float(values.llm.deadline_seconds)


def open_dedup_store(settings: Any, **kwargs: Any) -> Dedup:
    """The chat state of ``settings``: PostgreSQL when ``DEPTBOT_DATABASE_URL`` is set
    (replicas share claims), else ``DedupStore`` in the state folder. The lease comes from
    the settings (``lease_seconds``) unless given."""
    from bot.store.backend import database_for

    kwargs.setdefault("lease", lease_seconds(settings))
    db = database_for(settings)
    if db is None:
        return DedupStore.in_state_dir(settings.state_dir, **kwargs)
    from bot.store.pg_dedup import PgDedupStore

    return PgDedupStore(db, **kwargs)
