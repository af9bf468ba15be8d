"""The Teams conversation state in PostgreSQL (migration 0006), shared by every replica:
a follow-up answered by replica B sees the turns replica A recorded, a 👍 on a card posted
by A is mapped to its request on B, a proactive 1:1 message can go out from any replica,
and one privacy erase removes the person's rows for all of them.

The rows, the sealing and every rule are ``bot.store.teams_state``'s (written once, SQL both
engines accept); only how statements run and how old rows are removed differ here. Text is
sealed under data keys in the shared key table (``bot.store.pg_keys``), so any replica opens
what another sealed and an erase's shred reaches them all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bot.errors import StoreError
from bot.store.backend import Database, vacuum_tables
from bot.store.pg_store import PgStore
from bot.store.teams_state import Limits, TeamsStore

if TYPE_CHECKING:
    from bot.governance.vault import Vault

log = logging.getLogger(__name__)
CLEANUP_LOCK = 0x6465707462_06  # one replica at a time trims the Teams tables
TABLES = ("teams_history", "teams_replies", "teams_references", "teams_people")


class PgTeamsState(PgStore, TeamsStore):  # type: ignore[misc]  # path: str here, a Path in SQLite
    """``TeamsStore`` on PostgreSQL; thread-safe (pooled connections)."""

    WHAT = "the Teams conversation state"

    def __init__(
        self,
        db: Database,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        vault: Vault | None = None,
    ) -> None:
        self._init_store(limits=limits or Limits(), clock=clock, vault=vault)
        self._open_pg(db)
        self.cleanup()

    def read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._pg() as c:
            return list(c.execute(sql, params).fetchall())

    def _run(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> list[int]:
        with self._pg() as c:
            return [max(c.execute(sql, params).rowcount, 0) for sql, params in statements]

    def _cleanup_now(self) -> None:
        """Expired and over-cap rows go, by whichever replica gets the lock (the others skip:
        the work is the same). A failure is logged, never raised into a chat turn."""
        try:
            with self._pg() as c:
                got = c.execute("select pg_try_advisory_xact_lock(?)", [CLEANUP_LOCK]).fetchone()
                if not (got and got[0]):
                    return
                for sql, params in self._cleanup_statements():
                    c.execute(sql, params)
        except StoreError as exc:
            log.warning("Teams state cleanup skipped (%s)", exc.user_message)

    def checkpoint(self) -> bool:
        """After an erase: prune the deleted rows' old versions (plain VACUUM, which never
        blocks the replicas' writes); WAL and backups keep them until they expire, sealed
        under keys the erase shredded."""
        return vacuum_tables(self.db, TABLES)
