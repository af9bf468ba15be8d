"""Two replicas with different audit keys on a fresh PostgreSQL database: the second must
refuse to start. Before any row is chained, the only thing a key can be checked against is
the signed start checkpoint; an unsigned one is signed by the first replica that checks, so
the first key to start claims the chain and every other key is refused (the one chain would
otherwise hold rows under two keys and fail ``audit verify``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.ports import AuditEntry
from bot.errors import ConfigError
from bot.governance.chain import AuditKey
from bot.store.backend import Database
from bot.store.pg_audit import PgAuditLog
from tests.pg_fixtures import checked_url


def _entry(rid: str) -> AuditEntry:
    return AuditEntry(
        request_id=rid, time=datetime.now(UTC), user="a@example.com", platform="cli",
        decision="allowed", rule="t", status="answered",
    )  # fmt: skip


def test_a_second_key_is_refused_before_anything_is_chained(pg_url: str, tmp_path: Path) -> None:
    db = Database(checked_url(pg_url))
    db.ready()
    try:
        a = PgAuditLog(db, home=tmp_path / "a", key=AuditKey(b"A" * 32, "environment"))
        b = PgAuditLog(db, home=tmp_path / "b", key=AuditKey(b"B" * 32, "environment"))
        a.require_shared_key()
        with pytest.raises(ConfigError):
            b.require_shared_key()
        a.record(_entry("r1"))
        assert a.verify().ok
        again = PgAuditLog(db, home=tmp_path / "a2", key=AuditKey(b"A" * 32, "environment"))
        again.require_shared_key()  # the same key still starts
    finally:
        db.close()


def test_an_unsigned_start_is_claimed_by_the_first_key(pg_url: str, tmp_path: Path) -> None:
    """A start checkpoint written by a replica that had no key yet carries no signature."""
    db = Database(checked_url(pg_url))
    db.ready()
    try:
        PgAuditLog(db, home=tmp_path / "none")  # no key: the start goes in unsigned
        with db.tx() as c:
            assert [r[0] for r in c.execute("select sig from checkpoints").fetchall()] == [""]
        b = PgAuditLog(db, home=tmp_path / "b", key=AuditKey(b"B" * 32, "environment"))
        c_ = PgAuditLog(db, home=tmp_path / "c", key=AuditKey(b"C" * 32, "environment"))
        b.require_shared_key()
        with pytest.raises(ConfigError):
            c_.require_shared_key()
    finally:
        db.close()
