"""The backend contract tests: ``backend`` opens each store on SQLite and on a real
PostgreSQL. The server (``pgserver``: PostgreSQL 16 and pgvector from a wheel, one per
test process, unix socket only) and ``pg_server``/``pg_url``/``pg_db`` (a fresh migrated
database per test, ~0.1 s) live in ``tests/pg_fixtures.py``, a plugin ``tests/conftest.py``
loads, so tests outside this folder can use them; the names still import from here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.governance.chain import AuditKey
from bot.governance.keys import MasterKeys, load
from bot.governance.vault import Vault
from bot.store.audit import ChainedAudit, SqliteAuditLog
from bot.store.backend import Database
from bot.store.cache import SealedAnswerCache, SqliteAnswerCache
from bot.store.db import connect
from bot.store.dedup import Dedup, DedupStore
from bot.store.notices import Notices, SqliteNotices
from bot.store.usage import UsageLedger, UsageStore
from tests.pg_fixtures import PgServer, pg_db, pg_server, pg_url  # noqa: F401

# The server and the per-test databases now come from the ``tests.pg_fixtures`` plugin
# (tests outside tests/store use them too); the import above keeps their old names here.


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
