"""The SQLite audit log: one row per request, text kept apart, feedback keyed by request."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from bot.core.ports import AuditEntry
from bot.store.audit import SqliteAuditLog


def _entry(i: int, **kw: object) -> AuditEntry:
    base: dict[str, object] = dict(
        request_id=f"r{i}",
        time=datetime(2026, 11, 28, tzinfo=UTC),
        user="alice@example.com",
        platform="cli",
        decision="allowed",
        rule="ask:*@example.com",
        status="answered",
        department="hr",
        question=f"question {i}",
        doc_ids=("hr/time-off.md",),
    )
    base.update(kw)
    return AuditEntry(**base)  # type: ignore[arg-type]


def test_rows_written_in_wal_mode_with_text_apart(tmp_path: Path) -> None:
    log = SqliteAuditLog(path=tmp_path / "audit.db")
    log.record(_entry(1))
    log.record(_entry(2, decision="denied", status="denied", doc_ids=()))
    rows = log.tail(10)
    assert [r["request_id"] for r in rows] == ["r1", "r2"]
    assert rows[0]["doc_ids"] == ["hr/time-off.md"] and rows[1]["decision"] == "denied"
    assert "question" not in rows[0]
    conn = sqlite3.connect(tmp_path / "audit.db")
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    sealed = conn.execute("select question from request_text where request_id='r1'").fetchone()[0]
    assert isinstance(sealed, bytes) and b"question 1" not in sealed  # encrypted at rest
    assert log.vault.open("alice@example.com", sealed, "request_text:r1") == "question 1"
    cols = {r[1] for r in conn.execute("pragma table_info(requests)")}
    assert {"seq", "prev_hash", "row_hash"} <= cols


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    log = SqliteAuditLog(path=tmp_path / "audit.db")
    threads = [
        threading.Thread(target=lambda k=k: [log.record(_entry(k * 100 + j)) for j in range(25)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.tail(1000)) == 100


def test_feedback_upserts_per_user(tmp_path: Path) -> None:
    log = SqliteAuditLog(path=tmp_path / "audit.db")
    log.record_feedback("r1", "alice@example.com", "up")
    log.record_feedback("r1", "alice@example.com", "down", "outdated")
    fb = log.feedback_for("r1")
    assert [(f["value"], f["reason"]) for f in fb] == [("down", "outdated")]
