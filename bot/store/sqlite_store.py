"""What every SQLite store with a PostgreSQL twin shares: one connection per store behind
a thread lock, and a session that is either a plain read or one ``BEGIN IMMEDIATE``
transaction (SQLite serialises writers, so another process's check-then-write waits).

The twin (``bot.store.pg_store.PgStore``) offers the same ``_session`` shape, so a base
class writes its statements once (``?`` placeholders, upserts both engines accept) and
only the opening differs. SQLite's own error text never leaves: it becomes a
``StoreError`` naming the store (``WHAT``) and its file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bot.errors import StoreError
from bot.store.db import open_db


class SqliteStore:
    """Mixed into a store kept in one SQLite file; ``WHAT`` names it ("the operations database")."""

    WHAT = "the operations database"
    path: Path

    def _open_sqlite(self, path: Path, schema: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = open_db(self.path, schema, self.WHAT)

    def _session(self, *, write: bool = False) -> AbstractContextManager[Any]:
        """The store's connection under its lock: plain statements, or (``write``) one
        ``BEGIN IMMEDIATE`` transaction."""
        return self._sqlite(write)

    @contextmanager
    def _sqlite(self, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                if not write:
                    yield self._conn
                    return
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"Could not read or write {self.WHAT} at {self.path}.") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()
