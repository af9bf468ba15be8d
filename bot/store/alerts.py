"""Which operations alerts were sent, in ``<state>/ops.sqlite3``, so each condition is told
at most once per department per day — across processes and restarts.

A process claims (department, condition, day) before posting, inside one ``BEGIN
IMMEDIATE``; a second process (or the same one after a restart) finds the claim and stays
quiet. A post that fails gives its claim back, so the next check tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.store.db import open_db

FILE = "ops.sqlite3"
KEEP_DAYS = 120

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts_sent (
    department TEXT NOT NULL,
    condition TEXT NOT NULL,
    day TEXT NOT NULL,
    time REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (department, condition, day)
);
"""


class AlertLog:
    """Claims per (department, condition, day); ``day`` is any period label ("2026-01-05",
    or "2026-W02" for the weekly digest)."""

    def __init__(self, *, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = open_db(self.path, _SCHEMA, "the operations database")

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, clock: Callable[[], float] = time.time) -> AlertLog:
        return cls(path=Path(state_dir) / FILE, clock=clock)

    def claim(self, department: str, condition: str, day: str, detail: str = "") -> bool:
        """True when nobody has claimed this condition for this department and day yet."""
        now = self._clock()
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "insert or ignore into alerts_sent (department, condition, day, time, detail)"
                    " values (?, ?, ?, ?, ?)",
                    (department, condition, day, now, detail[:200]),
                )
                conn.execute("delete from alerts_sent where time < ?", (now - KEEP_DAYS * 86400,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return cur.rowcount == 1

    def give_back(self, department: str, condition: str, day: str) -> None:
        with self._lock:
            self._conn.execute(
                "delete from alerts_sent where department = ? and condition = ? and day = ?",
                (department, condition, day),
            )

    def sent(self, department: str | None = None) -> list[tuple[str, str, str, datetime]]:
        """(department, condition, day, when) newest first."""
        sql = "select department, condition, day, time from alerts_sent"
        args: tuple[str, ...] = ()
        if department is not None:
            sql, args = sql + " where department = ?", (department,)
        with self._lock:
            rows = self._conn.execute(sql + " order by time desc", args).fetchall()
        return [(d, c, day, datetime.fromtimestamp(t, UTC)) for d, c, day, t in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
