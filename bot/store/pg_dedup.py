"""Event de-duplication and answered threads on PostgreSQL, shared by every replica.

Slack delivers an event to whichever replica its load balancer (or Socket Mode
connection) picks, and redelivers it to another after a timeout or a restart: the claim
must be one row in one database for "exactly one reply" to hold across machines. The
statements are ``bot.store.dedup``'s; ``INSERT … ON CONFLICT`` makes each claim atomic
(a concurrent claimer waits on the row and re-checks the lease against the winner's row).
The lease columns come from the migration *_dedup_leases.sql, ``took_over`` (a claim taken
over from a holder that left it undone) from *_dedup_takeovers.sql.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from bot.errors import StoreError
from bot.store.backend import Database, Qmark
from bot.store.dedup import DEFAULT_LEASE, DEFAULT_TTL, THREAD_TTL, Dedup


class PgDedupStore(Dedup):
    """The ``DedupStore`` contract in PostgreSQL; thread-safe (pooled autocommit connections)."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = DEFAULT_TTL,
        thread_ttl: float = THREAD_TTL,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.path = f"{db.url.redacted} (chat state)"
        self._init_dedup(ttl=ttl, thread_ttl=thread_ttl, lease=lease, clock=clock)
        try:
            db.ready()
            self.cleanup()
        except psycopg.Error as exc:
            raise StoreError(f"Cannot open the chat state tables in {db.url.redacted}.") from exc

    @contextmanager
    def _session(self) -> Iterator[Qmark]:
        """Autocommit: each statement is its own transaction (a claim is one upsert)."""
        try:
            with self.db.connection() as conn:
                yield Qmark(conn)
        except psycopg.Error as exc:
            raise StoreError("Could not read or write the chat state.") from exc
