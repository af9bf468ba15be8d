"""What moving the shared stores to PostgreSQL costs: audit appends/s and budget
reservations/s, SQLite (the default) against PostgreSQL, in the same run.

    python -m bench.pg_stores [--ops 400] [--threads 1,8] [--repeat 3] [--url postgresql://…]

For each backend and thread count: ``--ops`` chained ``record()`` calls, then ``--ops``
``reserve()`` + ``settle()`` pairs against a limit they never reach (so every one checks
and writes), spread over the threads; the median of ``--repeat`` runs, each on fresh
tables. Without ``--url``, PostgreSQL is a ``pgserver`` started in a temp folder (unix
socket, fsync on, default settings): the same machine as the SQLite files, so the
numbers compare engines, not networks. A real server adds a network round trip per
statement (~3 per append, ~4 per reservation).

Writes only to temp folders (and, with ``--url``, to that database's tables: use an
empty database).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bot.core.ports import AuditEntry
from bot.governance.chain import AuditKey
from bot.store.audit import ChainedAudit, SqliteAuditLog
from bot.store.backend import ENV_VAR, Database, PoolLimits, database_url
from bot.store.usage import BudgetLimits, UsageLedger, UsageStore

KEY = AuditKey(b"\x5a" * 32, "environment")
LIMITS = BudgetLimits(user_tokens=10**12, department_tokens=10**12)
NOW = datetime.now(UTC)


def _entry(n: int) -> AuditEntry:
    return AuditEntry(
        request_id=f"bench-{n}",
        time=NOW,
        user=f"user{n % 500}@example.com",
        platform="slack",
        decision="allowed",
        rule="member",
        status="answered",
        department="hr",
        doc_ids=("handbook/leave.md", "handbook/benefits.md"),
        generator="anthropic",
        model="claude",
        input_tokens=1200,
        output_tokens=300,
        cost=0.004,
        latency_ms=900.0,
    )


def _rate(ops: int, threads: int, work: Callable[[int], None]) -> float:
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(ops)))
    return ops / (time.perf_counter() - t)


def _reserve(usage: UsageLedger) -> Callable[[int], None]:
    def work(n: int) -> None:
        rid = usage.reserve(
            request_id=f"r{n}",
            user=f"user{n % 50}@x",
            department="hr",
            tokens=1500,
            cost=0.0,
            limits=LIMITS,
            now=NOW,
        )
        usage.settle(rid, tokens=1400, cost=0.0)

    return work


class Sqlite:
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def fresh(self, run: int) -> tuple[ChainedAudit, UsageLedger]:
        home = self.folder / f"run{run}"
        return SqliteAuditLog(path=home / "audit.db", key=KEY), UsageStore(path=home / "usage.db")


class Postgres:
    name = "postgres"

    def __init__(self, url: str, threads: int) -> None:
        parsed = database_url({ENV_VAR: url})
        assert parsed is not None
        self.db = Database(parsed, PoolLimits(min_size=1, max_size=max(2, threads)))
        self.db.ready()
        self.home = Path(tempfile.mkdtemp(prefix="deptbot-bench-pg-home-"))

    def fresh(self, run: int) -> tuple[ChainedAudit, UsageLedger]:
        from bot.store.pg_audit import PgAuditLog
        from bot.store.pg_usage import PgUsageStore

        with self.db.tx() as c:
            c.execute("truncate requests, checkpoints, request_text, feedback, attempts, reservations")
        return PgAuditLog(self.db, home=self.home, key=KEY), PgUsageStore(self.db)


def bench(backend: Sqlite | Postgres, ops: int, threads: int, repeat: int) -> tuple[float, float]:
    appends, reserves = [], []
    for run in range(repeat):
        audit, usage = backend.fresh(run * 100 + threads)
        appends.append(_rate(ops, threads, lambda n, a=audit: a.record(_entry(n))))  # type: ignore[misc]
        reserves.append(_rate(ops, threads, _reserve(usage)))
        assert audit.verify().ok
        audit.close()
        usage.close()
    return statistics.median(appends), statistics.median(reserves)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=400, help="appends and reservations per run (default 400)")
    ap.add_argument("--threads", default="1,8", help="comma-separated thread counts (default 1,8)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown (default 3)")
    ap.add_argument(
        "--url", help="an existing, empty PostgreSQL database (default: pgserver in a temp folder)"
    )
    args = ap.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    server = None
    with tempfile.TemporaryDirectory(prefix="deptbot-bench-pg-") as tmp:
        url = args.url
        if not url:
            import pgserver  # dev extra

            t = time.perf_counter()
            server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
            url = server.get_uri()
            print(f"pgserver (PostgreSQL 16) started in {time.perf_counter() - t:.1f} s")
        print(f"{args.ops} ops per run, median of {args.repeat}")
        print(f"{'backend':<10} {'threads':>7} {'audit appends/s':>16} {'reservations/s':>15}")
        for threads in counts:
            pg = Postgres(url, threads)
            for backend in (Sqlite(Path(tmp) / "sqlite"), pg):
                appends, reserves = bench(backend, args.ops, threads, args.repeat)
                print(f"{backend.name:<10} {threads:>7} {appends:>16,.0f} {reserves:>15,.0f}")
            pg.db.close()
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
