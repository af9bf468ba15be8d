"""Admin notices in SQLite (``<state>/notices.sqlite3``), shared by every process.

The background refresher, the configuration watcher and ``deptbot index`` write here when
they narrow access or skip something; ``/kb status``, the App Home, ``kb status`` in Teams
and ``deptbot check`` read it. A notice repeated within ``REPEAT_SECONDS`` is not stored
again, so a problem that persists is told once, not at every refresh tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.core.ports import Notice
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


class SqliteNotices:
    """The ``AdminNotices`` port; thread-safe."""

    FILE = "notices.sqlite3"

    def __init__(self, *, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = open_db(path, _SCHEMA, "the notices database")

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SqliteNotices:
        return cls(path=Path(state_dir) / cls.FILE)

    def notify(self, department: str | None, kind: str, text: str) -> bool:
        now = self._clock()
        with self._lock:
            found = self._conn.execute(
                "select 1 from notices where department is ? and kind = ? and text = ? and time > ?",
                (department, kind, text, now - REPEAT_SECONDS),
            ).fetchone()
            if found:
                return False
            self._conn.execute(
                "insert into notices (department, kind, text, time) values (?, ?, ?, ?)",
                (department, kind, text, now),
            )
            self._conn.execute("delete from notices where id <= (select max(id) from notices) - ?", (KEEP,))
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
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [Notice(d, k, t, datetime.fromtimestamp(ts, UTC)) for d, k, t, ts in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


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
