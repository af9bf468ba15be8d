"""The scheduler's state in PostgreSQL (``DEPTBOT_DATABASE_URL``): leases and job slots
(``bot.ops.locks``), alert claims (``bot.store.alerts``) and the eval history
(``bot.store.evalruns``), shared by every replica.

The statements are the SQLite stores' own (one conditional upsert or insert each), so no
advisory lock is needed: PostgreSQL locks the conflicting row and re-checks the condition.

Why a lease table and not session advisory locks: a lease outlives any one transaction (a
refresh and the evals after it take minutes) and must lapse when its holder dies. A
session lock would pin one pooled connection per held job for that long, and would stay
held until the server notices a dead peer (TCP keepalive, minutes to hours); a row with a
holder and an expiry lapses on time, can be renewed from any connection, and can be read
(``holder``) by ``deptbot`` commands and tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from bot.ops.locks import LeaseLocks
from bot.store.alerts import AlertLog
from bot.store.backend import Database, Qmark
from bot.store.evalruns import EvalRunStore
from bot.store.pg_store import PgStore


class _PgOps(PgStore):
    """One transaction per session; the base classes' statements need nothing more."""

    WHAT = "the operations state"

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._open_pg(db)

    def _session(self, *, write: bool = False) -> AbstractContextManager[Qmark]:
        return self._pg()


class PgLeaseLocks(_PgOps, LeaseLocks):
    """Leases and job slots for every replica on the database."""

    WHAT = "the scheduler leases"

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(db, clock=clock)
        self.where = db.url.redacted


class PgAlertLog(_PgOps, AlertLog):
    """Alert claims for every replica on the database."""

    WHAT = "the alert log"


class PgEvalRunStore(_PgOps, EvalRunStore):  # type: ignore[misc]  # path: a str naming the database
    """The eval history for every replica on the database."""

    WHAT = "the eval runs"

    def close(self) -> None:
        """Nothing to release: the pool is the process's (``bot.store.backend``)."""
