"""The same assertions against both backends (SQLite default, PostgreSQL via pgserver):
the audit log and its chain, usage and budgets, event de-duplication.

The concurrency tests are the point of PostgreSQL: several replicas writing one chain,
reserving one budget and claiming one event must behave as one process would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.ports import AuditEntry
from bot.errors import BudgetExceeded
from bot.store.backend import Database
from bot.store.usage import Attempt, BudgetLimits

from .conftest import Backend

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def entry(n: int, *, user: str = "ann@example.com", when: datetime = NOW, question: str = "") -> AuditEntry:
    return AuditEntry(
        request_id=f"r{n}",
        time=when,
        user=user,
        platform="cli",
        decision="allowed",
        rule="member",
        status="answered",
        department="hr",
        question=question,
        doc_ids=("a.md", "b.md"),
        input_tokens=n,
        cost=0.001 * n,
        cache_hit=n % 2 == 0,
    )


# ── audit ────────────────────────────────────────────────────────────────────────────


def test_audit_rows_read_back_and_the_chain_verifies(backend: Backend) -> None:
    log = backend.audit()
    for n in range(1, 6):
        log.record(entry(n, question=f"question {n}" if n == 3 else ""))
    rows = log.tail(10)
    assert [r["request_id"] for r in rows] == ["r1", "r2", "r3", "r4", "r5"]
    assert rows[0]["doc_ids"] == ["a.md", "b.md"] and rows[1]["cache_hit"] == 1
    assert log.get("r4")["input_tokens"] == 4  # type: ignore[index]
    assert [r["request_id"] for r in log.tail(2, user="ANN@example.com", department="hr")] == ["r4", "r5"]
    rep = log.verify()
    assert rep.ok and rep.rows == 5 and rep.head_seq == 5, rep.problem
    exported = list(log.export_rows(with_text=True))
    assert [r["seq"] for r in exported] == [1, 2, 3, 4, 5]
    assert exported[2]["question"] == "question 3" and exported[0]["question"] is None
    cp = log.checkpoint()
    assert (cp.seq, cp.kind) == (5, "log")
    assert log.verify(expect=(cp.seq, cp.mac)).ok
    log.close()


def test_an_edited_or_deleted_row_is_caught(backend: Backend) -> None:
    log = backend.audit()
    for n in range(1, 5):
        log.record(entry(n))
    backend.sql("audit.db", "update requests set decision = 'denied' where seq = 2")
    rep = log.verify()
    assert (rep.ok, rep.kind, rep.bad_seq) == (False, "edited", 2)
    backend.sql("audit.db", "update requests set decision = 'allowed' where seq = 2")
    cp = log.checkpoint()
    backend.sql("audit.db", "delete from requests where seq = 4")
    rep = log.verify()
    assert (rep.ok, rep.kind) == (False, "truncated"), rep.problem
    assert not log.verify(expect=(cp.seq, cp.mac)).ok
    for a, b in ((2, 99), (3, 2), (99, 3)):  # swap rows 2 and 3: verify looks the MAC up while scanning
        backend.sql("audit.db", "update requests set seq = ? where seq = ?", [b, a])
    rep = log.verify()
    assert (rep.ok, rep.kind, rep.bad_seq) == (False, "reordered", 2), rep.problem


def test_feedback_pseudonyms_and_retention_keep_the_chain_verifiable(backend: Backend) -> None:
    log = backend.audit()
    old = NOW - timedelta(days=40)
    for n in range(1, 4):
        log.record(entry(n, when=old, question="old question"))
    for n in range(4, 6):
        log.record(entry(n, user="bob@example.com"))
    log.record_feedback("r4", "bob@example.com", "down", "wrong policy")
    log.record_feedback("r5", "bob@example.com", "up")
    assert [(f["value"], f["reason"]) for f in log.feedback_for("r4")] == [("down", "wrong policy")]
    assert log.key_matches()
    assert log.pseudonymize("ann@example.com") == 3
    assert {r["user"] for r in log.tail(10)} == {log.pseudonym("ann@example.com"), "bob@example.com"}
    assert log.verify().ok
    cutoff = NOW - timedelta(days=30)
    assert log.count_older_than("audit", cutoff) == 3
    assert log.count_older_than("text", cutoff) == 3
    assert log.purge_older_than("audit", cutoff, batch=2) == 3
    rep = log.verify()
    assert rep.ok and rep.rows == 2 and rep.first_seq == 4, rep.problem
    assert [r["request_id"] for r in log.tail(10)] == ["r4", "r5"]
    assert log.count_older_than("text", cutoff) == 0
    log.record(entry(6))
    assert log.verify().head_seq == 6


def test_concurrent_appends_from_threads_keep_one_chain(backend: Backend) -> None:
    log = backend.audit()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: log.record(entry(n)), range(1, 41)))
    rep = log.verify()
    assert rep.ok and rep.rows == 40 and rep.head_seq == 40, rep.problem


_APPEND = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from bot.core.ports import AuditEntry
from bot.governance.chain import AuditKey
from bot.store.backend import Database, database_url
from bot.store.pg_audit import PgAuditLog
db = Database(database_url({"DEPTBOT_DATABASE_URL": sys.argv[1]}))
log = PgAuditLog(db, home=Path(sys.argv[2]), key=AuditKey(b"k" * 32, "environment"))
tag, now = sys.argv[3], datetime.now(UTC)
for n in range(int(sys.argv[4])):
    log.record(AuditEntry(request_id=f"{tag}-{n}", time=now, user="ann@example.com", platform="cli",
                          decision="allowed", rule="member", status="answered", department="hr"))
db.close()
"""


def test_postgres_chain_verifies_after_concurrent_appends_from_two_processes(
    pg_url: str, pg_db: Database, tmp_path: Path
) -> None:
    """Two replicas (processes, each with its own pool) append at once: one writer order."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPEND, pg_url, str(tmp_path), tag, "60"],
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()[-2000:]
    backend = Backend("postgres", tmp_path, pg_db)
    log = backend.audit()
    rep = log.verify()
    assert rep.ok and rep.rows == 120 and rep.head_seq == 120, rep.problem
    seqs = backend.sql("", "select count(distinct prev_hash), count(*) from requests")
    assert seqs == [(120, 120)]  # no two rows follow the same head: the chain never forked


# ── usage and budgets ────────────────────────────────────────────────────────────────


def test_budgets_reserve_settle_and_refuse(backend: Backend) -> None:
    usage = backend.usage()
    limits = BudgetLimits(user_tokens=1000, department_cost=1.0)
    first = usage.reserve(
        request_id="r1", user="Ann@example.com", department="hr", tokens=600, cost=0.2, limits=limits, now=NOW
    )
    with pytest.raises(BudgetExceeded, match="your daily AI budget of 1,000 tokens \\(600 used today\\)"):
        usage.reserve(
            request_id="r2",
            user="ann@example.com",
            department="hr",
            tokens=500,
            cost=0.2,
            limits=limits,
            now=NOW,
        )
    usage.settle(first, tokens=300, cost=0.1)
    assert usage.spent(day=NOW.date(), user="ann@example.com") == (300, pytest.approx(0.1))
    usage.reserve(
        request_id="r2", user="ann@example.com", department="hr", tokens=500, cost=0.2, limits=limits, now=NOW
    )
    with pytest.raises(BudgetExceeded, match=r"the department's daily AI budget of \$1\.00"):
        usage.reserve(
            request_id="r3",
            user="bob@example.com",
            department="hr",
            tokens=1,
            cost=0.8,
            limits=limits,
            now=NOW,
        )
    assert usage.spent(day=NOW.date(), department="hr") == (800, pytest.approx(0.3))
    assert usage.spent(day=NOW.date() + timedelta(days=1)) == (0, 0.0)


def test_attempts_and_the_usage_report(backend: Backend) -> None:
    usage = backend.usage()
    for n, outcome in enumerate(["ok", "timeout", "ok"]):
        usage.record(
            Attempt(
                request_id=f"r{n // 2}",
                time=NOW - timedelta(days=10),  # purged below: only whole past days go
                user="Ann@example.com",
                department="hr",
                provider="anthropic",
                model="m",
                tier="small",
                route="cloud",
                outcome=outcome,
                input_tokens=10,
                output_tokens=5,
                cost=0.0125,
                latency_ms=100.0 + n,
            )
        )
    assert [a["outcome"] for a in usage.attempts("r0")] == ["ok", "timeout"]
    assert usage.attempts()[0]["user"] == "ann@example.com"
    (row,) = usage.report(since=date(2026, 11, 1))
    assert {k: row[k] for k in ("user", "requests", "attempts", "failures", "input_tokens", "cost")} == {
        "user": "ann@example.com",
        "requests": 2,
        "attempts": 3,
        "failures": 1,
        "input_tokens": 30,
        "cost": 0.0375,
    }
    assert row["avg_latency_ms"] == 101.0
    assert usage.report(user="bob@example.com") == []
    later = NOW - timedelta(days=5)
    assert usage.count_older_than("usage", later) == 3
    assert usage.purge_older_than("usage", later, batch=2) == 3
    assert usage.attempts() == []


def test_fifty_concurrent_reservations_never_overspend(backend: Backend) -> None:
    usage = backend.usage()
    limits = BudgetLimits(user_tokens=2000, department_tokens=1500)
    start = threading.Barrier(50)

    def ask(n: int) -> bool:
        start.wait()
        try:
            usage.reserve(
                request_id=f"r{n}",
                user=f"u{n % 3}@x",
                department="hr",
                tokens=100,
                cost=0.0,
                limits=limits,
                now=NOW,
            )
        except BudgetExceeded:
            return False
        return True

    with ThreadPoolExecutor(50) as pool:
        granted = sum(pool.map(ask, range(50)))
    assert granted == 15  # the department's 1,500 tokens, exactly
    assert usage.spent(day=NOW.date(), department="hr") == (1500, 0.0)


_RESERVE = """
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from bot.errors import BudgetExceeded
from bot.store.backend import Database, PoolLimits, database_url
from bot.store.pg_usage import PgUsageStore
from bot.store.usage import BudgetLimits
db = Database(database_url({"DEPTBOT_DATABASE_URL": sys.argv[1]}), PoolLimits(max_size=25))
usage = PgUsageStore(db)
now, limits = datetime.fromisoformat(sys.argv[2]), BudgetLimits(user_tokens=1000)
def ask(n):
    try:
        usage.reserve(request_id=f"{sys.argv[3]}{n}", user="ann@x", department="hr", tokens=100, cost=0.0,
                      limits=limits, now=now)
        return 1
    except BudgetExceeded:
        return 0
with ThreadPoolExecutor(25) as pool:
    print(sum(pool.map(ask, range(25))))
db.close()
"""


def test_postgres_budget_holds_across_two_replicas(pg_url: str, pg_db: Database) -> None:
    """50 requests, 25 from each of two processes, against one user's 1,000 tokens."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RESERVE, pg_url, NOW.isoformat(), tag],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]
    granted = 0
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()[-2000:]
        granted += int(out)
    assert granted == 10
    backend = Backend("postgres", Path("."), pg_db)
    assert backend.usage().spent(day=NOW.date(), user="ann@x") == (1000, 0.0)


# ── event de-duplication ─────────────────────────────────────────────────────────────


def test_claims_and_threads_expire(backend: Backend) -> None:
    now = [1000.0]
    store = backend.dedup(ttl=60.0, thread_ttl=120.0, clock=lambda: now[0])
    assert store.claim("E1") and not store.claim("E1") and store.claim("E2")
    store.mark_thread("C1", "T1")
    assert store.has_thread("C1", "T1") and not store.has_thread("C1", "T2")
    now[0] += 61
    assert store.claim("E1")  # expired: a new delivery, long after, counts again
    assert store.has_thread("C1", "T1")
    now[0] += 60
    assert not store.has_thread("C1", "T1")
    store.cleanup()
    assert backend.sql("chat-state.sqlite3", "select count(*) from answered_threads") == [(0,)]
    store.close()


def test_concurrent_claims_are_exactly_once(backend: Backend) -> None:
    store = backend.dedup()
    keys = [f"E{n}" for n in range(40)] * 5  # every event delivered five times
    with ThreadPoolExecutor(16) as pool:
        won = list(pool.map(store.claim, keys))
    assert sum(won) == 40
    assert {k for k, w in zip(keys, won, strict=True) if w} == set(keys)


_CLAIM = """
import json, sys
from bot.store.backend import Database, database_url
from bot.store.pg_dedup import PgDedupStore
db = Database(database_url({"DEPTBOT_DATABASE_URL": sys.argv[1]}))
store = PgDedupStore(db)
print(json.dumps([k for k in (f"E{n}" for n in range(200)) if store.claim(k)]))
db.close()
"""


def test_postgres_claims_are_exactly_once_across_two_replicas(pg_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIM, pg_url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    won: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()[-2000:]
        won += json.loads(out)
    assert sorted(won) == sorted(f"E{n}" for n in range(200))  # each once, none twice
