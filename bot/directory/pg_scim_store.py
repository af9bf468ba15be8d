"""SCIM users and groups in PostgreSQL (migration 0007), shared by every replica: the
identity provider may push to any of them, and each replica's directory sync reads the
same groups. Every statement and rule is ``bot.directory.scim_store.ScimStore``'s; here
only how an operation holds its transaction differs.

A SCIM operation (a PATCH's read-modify-write, a create with its uniqueness check) is one
transaction on one pooled connection that first takes a transaction-level advisory lock,
so operations from several replicas queue as ``BEGIN IMMEDIATE`` makes them queue on one
SQLite file. Reads (the directory sync) take one REPEATABLE READ snapshot, so a group
walked through its nested groups is never seen half-updated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row

from bot.directory.scim_store import Row, ScimStore
from bot.errors import StoreError
from bot.store.backend import Database, Qmark, qmark

SCIM_LOCK = 0x6465707462_07  # orders SCIM writers across replicas


class PgScimStore(ScimStore):
    """``ScimStore`` on PostgreSQL; thread-safe (one operation at a time per store, as on SQLite)."""

    NO_LIMIT = None  # LIMIT NULL: no limit
    TAKEN = (psycopg.errors.UniqueViolation,)

    def __init__(self, db: Database) -> None:  # the SQLite connection is not opened
        self.db = db
        self.path = f"{db.url.redacted} (SCIM)"  # type: ignore[assignment]  # what messages name
        self._lock = threading.RLock()
        self._depth = 0
        self._c: Qmark | None = None
        try:
            db.ready()
        except psycopg.Error as exc:
            raise StoreError(f"Cannot open the SCIM directory in {db.url.redacted}.") from exc

    def close(self) -> None:
        """Nothing to release: the pool is the process's."""

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[None]:
        with self._lock:
            self._depth += 1
            try:
                if self._depth > 1:
                    yield
                    return
                with self.db.connection() as conn, conn.transaction():
                    if begin == "BEGIN IMMEDIATE":
                        conn.execute("select pg_advisory_xact_lock(%s)", [SCIM_LOCK])
                    else:
                        conn.execute("set transaction isolation level repeatable read")
                    self._c = Qmark(conn)
                    try:
                        yield
                    finally:
                        self._c = None
            except psycopg.Error as exc:
                raise StoreError("Could not read or write the SCIM directory.") from exc
            finally:
                self._depth -= 1

    def _now(self) -> Qmark:
        if self._c is None:
            raise RuntimeError("a SCIM statement outside an operation")
        return self._c

    def _ex(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._now().execute(sql, params)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._now().conn.cursor(row_factory=dict_row) as cur:
            cur.execute(qmark(sql), list(params))
            return cast(list[Row], cur.fetchall())
