"""What the audit chain costs: added latency per ``record()`` and ``audit verify`` speed.

    python -m bench.audit [--records 2000] [--rows 1000000]

1. Per request: the chained append (read the head, canonical JSON, HMAC-SHA256, insert
   with the chain fields, in one ``BEGIN IMMEDIATE`` transaction) against an unchained
   insert of the same row in the same kind of transaction, same database, interleaved so
   both see the same cache and disk; p50/p95 of each and the p50 difference (target
   < 1 ms). The question's encrypted text is written the same way by both, so it is left
   out of both.
2. Verification: ``--rows`` chained rows (500 users, realistic columns) written with
   ``executemany`` into a temp folder, then ``SqliteAuditLog.verify()`` timed: rows/s.

Writes only to a temp folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.ports import AuditEntry
from bot.governance.chain import GENESIS
from bot.store.audit import COLUMNS, SqliteAuditLog, audit_row

KEY = {"DEPTBOT_AUDIT_KEY": "5a" * 32}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _entry(i: int) -> AuditEntry:
    return AuditEntry(
        request_id=f"req-{i:09d}",
        time=T0 + timedelta(seconds=i),
        user=f"user{i % 500}@example.com",
        platform=("slack", "teams", "cli")[i % 3],
        decision="allowed" if i % 11 else "denied",
        rule="ask:group:everyone",
        status="answered",
        department=("hr", "finance", "it", "legal")[i % 4],
        doc_ids=(f"hr/policy-{i % 37}.md", f"hr/faq-{i % 13}.md"),
        generator="anthropic",
        model="claude-haiku-4-5",
        route="cloud",
        route_reason="internal data",
        input_tokens=1200 + i % 300,
        output_tokens=180 + i % 90,
        cost=0.0021 + (i % 7) / 10000,
        confidence=0.5 + (i % 50) / 100,
        retrieve_ms=12.5 + i % 9,
        generate_ms=900.0 + i % 400,
        latency_ms=930.25 + i % 400,
        channel=f"C{i % 40:05d}",
        pii_detected='{"email": 1}' if i % 17 == 0 else "",
    )


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


def bench_record(folder: Path, n: int) -> None:
    log = SqliteAuditLog(path=folder / "record.db", env=KEY)
    conn = log._db.conn
    conn.execute("create table plain as select * from requests where 0")
    names = list(COLUMNS)
    plain = f"insert into plain ({', '.join(f'[{c}]' for c in names)}) values ({', '.join('?' * len(names))})"
    chained_ms: list[float] = []
    plain_ms: list[float] = []
    for i in range(n):
        entry = _entry(i)
        t = time.perf_counter()
        row = audit_row(entry)
        with log._tx():
            conn.execute(plain, list(row.values()))
        plain_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        row = audit_row(entry)
        with log._tx():
            log._append(row)
        chained_ms.append((time.perf_counter() - t) * 1000)
    assert log.verify().ok
    p50c, p50p = statistics.median(chained_ms), statistics.median(plain_ms)
    print(f"\nrecord(): {n:,} rows each, interleaved, same database (WAL, synchronous=NORMAL)")
    print(f"{'':<22}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'unchained insert':<22}{p50p:>10.3f}{_pct(plain_ms, 0.95):>10.3f}")
    print(f"{'chained append':<22}{p50c:>10.3f}{_pct(chained_ms, 0.95):>10.3f}")
    verdict = "OK" if p50c - p50p < 1.0 else "OVER TARGET"
    print(f"added by chaining (p50): {(p50c - p50p) * 1000:.0f} µs  (target < 1 ms: {verdict})")
    log.close()


def build_rows(path: Path, rows: int) -> SqliteAuditLog:
    """``rows`` chained rows, MACs computed exactly as ``record()`` does, inserted in bulk."""
    log = SqliteAuditLog(path=path, env=KEY)
    chain = log._chain
    conn = log._db.conn
    prev = GENESIS
    batch: list[list[object]] = []
    templates = [audit_row(_entry(i)) for i in range(1, 1001)]  # varied rows, reused with new ids
    for i in range(1, rows + 1):
        row = dict(templates[i % 1000])
        row["request_id"], row["time"] = f"req-{i:09d}", (T0 + timedelta(seconds=i)).isoformat()
        mac = chain.mac(prev, row)
        batch.append([i, *row.values(), prev.hex(), mac.hex()])
        prev = mac
        if len(batch) == 20_000 or i == rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(log._insert, batch)
            conn.execute("COMMIT")
            batch.clear()
    return log


def bench_verify(folder: Path, rows: int) -> None:
    t = time.perf_counter()
    log = build_rows(folder / "verify.db", rows)
    built = time.perf_counter() - t
    size = (folder / "verify.db").stat().st_size / 1e6
    t, cpu = time.perf_counter(), time.process_time()
    rep = log.verify()
    took, cpu = time.perf_counter() - t, time.process_time() - cpu
    assert rep.ok and rep.rows == rows, rep
    print(f"\naudit verify: {rows:,} rows ({size:,.0f} MB database, built in {built:.1f} s)")
    print(f"verified in {took:.1f} s wall: {rows / took:,.0f} rows/s")
    print(f"           {cpu:.1f} s CPU: {rows / cpu:,.0f} rows/s (what an idle core would do)")
    log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000, help="record() calls per variant (default 2000)")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows for the verify run (default 1,000,000)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="deptbot-bench-audit-") as tmp:
        bench_record(Path(tmp), args.records)
        bench_verify(Path(tmp), args.rows)


if __name__ == "__main__":
    main()
