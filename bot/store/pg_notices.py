"""Admin notices in PostgreSQL: one list for every replica, each notice told once.

The refresher and the configuration watcher run on every replica and see the same problem
at about the same time; the check-then-insert of ``bot.store.notices.Notices.notify`` runs
under one transaction-level advisory lock, so two replicas never both store it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from bot.store.backend import Database, Qmark
from bot.store.notices import Notices
from bot.store.pg_store import PgStore

NOTICES_LOCK = 0x6465707462_03  # orders notice writers across replicas


class PgNotices(PgStore, Notices):
    """The ``AdminNotices`` port in PostgreSQL; thread-safe (pooled connections)."""

    WHAT = "the admin notices"

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._open_pg(db)

    def _session(self, *, write: bool = False) -> AbstractContextManager[Qmark]:
        return self._pg(lock=NOTICES_LOCK if write else None)
