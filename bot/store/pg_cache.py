"""The answer cache in PostgreSQL: a question answered on one replica is a hit on every
other. Rows are ``bot.store.cache``'s (sealed under the department's cache subject, whose
data key lives in the shared key table), and so is every rule; only eviction's SQL and
the session differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from bot.errors import StoreError
from bot.store.backend import Database, Qmark
from bot.store.cache import SealedAnswerCache
from bot.store.pg_store import PgStore

if TYPE_CHECKING:
    from bot.governance.vault import Vault


class PgAnswerCache(PgStore, SealedAnswerCache):
    """The ``AnswerCache`` port in PostgreSQL; thread-safe (pooled connections)."""

    WHAT = "the answer cache"
    EVICT_SQL = "delete from answers where key in (select key from answers order by stored desc offset ?)"

    def __init__(
        self,
        db: Database,
        *,
        ttl_seconds: float = 86400,
        max_entries: int = 10000,
        clock: Callable[[], float] = time.time,
        vault: Vault | None = None,
    ) -> None:
        self._init_cache(ttl_seconds=ttl_seconds, max_entries=max_entries, clock=clock, vault=vault)
        self._open_pg(db)

    def _default_vault(self) -> Vault:
        raise StoreError("The PostgreSQL answer cache needs the vault of its settings (vault_for).")

    def _session(self, *, write: bool = True) -> AbstractContextManager[Qmark]:
        return self._pg()
