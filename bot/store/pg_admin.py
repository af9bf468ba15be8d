"""The admin console on PostgreSQL (``DEPTBOT_DATABASE_URL``): its sign-in links,
sessions, failed sign-ins and audit trail, shared by every replica (``PgAdminSessionStore``),
and its read-only view of the audit and usage records (``PgRecords``, the PostgreSQL
implementation of ``bot.admin.auditread.ConsoleRecords``, which ops alerts read too).

The statements are ``AdminSessionStore``'s own: a link is still redeemed by one
conditional ``UPDATE … RETURNING`` (PostgreSQL row-locks it, and the second updater
re-checks ``used IS NULL`` and finds it used), so two replicas given the same link cannot
both sign someone in. Only hashes of tokens and session ids are stored, as in SQLite.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg

from bot.admin.auditread import ConsoleRecords, Reader
from bot.errors import StoreError
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


WORK_MEM = "32MB"  # per sort or hash of one console read, for the length of its transaction


class PgReader(Reader):
    """One READ ONLY transaction on a pooled connection (the statements are the console's
    own, written once for both backends; here the few dialect fragments)."""

    def __init__(self, conn: Qmark, key: str) -> None:
        self.conn = conn
        self.key = key

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, args)

    def has_table(self, name: str) -> bool:
        return True  # the schema is migrated before any store opens (``Database.ready``)

    def generation(self) -> tuple[object, ...]:
        """The database, and its oldest audit row (a purge moves it; a database dropped and
        made again under the same URL starts at another random request id)."""
        oldest = self.conn.execute("select seq, request_id from requests order by seq limit 1").fetchone()
        return (self.key, *(oldest or (0, None)))

    def joined(self, expr: str) -> str:
        return f"string_agg(({expr})::text, ',')"

    def each_id(self, column: str, alias: str) -> str:
        # a list that is not JSON (never written by deptbot) yields no row instead of an error
        safe = f"case when {column} like '[%' then {column}::jsonb else '[]'::jsonb end"
        return f"lateral jsonb_array_elements_text({safe}) as {alias}(value)"

    def newest_first(self, alias: str) -> str:
        return f"({alias}.time)::timestamptz desc, {alias}.request_id desc"

    def bin(self, expr: str, bins: int) -> str:
        n = int(bins)
        return f"least(floor(least(greatest({expr}, 0.0), 1.0) * {n})::integer, {n - 1})"


class PgRecords(ConsoleRecords):
    """The audit and usage records in PostgreSQL: every replica's, in one place. Audit and
    usage share the database, so both readers are transactions on the same pool."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # caches are keyed by this; the URL holds the password, so only a digest of it
        self.key = "postgresql:" + hashlib.sha256(db.url.conninfo.encode()).hexdigest()[:16]

    def audit(self) -> AbstractContextManager[Reader | None]:
        return self._reader()

    def usage(self) -> AbstractContextManager[Reader | None]:
        return self._reader()

    @contextmanager
    def _reader(self) -> Iterator[Reader | None]:
        try:
            with self.db.tx() as c:
                c.execute("set transaction read only")
                # the grouped scans sort a department's window (75k rows for 100k-row logs):
                # at the default 4 MB they spill to disk; measured ~3x slower (bench.admin)
                c.execute(f"set local work_mem = '{WORK_MEM}'")
                yield PgReader(c, self.key)
        except psycopg.Error as exc:
            raise StoreError("Could not read the audit records.") from exc
