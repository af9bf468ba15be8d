"""Admin notices in SQLite (``<state>/notices.sqlite3``), shared by every process, or in
PostgreSQL with ``DEPTBOT_DATABASE_URL`` (``bot.store.pg_notices``), shared by every replica.

The background refresher, the configuration watcher and ``deptbot index`` write here when
they narrow access or skip something; ``/kb status``, the App Home, ``kb status`` in Teams
and ``deptbot check`` read it. A notice repeated within ``REPEAT_SECONDS`` is not stored
again, so a problem that persists is told once, not at every refresh tick.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.core.ports import Notice
from bot.errors import StoreError
from bot.store.db import open_db

log = logging.getLogger(__name__)

REPEAT_SECONDS = 24 * 3600.0
KEEP = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    department TEXT,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS notices_time ON notices(time);
"""


# Written for both backends (bot.store.pg_notices runs them with %s placeholders);
# coalesce: SQLite's "is ?" has no PostgreSQL spelling (department names are never empty).
_SEEN_SQL = (
    "select 1 from notices where coalesce(department, '') = coalesce(?, '') "
    "and kind = ? and text = ? and time > ?"
)
_INSERT_SQL = "insert into notices (department, kind, text, time) values (?, ?, ?, ?)"
_TRIM_SQL = "delete from notices where id <= (select max(id) from notices) - ?"


class Notices:
    """The ``AdminNotices`` port written once for every backend; a subclass says how a
    statement runs (``_session``: one transaction, serialized across every process that
    writes the same notices, so a notice is stored once however many replicas see it)."""

    _clock: Callable[[], float]

    def _session(self, *, write: bool = False) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def notify(self, department: str | None, kind: str, text: str) -> bool:
        now = self._clock()
        with self._session(write=True) as conn:
            if conn.execute(_SEEN_SQL, (department, kind, text, now - REPEAT_SECONDS)).fetchone():
                return False
            conn.execute(_INSERT_SQL, (department, kind, text, now))
            conn.execute(_TRIM_SQL, (KEEP,))
        # The text can name people (e-mails), so the log carries only where and what kind;
        # admins read the text in chat or with `deptbot check`.
        log.warning("admin notice recorded (%s, %s)", department or "all departments", kind)
        return True

    def recent(self, department: str | None = None, *, limit: int = 20) -> list[Notice]:
        sql = "select department, kind, text, time from notices"
        args: list[object] = []
        if department is not None:
            sql += " where department = ? or department is null"
            args.append(department)
        sql += " order by id desc limit ?"
        args.append(limit)
        with self._session() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [Notice(d, k, t, datetime.fromtimestamp(ts, UTC)) for d, k, t, ts in rows]

    def close(self) -> None:
        """Nothing to release by default (a shared pool)."""


class SqliteNotices(Notices):
    """In ``<state>/notices.sqlite3``; thread-safe, one write transaction per notice."""

    FILE = "notices.sqlite3"

    def __init__(self, *, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = open_db(path, _SCHEMA, "the notices database")

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SqliteNotices:
        return cls(path=Path(state_dir) / cls.FILE)

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                if not write:
                    yield self._conn
                    return
                self._conn.execute("BEGIN IMMEDIATE")  # another process's check-then-insert waits
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError("Could not read or write the admin notices.") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_notices(settings: Any) -> Notices:
    """The admin notices of ``settings``: PostgreSQL when ``DEPTBOT_DATABASE_URL`` is set
    (every replica's notices in one list, each told once), else ``notices.sqlite3``."""
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is None:
        return SqliteNotices.in_state_dir(settings.state_dir)
    from bot.store.pg_notices import PgNotices

    return PgNotices(db)


class MemoryNotices:
    """Per-process notices (tests, and tools that have no state folder)."""

    def __init__(self) -> None:
        self.items: list[Notice] = []
        self._lock = threading.Lock()

    def notify(self, department: str | None, kind: str, text: str) -> bool:
        with self._lock:
            if any((n.department, n.kind, n.text) == (department, kind, text) for n in self.items):
                return False
            self.items.append(Notice(department, kind, text, datetime.now(UTC)))
        # The text can name people (e-mails), so the log carries only where and what kind;
        # admins read the text in chat or with `deptbot check`.
        log.warning("admin notice recorded (%s, %s)", department or "all departments", kind)
        return True

    def recent(self, department: str | None = None, *, limit: int = 20) -> list[Notice]:
        with self._lock:
            found = [n for n in self.items if department is None or n.department in (department, None)]
        return list(reversed(found))[:limit]
