"""Which backend holds shared state, and the PostgreSQL plumbing when it is PostgreSQL.

One setting switches it: ``DEPTBOT_DATABASE_URL=postgresql://…`` moves the shared stores
(audit, usage and budgets, event de-duplication so far) to PostgreSQL so several replicas
on several machines agree; unset, every store stays the embedded SQLite default.

This module owns three things, so the stores own only their SQL:

- parsing the URL (a clear ConfigError naming the variable; the password is never shown,
  ``DatabaseUrl.redacted`` is what logs and errors may print);
- one connection pool per URL per process (``psycopg_pool``, limits from ``[database]``),
  shared by every store so a replica holds ``pool_max_size`` connections, not one per store;
- versioned schema migrations: numbered SQL files packaged in ``bot/store/migrations``,
  applied in order under a session advisory lock, so every replica may run them at start
  (``deptbot db migrate`` does the same explicitly): the first applies, the rest wait and
  find nothing left to do.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from bot.errors import ConfigError, StoreError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

ENV_VAR = "DEPTBOT_DATABASE_URL"
SCHEMES = ("postgresql", "postgres")
MIGRATIONS_PACKAGE = "bot.store.migrations"
MIGRATE_LOCK = 0x6465707462_01  # "deptb" + 1: the advisory lock every `db migrate` queues on
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

log = logging.getLogger(__name__)


# ── the setting ──────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class DatabaseUrl:
    """A checked ``postgresql://`` URL. ``conninfo`` holds the password: pass it to the
    driver only; show ``redacted``."""

    conninfo: str = field(repr=False)
    redacted: str

    def __str__(self) -> str:
        return self.redacted


def _redact(parts: Any) -> str:
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = unquote(parts.username) if parts.username else ""
    auth = f"{user}{':***' if parts.password else ''}@" if user or parts.password else ""
    socket = ""
    for pair in parts.query.split("&"):
        if pair.startswith("host="):
            socket = f" (socket {unquote(pair[5:])})"
    return f"{parts.scheme}://{auth}{host}{parts.path}{socket}"


def database_url(env: Mapping[str, str]) -> DatabaseUrl | None:
    """``DEPTBOT_DATABASE_URL`` checked; None when unset or blank (the SQLite default).

    Only the shape is checked here (scheme, port, database name); whether the server
    answers is the pool's business. Errors name the variable and never echo the value,
    which may hold a password."""
    text = env.get(ENV_VAR, "").strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        _ = parts.port  # ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigError(
            "is not a valid URL (expected postgresql://user:password@host:5432/db)", file=ENV_VAR
        ) from None
    if parts.scheme not in SCHEMES:
        shown = parts.scheme or "no scheme"
        raise ConfigError(
            f"must start with postgresql:// (got {shown}://); leave it unset for the embedded SQLite default",
            file=ENV_VAR,
        )
    if not parts.path.strip("/"):
        raise ConfigError("names no database (postgresql://host:5432/DATABASE)", file=ENV_VAR)
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigError("names no host (postgresql://HOST:5432/db, or ?host=/socket/folder)", file=ENV_VAR)
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ConfigError(
            "needs the PostgreSQL driver: pip install 'deptbot[postgres]' (or unset it for SQLite)",
            file=ENV_VAR,
        ) from None
    try:
        conninfo_to_dict(text)
    except Exception:  # psycopg's own text may quote the URL, password included
        raise ConfigError("cannot be read as a PostgreSQL connection string", file=ENV_VAR) from None
    return DatabaseUrl(conninfo=text, redacted=_redact(parts))


@dataclass(frozen=True)
class PoolLimits:
    """``[database]``: connections per process, and how long a request waits for one."""

    min_size: int = 1
    max_size: int = 10
    connect_timeout: float = 5.0  # seconds to wait for a connection (pool) or the server
    statement_timeout: float = 30.0  # seconds; 0 = none. A stuck query must not hold a request

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> PoolLimits:
        d = cls()
        return cls(
            min_size=int(section.get("pool_min_size", d.min_size)),
            max_size=int(section.get("pool_max_size", d.max_size)),
            connect_timeout=float(section.get("connect_timeout_seconds", d.connect_timeout)),
            statement_timeout=float(section.get("statement_timeout_seconds", d.statement_timeout)),
        )


# ── placeholders ─────────────────────────────────────────────────────────────────────


@lru_cache(maxsize=512)
def qmark(sql: str) -> str:
    """SQL written for SQLite (``?`` placeholders) as psycopg wants it (``%s``); lets the
    stores share statements between the backends. No statement here quotes a ``?``."""
    return sql.replace("%", "%%").replace("?", "%s")


class Qmark:
    """A psycopg connection that takes ``?`` placeholders, like ``sqlite3.Connection``."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.conn.execute(qmark(sql), list(params))


# ── the pool ─────────────────────────────────────────────────────────────────────────


class Database:
    """One pool of autocommit connections; stores open transactions explicitly (``tx``).

    Connection failures become StoreError naming the redacted URL, never the driver's
    text, so a request refuses ("cannot write the audit log") rather than runs unaudited."""

    def __init__(self, url: DatabaseUrl, limits: PoolLimits | None = None) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self.limits = limits or PoolLimits()
        options = (
            {"options": f"-c statement_timeout={int(self.limits.statement_timeout * 1000)}"}
            if self.limits.statement_timeout > 0
            else {}
        )
        self.pool: ConnectionPool = ConnectionPool(
            url.conninfo,
            min_size=self.limits.min_size,
            max_size=max(self.limits.min_size, self.limits.max_size),
            timeout=self.limits.connect_timeout,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(self.limits.connect_timeout)),
                **options,
            },
            name="deptbot",
            open=False,
        )
        self._migrated = False
        self._lock = threading.Lock()
        self._opened = False

    def _open(self) -> None:
        with self._lock:
            if self._opened:
                return
            self.pool.open(wait=False)
            self._opened = True

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit); StoreError when the server cannot be reached."""
        import psycopg
        from psycopg_pool import PoolTimeout

        self._open()
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise StoreError(f"Cannot reach the database at {self.url.redacted} ({ENV_VAR}).") from None
        except psycopg.OperationalError as exc:
            raise StoreError(
                f"The database at {self.url.redacted} did not answer in time, or the connection was lost."
            ) from exc

    @contextmanager
    def tx(self, *, isolation: str | None = None) -> Iterator[Qmark]:
        """One transaction on a pooled connection, committed when the block ends."""
        import psycopg

        with self.connection() as conn:
            if isolation:
                conn.isolation_level = getattr(psycopg.IsolationLevel, isolation)
            try:
                with conn.transaction():
                    yield Qmark(conn)
            finally:
                if isolation:
                    conn.isolation_level = None

    def rows(self, sql: str, args: Sequence[Any], *, what: str) -> list[dict[str, Any]]:
        """A read as dicts (column name → value) in one short transaction; a driver error
        becomes StoreError("Could not read {what}.")."""
        import psycopg

        try:
            with self.tx() as c:
                cur = c.execute(sql, args)
                names = [d[0] for d in cur.description or ()]
                return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        except psycopg.Error as exc:
            raise StoreError(f"Could not read {what}.") from exc

    def ready(self) -> None:
        """Apply pending migrations once per process (every store calls this on open)."""
        if not self._migrated:
            migrate(self)
            self._migrated = True

    def close(self) -> None:
        with self._lock:
            if self._opened:
                self.pool.close()
                self._opened = False


_SHARED: dict[str, Database] = {}
_SHARED_LOCK = threading.Lock()


def shared_database(url: DatabaseUrl, limits: PoolLimits | None = None) -> Database:
    """The process's one ``Database`` for ``url`` (created, migrated, on first use)."""
    with _SHARED_LOCK:
        db = _SHARED.get(url.conninfo)
        if db is None:
            db = _SHARED[url.conninfo] = Database(url, limits)
    db.ready()
    return db


@atexit.register
def close_shared() -> None:
    """Close every shared pool (at exit; tests call it between servers)."""
    with _SHARED_LOCK:
        dbs = list(_SHARED.values())
        _SHARED.clear()
    for db in dbs:
        db.close()


def database_for(settings: Any) -> Database | None:
    """The shared PostgreSQL database the settings ask for; None for the SQLite default."""
    url = database_url(settings.env)
    if url is None:
        return None
    return shared_database(url, PoolLimits.from_section(settings.section("database")))


# ── migrations ───────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The packaged migrations in version order (``0001_name.sql``, …); a gap or a
    duplicate version is a packaging mistake and raises at once."""
    found = []
    for item in resources.files(MIGRATIONS_PACKAGE).iterdir():
        m = _MIGRATION_NAME.match(item.name)
        if m:
            found.append(Migration(int(m.group(1)), item.name, item.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for n, mig in enumerate(found, 1):
        if mig.version != n:
            raise AssertionError(f"migration {mig.name}: expected version {n:04d} (a gap or a duplicate)")
    return found


def migrate(db: Database) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction, and return their
    names. A session advisory lock makes replicas starting together take turns; a
    database ahead of this release (a newer replica migrated it) is left alone."""
    applied: list[str] = []
    try:
        with db.connection() as conn:
            conn.execute("select pg_advisory_lock(%s)", [MIGRATE_LOCK])
            try:
                conn.execute(
                    "create table if not exists schema_migrations (version integer primary key, "
                    "name text not null, applied_at timestamptz not null default now())"
                )
                done = {int(r[0]) for r in conn.execute("select version from schema_migrations")}
                for m in migrations():
                    if m.version in done:
                        continue
                    with conn.transaction():
                        conn.execute(m.sql.encode())  # bytes: no placeholder parsing, many statements
                        conn.execute(
                            "insert into schema_migrations (version, name) values (%s, %s)",
                            [m.version, m.name],
                        )
                    applied.append(m.name)
                    log.info("database migration %s applied", m.name)
            finally:
                conn.execute("select pg_advisory_unlock(%s)", [MIGRATE_LOCK])
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"Could not migrate the database at {db.url.redacted}.") from exc
    return applied


def schema_version(db: Database) -> int:
    with db.connection() as conn:
        exists = conn.execute("select to_regclass('schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return 0
        row = conn.execute("select coalesce(max(version), 0) from schema_migrations").fetchone()
    return int(row[0]) if row else 0


def vacuum_tables(db: Database, tables: Iterable[str]) -> bool:
    """Plain VACUUM of ``tables`` after an erase (it never blocks the replicas' writes), so
    deleted or rewritten rows' old versions are pruned; False when it could not run (the
    erase itself is done, and its receipt says the traces are not yet gone)."""
    import psycopg

    try:
        with db.connection() as conn:
            for table in tables:
                conn.execute(f"vacuum {table}")  # autocommit: VACUUM cannot run in a transaction
    except (StoreError, psycopg.Error) as exc:
        log.warning("vacuum after an erase failed (%s)", type(exc).__name__)
        return False
    return True
