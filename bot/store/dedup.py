"""Seen-event ids and answered threads for chat adapters, in SQLite (WAL) so they survive a restart.

Slack redelivers an event when it did not see an acknowledgement in time, and again after
a restart of ours; ``claim`` makes "exactly one reply per event" hold across both. The
``threads`` table remembers where the bot answered, so a plain follow-up in that thread
(without a mention) is answered too. Rows expire after ``ttl`` seconds; cleanup runs on
open and every ``CLEANUP_EVERY`` writes, so the file stays small without a scheduler.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bot.errors import StoreError
from bot.store.db import open_db

DEFAULT_TTL = 24 * 3600.0  # Slack retries within minutes; a day is generous
THREAD_TTL = 14 * 24 * 3600.0  # follow-ups in an answered thread, for two weeks
CLEANUP_EVERY = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_events (key TEXT PRIMARY KEY, seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_events_seen ON seen_events(seen);
CREATE TABLE IF NOT EXISTS answered_threads (
    channel TEXT NOT NULL, thread TEXT NOT NULL, seen REAL NOT NULL, PRIMARY KEY (channel, thread)
);
CREATE INDEX IF NOT EXISTS answered_threads_seen ON answered_threads(seen);
"""


# Written for both backends (bot.store.pg_dedup runs them with %s placeholders).
CLAIM_SQL = (
    "INSERT INTO seen_events(key, seen) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET seen = excluded.seen WHERE seen_events.seen < ?"
)
MARK_SQL = (
    "INSERT INTO answered_threads(channel, thread, seen) VALUES (?, ?, ?) "
    "ON CONFLICT(channel, thread) DO UPDATE SET seen = excluded.seen"
)
THREAD_SQL = "SELECT seen FROM answered_threads WHERE channel = ? AND thread = ?"


class Dedup:
    """Claims and answered threads, written once for every backend: a subclass says how
    statements run (``_session``: a connection, serialized as the backend needs).

    ``claim`` is one upsert, atomic in SQLite and PostgreSQL alike: of any number of
    processes claiming one key at once, exactly one sees a row inserted (or an expired
    one renewed)."""

    def _init_dedup(self, *, ttl: float, thread_ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._thread_ttl = thread_ttl
        self._clock = clock
        self._writes = 0

    def _session(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def claim(self, key: str) -> bool:
        """True the first time ``key`` is seen (within the TTL), False for every repeat."""
        now = self._clock()
        with self._session() as conn:
            first = conn.execute(CLAIM_SQL, (key, now, now - self._ttl)).rowcount == 1
            self._tick(conn)
        return bool(first)

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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._init_dedup(ttl=ttl, thread_ttl=thread_ttl, clock=clock)
        self._lock = threading.Lock()
        self._conn = open_db(path, _SCHEMA, "the chat state database")
        try:
            self._cleanup(self._conn)
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the chat state database at {path}.") from exc

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


def open_dedup_store(settings: Any, **kwargs: Any) -> Dedup:
    """The chat state of ``settings``: PostgreSQL when ``DEPTBOT_DATABASE_URL`` is set
    (replicas share claims), else ``DedupStore`` in the state folder."""
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is None:
        return DedupStore.in_state_dir(settings.state_dir, **kwargs)
    from bot.store.pg_dedup import PgDedupStore

    return PgDedupStore(db, **kwargs)
