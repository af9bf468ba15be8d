"""Retention: each kind is purged after its own number of days (fake clock), in batches,
recorded as an audit row; the audit chain still verifies after its oldest rows go."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import StoreError
from bot.governance.retention import Purgeable, Retention, describe, policy_from
from bot.store.audit import SqliteAuditLog
from bot.store.usage import Attempt, UsageStore
from tests.governance.test_audit_chain import KEY, T0, entry

NOW = T0 + timedelta(days=10)


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


@pytest.fixture
def log(tmp_path: Path) -> SqliteAuditLog:
    log = SqliteAuditLog(path=tmp_path / "audit.db", env={"DEPTBOT_AUDIT_KEY": KEY})
    for i in range(10):  # one request a day, T0 … T0 + 9 days
        log.record(entry(i, time=days(i)))
    return log


@pytest.fixture
def usage(tmp_path: Path) -> UsageStore:
    store = UsageStore(path=tmp_path / "usage.db")
    for i in range(10):
        store.record(
            Attempt(f"r{i}", days(i), "alice@example.com", "hr", "extractive", "", "small", "local", "ok")
        )
    return store


def count(log: SqliteAuditLog, table: str) -> int:
    return int(sqlite3.connect(log.path).execute(f"select count(*) from {table}").fetchone()[0])


def test_each_kind_is_purged_after_its_own_days_and_the_run_is_audited(
    log: SqliteAuditLog, usage: UsageStore
) -> None:
    job = Retention(
        stores=[log, usage],
        policy={"text": 8, "usage": 5, "audit": 3, "feedback": 0, "cache": 0},
        audit=log,
        batch=2,
        clock=lambda: NOW,
    )
    out = {o.kind: o.purged for o in job.run()}
    # text: questions of days 0–1 (older than 8 days); audit: rows of days 0–6 with their text
    assert out == {"text": 2, "usage": 5, "audit": 7}
    assert [a["request_id"] for a in usage.attempts()] == ["r5", "r6", "r7", "r8", "r9"]
    kept = [r[0] for r in sqlite3.connect(log.path).execute("select request_id from requests order by seq")]
    assert kept == ["r7", "r8", "r9", kept[-1]] and kept[-1].startswith("retention-")
    assert count(log, "request_text") == 3
    event = log.get(kept[-1])
    assert event is not None and (event["decision"], event["status"]) == ("system", "retention")
    assert '"audit": 7' in event["route_reason"] and '"audit": 3' in event["rule"]
    rep = log.verify()
    assert rep.ok and rep.rows == 4 and rep.first_seq == 8 and rep.head_seq == 11
    cps = (
        sqlite3.connect(log.path).execute("select seq, kind from checkpoints where kind = 'purge'").fetchall()
    )
    assert cps == [(7, "purge")]  # one per batch, superseded ones removed


def test_forever_purges_nothing_and_records_nothing(log: SqliteAuditLog) -> None:
    assert Retention(stores=[log], policy=policy_from({}), audit=log, clock=lambda: NOW).run() == []
    assert count(log, "requests") == 10


def test_dry_run_counts_without_deleting(log: SqliteAuditLog, usage: UsageStore) -> None:
    job = Retention(stores=[log, usage], policy={"audit": 3, "usage": 5}, audit=log, clock=lambda: NOW)
    out = job.run(dry_run=True)
    assert {o.kind: o.purged for o in out} == {"usage": 5, "audit": 7}
    assert count(log, "requests") == 10 and len(usage.attempts()) == 10
    assert "would delete 7" in describe(out, dry_run=True)[-1]


def test_new_rows_continue_the_chain_after_everything_was_purged(log: SqliteAuditLog) -> None:
    assert log.purge_older_than("audit", NOW, batch=3) == 10
    rep = log.verify()
    assert rep.ok and rep.rows == 0 and rep.head_seq == 10
    log.record(entry(50, time=NOW))
    rep = log.verify()
    assert rep.ok and rep.rows == 1 and rep.first_seq == 11


def test_rows_deleted_beside_a_purge_are_still_caught(log: SqliteAuditLog) -> None:
    log.purge_older_than("audit", days(3))
    conn = sqlite3.connect(log.path)
    conn.execute("delete from requests where seq = 4")
    conn.commit()
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 4 and rep.kind == "deleted"


def test_a_broken_chain_is_never_purged(log: SqliteAuditLog) -> None:
    conn = sqlite3.connect(log.path)
    conn.execute("update requests set status = 'x' where seq = 2")
    conn.commit()
    with pytest.raises(StoreError, match="broken at row 2"):
        log.purge_older_than("audit", NOW)
    assert count(log, "requests") == 10


def test_feedback_and_orphaned_questions_are_purged(log: SqliteAuditLog) -> None:
    log.record_feedback("r1", "bob@example.com", "down", "outdated")
    later = datetime.now(UTC) + timedelta(days=30)
    assert log.purge_older_than("feedback", later) == 1
    assert count(log, "feedback") == 0
    assert log.purge_older_than("text", days(0)) == 0  # nothing is older than day 0
    assert log.purge_older_than("cache", later) == 0  # not a kind the audit log holds


class Refusing:
    """A store that holds only "cache" and raises for everything else (as cache.py does)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        self.asked.append(kind)
        if kind != "cache":
            raise ValueError(kind)
        return 4


class Broken:
    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        raise RuntimeError("disk on fire")


def test_other_stores_are_asked_in_their_own_words_and_one_failure_stops_nothing(log: SqliteAuditLog) -> None:
    refusing = Refusing()
    assert isinstance(refusing, Purgeable)
    job = Retention(
        stores=[Broken(), refusing, log, object()],
        policy={"cache": 1, "text": 1, "audit": 1},
        audit=log,
        clock=lambda: NOW,
    )
    out = {o.kind: o for o in job.run()}
    assert out["cache"].purged == 4 and out["cache"].failed == ["Broken: RuntimeError"]
    assert out["audit"].purged == 9
    assert set(refusing.asked) == {"text", "history", "replies", "cache", "audit"}
    last = log.tail(1)[0]
    assert last["status"] == "retention" and "Broken: RuntimeError" in last["error"]
    assert log.verify().ok


def test_serve_schedules_the_purge_and_the_checkpoint_log(
    log: SqliteAuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from bot.governance.retention import start_daily

    assert start_daily(retention=None, checkpoint=None) is None
    job = Retention(stores=[log], policy={"audit": 3}, audit=log, clock=lambda: NOW)
    with caplog.at_level("INFO", logger="bot.governance.checkpoint"):
        scheduler = start_daily(retention=job, checkpoint=log.checkpoint, first_delay=0)
        assert scheduler is not None
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (
                log.tail(1)[0]["status"] == "retention" and "deptbot-audit-checkpoint" in caplog.text
            ):
                time.sleep(0.05)
        finally:
            scheduler.shutdown(wait=True)
    assert log.tail(1)[0]["status"] == "retention" and count(log, "requests") == 4
    assert "deptbot-audit-checkpoint seq=" in caplog.text
    assert log.verify().ok
