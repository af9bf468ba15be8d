"""The overview stays fast on a big audit log because its scans never touch table rows:
the audit database carries a covering index, and feedback is joined from its own (small)
table. Checked through SQLite's query plans, which do not flake like timings do
(``bench/admin.py`` has the timings)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

from bot.admin.auditread import SqliteReader
from bot.admin.documents import cite_sql
from bot.admin.overview import compute_days, day_sql
from bot.core.ports import AuditEntry
from bot.store.audit import SqliteAuditLog


def _plan(conn: sqlite3.Connection, sql: str, args: list[object]) -> str:
    return " | ".join(str(r[-1]) for r in conn.execute("explain query plan " + sql, args))


def _log(tmp_path: Path) -> SqliteAuditLog:
    log = SqliteAuditLog(path=tmp_path / "audit.db", env={"DEPTBOT_AUDIT_KEY": "5a" * 32})
    log.record(
        AuditEntry(
            request_id="r1",
            time=datetime(2026, 11, 30, tzinfo=UTC),
            user="a@example.com",
            platform="cli",
            decision="allowed",
            rule="ask",
            status="answered",
            department="hr",
            latency_ms=12.0,
            doc_ids=("hr/a.md",),
        )
    )
    return log


def test_audit_database_has_the_covering_index(tmp_path: Path) -> None:
    log = _log(tmp_path)
    conn = sqlite3.connect(tmp_path / "audit.db")
    reader = SqliteReader(conn, tmp_path / "audit.db")
    for sql in (day_sql(reader), cite_sql(reader)):
        assert "COVERING INDEX requests_console_cover" in _plan(conn, sql, ["hr", "2026-09-01"])
    conn.close()
    log.close()


def test_reopening_an_existing_log_adds_the_index(tmp_path: Path) -> None:
    _log(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("drop index requests_console_cover")  # a log written by an older version
    conn.execute(
        "create index requests_admin_cover on requests (department, time, status, route, generator, "
        "cache_hit, input_tokens, output_tokens, cost, latency_ms, confidence, doc_ids)"
    )
    conn.commit()
    conn.close()
    SqliteAuditLog(path=tmp_path / "audit.db", env={"DEPTBOT_AUDIT_KEY": "5a" * 32}).close()
    conn = sqlite3.connect(tmp_path / "audit.db")
    names = {r[0] for r in conn.execute("select name from sqlite_master where type = 'index'")}
    assert "requests_console_cover" in names and "requests_admin_cover" not in names  # replaced
    conn.close()


def test_votes_are_joined_from_the_feedback_table(tmp_path: Path) -> None:
    log = _log(tmp_path)
    conn = sqlite3.connect(tmp_path / "audit.db")
    sql = (
        "select substr(r.time, 1, 10), f.value, count(*) from feedback f "
        "cross join requests r on r.request_id = f.request_id "
        "where f.value in ('up', 'down') and r.department = ? and r.time >= ? group by 1, 2"
    )
    plan = _plan(conn, sql, ["hr", "2026-09-01"])
    assert plan.index("SCAN f") < plan.index("SEARCH r")  # feedback drives, requests by id
    conn.close()
    log.close()


def test_compute_days_reads_the_rows_it_needs(tmp_path: Path) -> None:
    log = _log(tmp_path)
    conn = sqlite3.connect(tmp_path / "audit.db")
    reader = SqliteReader(conn, tmp_path / "audit.db")
    days = compute_days(reader, "hr", date(2026, 11, 1))
    [agg] = days.values()
    assert agg.status == {"answered": 1} and list(agg.latencies) == [12.0]
    assert compute_days(reader, "finance", date(2026, 11, 1)) == {}
    conn.close()
    log.close()
