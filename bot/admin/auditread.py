"""Read-only access to the audit and usage databases for the admin console.

The console never writes there, so it opens its own ``mode=ro`` connections rather than
borrowing the stores' (whose lock serialises the bot's writes): a slow report cannot
delay an answer's audit row, and a bug here cannot change the chain. Every query the
console runs filters on ONE department in SQL (``where department = ?``), so rows of
other departments never even reach Python.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from bot.core.types import Status

QUESTION_STATUSES = tuple(s.value for s in Status)
"""Audit ``status`` values that are questions (refresh, retention and privacy rows are not)."""

IN_QUESTIONS = f"status in ({', '.join(repr(s) for s in QUESTION_STATUSES)})"


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to ``path``; None when the database does not exist yet (a
    department nobody asked is a page of zeros, not an error)."""
    if not path.is_file():
        yield None
        return
    conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=10)
    try:
        conn.execute("PRAGMA query_only=ON")
        yield conn
    finally:
        conn.close()


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("select 1 from sqlite_master where type = 'table' and name = ?", [name]).fetchone()
    return row is not None


def window(today: date, days: int) -> tuple[date, str]:
    """The first UTC day of a ``days``-long window ending today, and the ISO prefix audit
    times are compared with (``time >= '2026-09-02'`` holds for every moment of that day)."""
    start = today - timedelta(days=days - 1)
    return start, start.isoformat()


def parse_time(value: object) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
