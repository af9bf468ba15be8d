"""What every PostgreSQL store shares: opening (the schema migrated once per process) and
a session that turns the driver's errors into a ``StoreError`` naming the store, never
the driver's text (which may quote the connection string)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from bot.errors import StoreError
from bot.store.backend import Database, Qmark


class PgStore:
    """Mixed into a store on PostgreSQL; ``WHAT`` names it in messages ("the answer cache")."""

    WHAT = "the shared state"
    db: Database
    path: str  # what messages and `deptbot check` name instead of a file

    def _open_pg(self, db: Database) -> None:
        self.db = db
        self.path = f"{db.url.redacted} ({self.WHAT.removeprefix('the ')})"
        try:
            db.ready()
        except psycopg.Error as exc:
            raise StoreError(f"Cannot open {self.WHAT} in {db.url.redacted}.") from exc

    @contextmanager
    def _pg(self, *, tx: bool = True, lock: int | None = None) -> Iterator[Qmark]:
        """One transaction (``tx``; first taking the advisory ``lock`` when given), or
        autocommit statements on a pooled connection."""
        try:
            if not tx:
                with self.db.connection() as conn:
                    yield Qmark(conn)
                return
            with self.db.tx() as c:
                if lock is not None:
                    c.execute("select pg_advisory_xact_lock(?)", [lock])
                yield c
        except psycopg.Error as exc:
            raise StoreError(f"Could not read or write {self.WHAT}.") from exc
