"""SQLite plumbing shared by every store: one way to open a database, one way to filter.

Each store owns its tables; this module owns only how connections are made (WAL, busy
timeout, autocommit so stores control their own ``BEGIN IMMEDIATE`` transactions).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.errors import StoreError


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with a busy timeout; shared by every store module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def open_db(path: Path, schema: str, what: str) -> sqlite3.Connection:
    """``connect`` and create the store's tables; any SQLite failure is a StoreError naming
    ``what`` ("the notices database") and the path, never SQLite's own text."""
    try:
        conn = connect(path)
        conn.executescript(schema)
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open {what} at {path}.") from exc
    return conn


def where(**filters: str | None) -> tuple[str, list[str]]:
    """`` where a = ? and b = ?`` for the filters that are set (empty when none are)."""
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", []
    return " where " + " and ".join(f"{k} = ?" for k in used), list(used.values())
