"""The admin console's sign-in links, sessions, failed sign-ins and audit trail in
PostgreSQL (``DEPTBOT_DATABASE_URL``), shared by every replica.

The statements are ``AdminSessionStore``'s own: a link is still redeemed by one
conditional ``UPDATE … RETURNING`` (PostgreSQL row-locks it, and the second updater
re-checks ``used IS NULL`` and finds it used), so two replicas given the same link cannot
both sign someone in. Only hashes of tokens and session ids are stored, as in SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from bot.store.admin_sessions import EVENT_DAYS, AdminSessionStore
from bot.store.backend import Database, Qmark
from bot.store.pg_store import PgStore


class PgAdminSessionStore(PgStore, AdminSessionStore):  # type: ignore[misc]  # path: a str naming the database, not a file
    """``AdminSessionStore`` on a shared pool; thread-safe (one pooled connection per call)."""

    WHAT = "the admin sessions"
    _ROW_ORDER = "id"

    def __init__(
        self, db: Database, *, clock: Callable[[], float] = time.time, event_days: int = EVENT_DAYS
    ) -> None:
        self._start(clock, event_days)
        self._open_pg(db)
        self.cleanup()

    def _session(self, *, write: bool = False) -> AbstractContextManager[Qmark]:
        return self._pg()

    def close(self) -> None:
        """Nothing to release: the pool is the process's (``bot.store.backend``)."""
