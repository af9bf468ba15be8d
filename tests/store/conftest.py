"""A real PostgreSQL for the backend contract tests: ``pgserver`` (the wheel bundles
PostgreSQL 16 and pgvector), started once per session in a temporary folder and reached
over a unix socket only (it listens on no TCP port), so CI needs no system install.

Each test gets a fresh database cloned from a migrated template (``create database …
template``): isolation costs ~0.1 s, not a migration run.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.governance.chain import AuditKey
from bot.governance.keys import MasterKeys, load
from bot.governance.vault import Vault
from bot.store.audit import ChainedAudit, SqliteAuditLog
from bot.store.backend import Database, DatabaseUrl, close_shared, database_url, migrate
from bot.store.cache import SealedAnswerCache, SqliteAnswerCache
from bot.store.db import connect
from bot.store.dedup import Dedup, DedupStore
from bot.store.notices import Notices, SqliteNotices
from bot.store.usage import UsageLedger, UsageStore

_NAMES = itertools.count(1)


class PgServer:
    """The session's server: its base URL and how long it took to start."""

    def __init__(self, uri: str, started_in: float) -> None:
        self.uri = uri  # postgresql://postgres:@/postgres?host=<socket folder>
        self.started_in = started_in

    def url(self, database: str) -> str:
        return self.uri.replace("/postgres?", f"/{database}?", 1)

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(sql.encode())


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    pgserver = pytest.importorskip("pgserver", reason="pip install -e '.[dev]' brings pgserver")
    # Not under pytest's basetemp: run as root, pgserver starts PostgreSQL as its own
    # "pgserver" user, which must traverse the folder, and every pytest start resets
    # /tmp/pytest-of-<user> to 0700 (a parallel run would cut the server off).
    folder = Path(tempfile.mkdtemp(prefix="deptbot-pg-")) / "data"
    t0 = time.perf_counter()
    server = pgserver.get_server(folder, cleanup_mode="delete")
    pg = PgServer(server.get_uri(), time.perf_counter() - t0)
    # A throwaway cluster: durability only costs test time (create database checkpoints,
    # every commit waits for the disk). Each is a reload-time setting, no restart.
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        pg.admin(f"alter system set {setting} = off")
    pg.admin("select pg_reload_conf()")
    pg.admin("create database deptbot_template")
    template = Database(_checked(pg.url("deptbot_template")))
    migrate(template)
    template.close()
    try:
        yield pg
    finally:
        close_shared()
        server.cleanup()
        shutil.rmtree(folder.parent, ignore_errors=True)


def _checked(url: str) -> DatabaseUrl:
    parsed = database_url({"DEPTBOT_DATABASE_URL": url})
    assert parsed is not None
    return parsed


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, migrated database for one test; its URL."""
    name = f"t{next(_NAMES)}"
    pg_server.admin(f"create database {name} template deptbot_template")
    yield pg_server.url(name)
    close_shared()
    pg_server.admin(f"drop database {name} with (force)")


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    db = Database(_checked(pg_url))
    db.ready()
    yield db
    db.close()


class Backend:
    """Opens the stores under test on one backend, and runs raw SQL (``?`` placeholders)
    the way an attacker with database access would (to tamper in tests)."""

    def __init__(self, name: str, home: Path, db: Database | None) -> None:
        self.name, self.home, self.db = name, home, db
        self.url = db.url.conninfo if db is not None else ""

    def audit(self, **kwargs: Any) -> ChainedAudit:
        kwargs.setdefault("key", AuditKey(b"k" * 32, "environment"))
        if self.db is None:
            return SqliteAuditLog(path=self.home / "audit.db", **kwargs)
        from bot.store.pg_audit import PgAuditLog

        return PgAuditLog(self.db, home=self.home, **kwargs)

    def usage(self) -> UsageLedger:
        if self.db is None:
            return UsageStore(path=self.home / "usage.db")
        from bot.store.pg_usage import PgUsageStore

        return PgUsageStore(self.db)

    def dedup(self, **kwargs: Any) -> Dedup:
        if self.db is None:
            return DedupStore.in_state_dir(self.home, **kwargs)
        from bot.store.pg_dedup import PgDedupStore

        return PgDedupStore(self.db, **kwargs)

    def cache(self, **kwargs: Any) -> SealedAnswerCache:
        kwargs.setdefault("vault", self.vault())
        if self.db is None:
            return SqliteAnswerCache(path=self.home / "cache.db", **kwargs)
        from bot.store.pg_cache import PgAnswerCache

        return PgAnswerCache(self.db, **kwargs)

    def notices(self, **kwargs: Any) -> Notices:
        if self.db is None:
            return SqliteNotices(path=self.home / SqliteNotices.FILE, **kwargs)
        from bot.store.pg_notices import PgNotices

        return PgNotices(self.db, **kwargs)

    def vault(self, keys: MasterKeys | None = None) -> Vault:
        keys = keys or load({}, None)
        if self.db is None:
            return Vault.in_state_dir(self.home, keys)
        from bot.store.pg_keys import PgKeyTable

        return Vault(keys=keys, table=PgKeyTable(self.db))

    def sql(self, file: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.db is None:
            conn = connect(self.home / file)
            try:
                cur = conn.execute(statement, list(params))
                return list(cur.fetchall()) if cur.description else []
            finally:
                conn.close()
        with self.db.tx() as c:
            cur = c.execute(statement, params)
            return list(cur.fetchall()) if cur.description else []


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every contract test runs once per backend, with the same assertions."""
    if request.param == "sqlite":
        yield Backend("sqlite", tmp_path, None)
        return
    db = request.getfixturevalue("pg_db")
    yield Backend("postgres", tmp_path, db)
