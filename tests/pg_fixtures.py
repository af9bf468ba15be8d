"""A real PostgreSQL for any test, as a pytest plugin (``tests/conftest.py`` loads it).

``pgserver`` (the wheel bundles PostgreSQL 16 and pgvector) is started once per process in
a temporary folder and reached over a unix socket only (it listens on no TCP port), so CI
needs no system install. Each test gets a fresh database cloned from a migrated template
(``create database … template``, done ahead on a worker thread): isolation costs a clone
(0.1–0.4 s, mostly hidden behind the previous test), not a migration run.

The server is a process-wide singleton, not just a session fixture, because modules
import these fixtures by name (``from tests.store.conftest import pg_server, pg_url``):
each import registers another fixture definition, and without the singleton each would
start its own server.

``db_backend`` runs a test once per backend (``sqlite``, ``postgresql``): its ``env`` is
what a deployment would set (``DEPTBOT_DATABASE_URL`` to a fresh database, or nothing),
and ``dump(state_dir)`` is every stored row as text, for the canary checks. (The backend
contract tests in ``tests/store`` keep their own ``backend`` fixture, which opens stores.)
"""

from __future__ import annotations

import itertools
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.governance.chain import ENV_VAR as AUDIT_KEY_VAR
from bot.store.backend import ENV_VAR, Database, DatabaseUrl, close_shared, database_url, migrate

_NAMES = itertools.count(1)
_LOCK = threading.Lock()
_SERVER: PgServer | None = None
_STOP: list[object] = []  # (pgserver handle, folder) of the running server, for the exit hook

# The knowledge index holds every department's text by design (access is enforced when it
# is read), so the canary checks skip its tables: ``kb_`` (migration 0005). Every other
# table, including ones added later, is checked.
KNOWLEDGE_PREFIX = "kb_"
INDEXES = "indexes"  # the same index as files, in the state folder
AUDIT_KEY = "5a" * 32  # DEPTBOT_AUDIT_KEY for the PostgreSQL runs (hex, 32 bytes)


class PgServer:
    """The process's server: its base URL and how long it took to start.

    ``fresh`` hands out databases a worker thread cloned ahead of time (``SPARES`` of
    them): a clone takes 0.1–0.4 s, which would otherwise be most of a short test's time,
    and the clone for the next test runs while this one does. Drops run there too."""

    SPARES = 2

    def __init__(self, uri: str, started_in: float) -> None:
        self.uri = uri  # postgresql://postgres:@/postgres?host=<socket folder>
        self.started_in = started_in
        self._cloner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-clone")
        self._spares: deque[Future[str]] = deque()
        self._spares_lock = threading.Lock()

    def url(self, database: str) -> str:
        return self.uri.replace("/postgres?", f"/{database}?", 1)

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(sql.encode())

    def _clone(self) -> str:
        name = f"t{next(_NAMES)}"
        self.admin(f"create database {name} template deptbot_template")
        return self.url(name)

    def fresh(self) -> str:
        """A new database cloned from the migrated template; its URL."""
        with self._spares_lock:
            while len(self._spares) < self.SPARES + 1:
                self._spares.append(self._cloner.submit(self._clone))
            ready = self._spares.popleft()
        return ready.result(timeout=120)

    def stop_cloning(self) -> None:
        with self._spares_lock:
            self._spares.clear()
        self._cloner.shutdown(wait=True, cancel_futures=True)

    def drop(self, url: str) -> None:
        """Drop a test's database, on the worker thread: nothing waits for it."""
        name = url.split("?", 1)[0].rsplit("/", 1)[1]
        self._cloner.submit(self.admin, f"drop database {name} with (force)")


def _start() -> PgServer:
    pgserver = pytest.importorskip("pgserver", reason="pip install -e '.[dev]' brings pgserver")
    # Not under pytest's basetemp: run as root, pgserver starts PostgreSQL as its own
    # "pgserver" user, which must traverse the folder, and every pytest start resets
    # /tmp/pytest-of-<user> to 0700 (a parallel run would cut the server off).
    folder = Path(tempfile.mkdtemp(prefix="deptbot-pg-")) / "data"
    t0 = time.perf_counter()
    server = pgserver.get_server(folder, cleanup_mode="delete")
    _STOP[:] = [server, folder]
    pg = PgServer(server.get_uri(), time.perf_counter() - t0)
    # A throwaway cluster: durability only costs test time (create database checkpoints,
    # every commit waits for the disk). Each is a reload-time setting, no restart.
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        pg.admin(f"alter system set {setting} = off")
    pg.admin("select pg_reload_conf()")
    pg.admin("create database deptbot_template")
    template = Database(checked_url(pg.url("deptbot_template")))
    migrate(template)
    template.close()
    return pg


def shared_server() -> PgServer:
    """The one server of this process, started on first use."""
    global _SERVER
    with _LOCK:
        if _SERVER is None:
            _SERVER = _start()
        return _SERVER


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the server (if a test started it) when pytest ends."""
    global _SERVER
    if not _STOP:
        return
    server, folder = _STOP
    _STOP.clear()
    if _SERVER is not None:
        _SERVER.stop_cloning()
    _SERVER = None
    close_shared()
    server.cleanup()  # type: ignore[attr-defined]
    shutil.rmtree(Path(str(folder)).parent, ignore_errors=True)


def checked_url(url: str) -> DatabaseUrl:
    parsed = database_url({ENV_VAR: url})
    assert parsed is not None
    return parsed


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    return shared_server()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, migrated database for one test; its URL."""
    url = pg_server.fresh()
    yield url
    close_shared()
    pg_server.drop(url)


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    db = Database(checked_url(pg_url))
    db.ready()
    yield db
    db.close()


# ── one test, both backends ──────────────────────────────────────────────────────────


class DbBackend:
    """Where shared state lives for one test: ``env`` selects it like a deployment does."""

    def __init__(self, name: str, url: str = "") -> None:
        self.name, self.url = name, url

    @property
    def env(self) -> dict[str, str]:
        """On PostgreSQL, the database and the audit chain key every replica must share
        (a replica refuses to invent its own there); nothing for the SQLite default."""
        return {ENV_VAR: self.url, AUDIT_KEY_VAR: AUDIT_KEY} if self.url else {}

    def dump(self, state_dir: Path) -> str:
        """Every row this backend stores, as text: each SQLite file in ``state_dir`` (both
        backends keep some files there; the index's ``indexes/`` is skipped) and, for
        PostgreSQL, every table but the knowledge index's. Bytes are shown as Python
        reprs, so plain text in a ``bytea`` column is found too."""
        state = Path(state_dir)
        files = [p for p in sorted(state.rglob("*")) if INDEXES not in p.relative_to(state).parts]
        parts = [_dump_sqlite(p) for p in files if _is_sqlite(p)]
        if self.url:
            parts.append(_dump_postgres(self.url))
        return "\n".join(parts)

    def tables(self) -> list[str]:
        """The PostgreSQL tables ``dump`` reads (empty for SQLite)."""
        if not self.url:
            return []
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "select table_name from information_schema.tables where table_schema = 'public' "
                "and table_type = 'BASE TABLE' and table_name not like %s order by 1",
                [KNOWLEDGE_PREFIX + "%"],
            ).fetchall()
        return [str(r[0]) for r in rows]


def _is_sqlite(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size < 100:
        return False
    with path.open("rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


def _dump_sqlite(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return "\n".join(repr(row) for t in tables for row in conn.execute(f"select * from [{t}]"))
    finally:
        conn.close()


def _dump_postgres(url: str) -> str:
    import psycopg
    from psycopg import sql

    out: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for table in DbBackend("postgresql", url).tables():
            rows = conn.execute(sql.SQL("select * from {}").format(sql.Identifier(table))).fetchall()
            out.extend(repr(row) for row in rows)
    return "\n".join(out)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> DbBackend:
    """The test runs once on the embedded SQLite default and once with
    ``DEPTBOT_DATABASE_URL`` set to a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return DbBackend("sqlite")
    return DbBackend("postgresql", request.getfixturevalue("pg_url"))
