"""SQLite plumbing shared by every store: one way to open a database, one way to filter.

Each store owns its tables; this module owns only how connections are made (WAL, busy
timeout, autocommit so stores control their own ``BEGIN IMMEDIATE`` transactions).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bot.errors import StoreError

T = TypeVar("T")
LOCKED_TRIES = 100  # x 50 ms: processes starting together settle well within this


def _settled(step: Callable[[], T]) -> T:
    """Run ``step``, retrying while SQLite says the database is locked or busy.

    Switching a new database to WAL, and creating tables in it, can fail at once with
    "database is locked" when other processes open the same new file at the same moment:
    SQLite does not call the busy handler there (it could deadlock). Two replicas or a CLI
    command started beside ``serve`` hit this; retrying briefly is the documented remedy.
    """
    for attempt in range(LOCKED_TRIES):
        try:
            return step()
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if attempt == LOCKED_TRIES - 1 or ("locked" not in text and "busy" not in text):
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with a busy timeout; shared by every store module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    _settled(lambda: conn.execute("PRAGMA journal_mode=WAL"))
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def open_db(path: Path, schema: str, what: str) -> sqlite3.Connection:
    """``connect`` and create the store's tables; any SQLite failure is a StoreError naming
    ``what`` ("the notices database") and the path, never SQLite's own text."""
    try:
        conn = connect(path)
        _settled(lambda: conn.executescript(schema))
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open {what} at {path}.") from exc
    return conn


def where(**filters: str | None) -> tuple[str, list[str]]:
    """`` where a = ? and b = ?`` for the filters that are set (empty when none are)."""
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", []
    return " where " + " and ".join(f"{k} = ?" for k in used), list(used.values())
