"""The vault's wrapped data keys in PostgreSQL, one table every replica shares.

Without it each replica would keep its own ``keys.db``: a question sealed by replica A (in
the shared audit log) would not open on replica B, and an erase run on one machine would
leave the person's key alive on the others. The crypto stays in ``bot.governance.vault``;
this table stores only ``(subject_id, key_id, master_id, wrapped)`` rows.

Shredding deletes the row and then runs ``VACUUM FULL`` on the table (it is small: one
row per person), which rewrites it into a new file, so the wrapped key does not linger in
the live table's free space. Like ``keys.db`` backups, WAL archives and base backups keep
it until they expire; without the master key it is noise anyway.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import psycopg

from bot.governance.vault import KEY_COUNT_SQL, KEY_GET_SQL, KEY_PENDING_SQL, KEY_REWRAP_SQL, KeyTable
from bot.store.backend import Database
from bot.store.pg_store import PgStore

log = logging.getLogger(__name__)
VACUUM_WAIT = "2s"  # how long an erase's VACUUM FULL may wait for the key table


class PgKeyTable(PgStore, KeyTable):
    """``subject_keys`` in PostgreSQL; thread-safe (pooled autocommit connections)."""

    WHAT = "the data keys"

    def __init__(self, db: Database) -> None:
        self._open_pg(db)
        self.where = f"{db.url.redacted} (subject_keys)"

    def get(self, sid: str) -> tuple[bytes, str, bytes] | None:
        with self._pg(tx=False) as c:
            row = c.execute(KEY_GET_SQL, [sid]).fetchone()
        return None if row is None else (bytes(row[0]), str(row[1]), bytes(row[2]))

    def add(self, sid: str, kid: bytes, master_id: str, wrapped: bytes) -> tuple[bytes, str, bytes]:
        with self._pg(tx=False) as c:
            row = c.execute(
                "insert into subject_keys (subject_id, key_id, master_id, wrapped, created) "
                "values (?, ?, ?, ?, ?) on conflict (subject_id) do nothing "
                "returning key_id, master_id, wrapped",
                [sid, kid, master_id, wrapped, time.time()],
            ).fetchone()
            if row is None:  # another replica made this subject's key first: use theirs
                row = c.execute(KEY_GET_SQL, [sid]).fetchone()
        assert row is not None
        return bytes(row[0]), str(row[1]), bytes(row[2])

    def delete(self, sid: str) -> bytes | None:
        with self._pg(tx=False) as c:
            row = c.execute(
                "delete from subject_keys where subject_id = ? returning key_id", [sid]
            ).fetchone()
            if row is not None:
                # Outside a transaction (autocommit): VACUUM cannot run inside one. It needs
                # the table to itself for a moment; waiting long for that would stall every
                # replica's seal and open queued behind it, so it gives up after VACUUM_WAIT.
                try:
                    c.execute(f"set lock_timeout = '{VACUUM_WAIT}'")
                    c.execute("vacuum full subject_keys")
                except psycopg.Error:  # busy, or not the table's owner: the row is gone all the same
                    log.warning("could not vacuum subject_keys after an erase; autovacuum will reclaim it")
                finally:
                    with contextlib.suppress(psycopg.Error):  # the connection goes back to the pool
                        c.execute("reset lock_timeout")
        return None if row is None else bytes(row[0])

    def count_by_master(self) -> dict[str, int]:
        with self._pg(tx=False) as c:
            rows = c.execute(KEY_COUNT_SQL).fetchall()
        return {str(m): int(n) for m, n in rows}

    def rewrap_batch(
        self, current: str, batch: int, rewrap: Callable[[str, bytes, str, bytes], bytes]
    ) -> int:
        """Rows locked (``FOR UPDATE``) while re-wrapped: two replicas rotating at once
        take turns instead of writing the same row twice."""
        with self._pg() as c:
            rows = c.execute(KEY_PENDING_SQL + " for update", [current, batch]).fetchall()
            updates = [
                [current, rewrap(str(sid), bytes(kid), str(mid), bytes(wrapped)), sid]
                for sid, kid, mid, wrapped in rows
            ]
            for u in updates:
                c.execute(KEY_REWRAP_SQL, u)
        return len(updates)
