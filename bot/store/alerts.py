"""Which operations alerts were sent, in ``<state>/ops.sqlite3`` (or PostgreSQL with
``DEPTBOT_DATABASE_URL``), so each condition is told at most once per department per day —
across processes, replicas and restarts.

A process claims (department, condition, day) before posting, with one conditional
insert; a second process (or the same one after a restart) finds the claim and stays
quiet. A post that fails gives its claim back, so the next check tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.store.sqlite_store import SqliteStore

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


# Written once for both backends (bot.store.pg_ops runs them with %s placeholders).
_CLAIM_SQL = (
    "insert into alerts_sent (department, condition, day, time, detail) values (?, ?, ?, ?, ?) "
    "on conflict (department, condition, day) do nothing"
)
_TRIM_SQL = "delete from alerts_sent where time < ?"
_GIVE_BACK_SQL = "delete from alerts_sent where department = ? and condition = ? and day = ?"


class AlertLog:
    """Claims per (department, condition, day); ``day`` is any period label ("2026-01-05",
    or "2026-W02" for the weekly digest).

    Written once for every backend: ``SqliteAlertLog`` (``<state>/ops.sqlite3``) and
    ``bot.store.pg_ops.PgAlertLog`` (every replica on ``DEPTBOT_DATABASE_URL``, so an alert
    is posted once however many replicas run the check). A claim is one conditional insert:
    whoever inserts first posts."""

    _clock: Callable[[], float]

    def _session(self, *, write: bool = False) -> AbstractContextManager[Any]:
        raise NotImplementedError

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, clock: Callable[[], float] = time.time) -> AlertLog:
        """The SQLite log of ``state_dir`` (``open_alert_log`` picks by the settings)."""
        return SqliteAlertLog(path=Path(state_dir) / FILE, clock=clock)

    def claim(self, department: str, condition: str, day: str, detail: str = "") -> bool:
        """True when nobody has claimed this condition for this department and day yet."""
        now = self._clock()
        with self._session(write=True) as conn:
            first = conn.execute(_CLAIM_SQL, (department, condition, day, now, detail[:200])).rowcount == 1
            conn.execute(_TRIM_SQL, (now - KEEP_DAYS * 86400,))
        return bool(first)

    def give_back(self, department: str, condition: str, day: str) -> None:
        with self._session(write=True) as conn:
            conn.execute(_GIVE_BACK_SQL, (department, condition, day))

    def sent(self, department: str | None = None) -> list[tuple[str, str, str, datetime]]:
        """(department, condition, day, when) newest first."""
        sql = "select department, condition, day, time from alerts_sent"
        args: tuple[str, ...] = ()
        if department is not None:
            sql, args = sql + " where department = ?", (department,)
        with self._session() as conn:
            rows = conn.execute(sql + " order by time desc", args).fetchall()
        return [(d, c, day, datetime.fromtimestamp(t, UTC)) for d, c, day, t in rows]

    def close(self) -> None:
        """Nothing to release by default (a shared pool)."""


class SqliteAlertLog(SqliteStore, AlertLog):
    """Claims in ``<state>/ops.sqlite3``: every process sharing the state folder."""

    def __init__(self, *, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._open_sqlite(path, _SCHEMA)


def open_alert_log(settings: Any, *, clock: Callable[[], float] = time.time) -> AlertLog:
    """The alert claims of ``settings``: PostgreSQL when ``DEPTBOT_DATABASE_URL`` is set,
    else ``<state>/ops.sqlite3``."""
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is None:
        return AlertLog.in_state_dir(settings.state_dir, clock=clock)
    from bot.store.pg_ops import PgAlertLog

    return PgAlertLog(db, clock=clock)
