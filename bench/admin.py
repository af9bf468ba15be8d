"""How fast the admin console's data is: every ``Insights`` method over a big audit log.

    python -m bench.admin [--rows 10000,100000] [--big] [--repeat 5] [--postgres]

For each size, ``rows`` audit rows of department "hr" over 120 days (plus a quarter as
many of "finance", which every query must skip), ~6 % "don't know" and ~4 % low
confidence with sealed question text, 👍/👎 on ~5 % of answers, a budget ledger and ten
eval runs are written into a temp folder (bulk ``executemany`` into the real schema, so
setup stays quick; the chain fields are left empty — nothing here verifies them). Then
each method is timed, median of ``--repeat`` calls, and set against a naive baseline in
the same run: the overview computed by loading every row of the department into Python
(``select *`` + ``json.loads`` + Python grouping), which is what a first version would do.

``--big`` adds 1,000,000 rows (the issue's target: overview ≤ 300 ms p95); it takes a few
minutes to write. Writes only to a temp folder.

``--postgres`` also runs every case with the same rows in PostgreSQL (``DEPTBOT_DATABASE_URL``
pointed at a throwaway ``pgserver`` cluster: PostgreSQL 16, unix socket only), so the two
backends of ``bot.admin.auditread.ConsoleRecords`` are compared in one run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.admin.documents import CITES
from bot.admin.insights import Insights
from bot.admin.overview import DAYS
from bot.config import Department, load_company
from bot.core.pipeline import Assistant
from bot.governance.vault import forget_open_vaults, vault_for
from bot.knowledge import KnowledgeBase
from bot.llm.extractive import ExtractiveGenerator
from bot.settings import Settings
from bot.store.audit import COLUMNS, SqliteAuditLog
from bot.store.evalruns import EvalRun, EvalRunStore
from bot.store.usage import UsageStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SPAN_DAYS = 120
TOPICS = [
    ("parental leave", "for the non-birth parent"),
    ("vacation days", "carried over to next year"),
    ("remote work", "from another country"),
    ("pension", "contribution matching"),
    ("sick leave", "doctor's note"),
    ("relocation", "allowance for movers"),
    ("bike lease", "tax rules"),
    ("overtime", "compensation on weekends"),
    ("laptop", "replacement after damage"),
    ("training budget", "for conferences"),
]
ASKS = [
    "How does {a} work {b}?",
    "What are the rules for {a} {b}?",
    "Can I get {a} {b}",
    "{a} {b} - who decides?",
]
DOCS = 40


def _company(root: Path) -> tuple[Path, Department]:
    deps = root / "departments"
    deps.mkdir(parents=True)
    for name in ("hr", "finance"):
        (deps / f"{name}.yaml").write_text(
            textwrap.dedent(f"""\
                title: {name.upper()}
                knowledge: ../knowledge/{name}
                admins: ["admin@example.com"]
                ask: ["*@example.com"]
                """)
        )
        folder = root / "knowledge" / name
        folder.mkdir(parents=True)
        for i in range(DOCS):
            a, b = TOPICS[i % len(TOPICS)]
            (folder / f"policy-{i:02d}.md").write_text(
                f"# {a.title()} policy {i}\n\nAbout {a} {b}. Section {i} explains who approves it.\n"
            )
    company = load_company(deps)
    return deps, company.department("hr")


Rows = tuple[list[list[Any]], list[tuple[str, bytes]], list[tuple[str, str, str, Any, str]]]


def _write_rows(audit: Any, n: int, *, department: str, seed: int) -> int:
    """``n`` rows of ``department``; returns how many have sealed question text."""
    if hasattr(audit, "db"):  # PgAuditLog
        with audit.db.tx() as c:
            start = int(c.execute("select coalesce(max(seq), 0) from requests").fetchone()[0]) + 1
        rows, texts, votes = _make_rows(audit.vault, n, department=department, seed=seed, start_seq=start)
        _copy_pg(audit.db, rows, texts, votes)
        return len(texts)
    db = audit._db.conn  # bench only: bulk insert into the real schema
    start_seq = int(db.execute("select coalesce(max(seq), 0) from requests").fetchone()[0]) + 1
    rows, texts, votes = _make_rows(audit.vault, n, department=department, seed=seed, start_seq=start_seq)
    names = ["seq", *COLUMNS]
    with audit._tx():
        db.executemany(
            f"insert into requests ({', '.join(names)}) values ({', '.join('?' * len(names))})", rows
        )
        db.executemany("insert into request_text (request_id, question) values (?, ?)", texts)
        db.executemany(
            "insert into feedback (request_id, user, value, reason, time) values (?, ?, ?, ?, ?)", votes
        )
    return len(texts)


def _copy_pg(db: Any, rows: list[list[Any]], texts: list[Any], votes: list[Any]) -> None:
    """The same rows into PostgreSQL with COPY (the chain fields left empty, as in SQLite)."""
    names = ", ".join(f'"{c}"' for c in ["seq", *COLUMNS])
    with db.connection() as conn, conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"copy requests ({names}) from stdin") as copy:
            for r in rows:
                copy.write_row(r)
        with cur.copy("copy request_text (request_id, question) from stdin") as copy:
            for t in texts:
                copy.write_row(t)
        with cur.copy('copy feedback (request_id, "user", value, reason, "time") from stdin') as copy:
            for v in votes:
                copy.write_row((*v[:3], v[3] or b"", v[4]))
        cur.execute("analyze requests")
        cur.execute("analyze feedback")


def _make_rows(vault: Any, n: int, *, department: str, seed: int, start_seq: int) -> Rows:
    rnd = random.Random(seed)
    rows: list[list[Any]] = []
    texts: list[tuple[str, bytes]] = []
    votes: list[tuple[str, str, str, Any, str]] = []
    for i in range(n):
        t = NOW - timedelta(seconds=rnd.uniform(0, SPAN_DAYS * 86400))
        r = rnd.random()
        status = (
            "dont_know"
            if r < 0.06
            else "sources_only"
            if r < 0.08
            else "denied"
            if r < 0.10
            else "error"
            if r < 0.11
            else "answered"
        )
        conf = rnd.uniform(0.1, 0.3) if r < 0.12 and status == "answered" else rnd.uniform(0.4, 0.95)
        rid = f"{department[:2]}{seed}-{i:08d}"
        user = f"user{rnd.randrange(800)}@example.com"
        docs = (
            []
            if status in ("dont_know", "denied", "error")
            else [f"{department}/policy-{rnd.randrange(DOCS):02d}.md" for _ in range(rnd.randint(1, 3))]
        )
        route = rnd.choice(["cloud", "cloud", "private", "local"]) if status == "answered" else "none"
        values = {
            "request_id": rid,
            "time": t.isoformat(),
            "user": user,
            "platform": "slack",
            "decision": "denied" if status == "denied" else "allowed",
            "rule": "ask",
            "status": status,
            "department": department,
            "template": None,
            "doc_ids": json.dumps(docs),
            "generator": "extractive" if route == "local" else "anthropic" if route == "cloud" else "none",
            "model": "",
            "route": route,
            "route_reason": "",
            "input_tokens": rnd.randint(800, 2000),
            "output_tokens": rnd.randint(100, 400),
            "cost": rnd.uniform(0.001, 0.004),
            "confidence": conf,
            "retrieve_ms": rnd.uniform(5, 40),
            "generate_ms": rnd.uniform(200, 2500),
            "latency_ms": rnd.lognormvariate(7, 0.5),
            "cache_hit": int(rnd.random() < 0.15),
            "channel": "C0HR",
            "error": "",
            "pii_detected": "",
        }
        rows.append([start_seq + i, *(values.get(c) for c in COLUMNS)])
        gap = status in ("dont_know", "sources_only") or (status == "answered" and conf < 0.35)
        if gap:
            a, b = TOPICS[rnd.randrange(len(TOPICS))]
            q = rnd.choice(ASKS).format(a=a, b=b)
            texts.append((rid, vault.seal(user, q, f"request_text:{rid}")))
        if status == "answered" and rnd.random() < 0.05:
            down = rnd.random() < 0.3
            reason = vault.seal("voter@example.com", "wrong dates", f"feedback:{rid}") if down else ""
            votes.append((rid, "voter@example.com", "down" if down else "up", reason, t.isoformat()))
    return rows, texts, votes


def _write_usage(state: Path, pg: Any = None) -> None:
    rows = []
    for d in range(SPAN_DAYS):
        day = (NOW - timedelta(days=d)).date().isoformat()
        rows.extend(
            (f"u{d}-{k}", day, "user@example.com", "hr", 1500, 0.003, "settled", day) for k in range(200)
        )
    if pg is not None:
        with pg.tx() as c:
            c.conn.cursor().executemany(
                'insert into reservations (request_id, day, "user", department, tokens, cost, state, "time") '
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        return
    usage = UsageStore(path=state / "usage.db")
    db = usage._db().conn
    db.executemany(
        "insert into reservations (request_id, day, user, department, tokens, cost, state, time) "
        "values (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    usage.close()


def _write_evals(state: Path, pg: Any = None) -> None:
    from bot.store.pg_ops import PgEvalRunStore

    store = EvalRunStore.in_state_dir(state) if pg is None else PgEvalRunStore(pg)
    for k in range(10):
        store.record(
            EvalRun(
                department="hr",
                time=NOW - timedelta(days=10 - k),
                trigger="schedule",
                cases=20,
                source_hit=0.9 - 0.1 * (k == 7),
                fact_hit=0.8,
                answered=0.85,
                refusal=1.0,
                p50_ms=900.0,
                p95_ms=2100.0,
                passed=True,
                below=(),
            )
        )
    store.close()


def naive_overview(path: Path, department: str, days: int) -> dict[str, Any]:
    """The baseline: every row of the department into Python, then filter and group."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    since = (NOW.date() - timedelta(days=days - 1)).isoformat()
    rows = [dict(r) for r in conn.execute("select * from requests where department = ?", [department])]
    feedback = {r["request_id"]: r["value"] for r in conn.execute("select request_id, value from feedback")}
    conn.close()
    by_day: dict[str, Counter[str]] = {}
    lat: list[float] = []
    for r in rows:
        r["doc_ids"] = json.loads(r["doc_ids"] or "[]")
        if r["time"] < since:
            continue
        by_day.setdefault(r["time"][:10], Counter())[r["status"]] += 1
        lat.append(r["latency_ms"])
    lat.sort()
    votes = Counter(
        feedback[r["request_id"]] for r in rows if r["request_id"] in feedback and r["time"] >= since
    )
    return {"days": by_day, "p50": lat[len(lat) // 2] if lat else None, "votes": votes}


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm: first call reads the index snapshot and opens the vault
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run(rows: int, repeat: int, url: str = "") -> list[tuple[str, int, float]]:
    """``url``: the rows go to that PostgreSQL database (``DEPTBOT_DATABASE_URL``)."""
    from bot.store.backend import database_for

    with tempfile.TemporaryDirectory(prefix="bench-admin-") as tmp:
        root = Path(tmp)
        deps, _ = _company(root)
        state = root / "state"
        key = {"DEPTBOT_AUDIT_KEY": "5a" * 32}
        settings = Settings.load(
            departments=deps, state=state, env={**key, **({"DEPTBOT_DATABASE_URL": url} if url else {})}
        )
        pg = database_for(settings)
        audit: Any
        if pg is None:
            audit = SqliteAuditLog(path=state / "audit.db", vault=vault_for(settings), env=key)
        else:
            from bot.store.pg_audit import PgAuditLog

            audit = PgAuditLog(pg, home=state, vault=vault_for(settings), env=key)
        t = time.perf_counter()
        _write_rows(audit, rows, department="hr", seed=1)
        _write_rows(audit, rows // 4, department="finance", seed=2)
        _write_usage(state, pg)
        _write_evals(state, pg)
        kb = KnowledgeBase(state_dir=state, embedder="wordllama")
        company = load_company(deps)
        for d in company:
            kb.refresh(d)
        print(
            f"# {rows:,} hr rows (+{rows // 4:,} finance) written in {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
        )
        assistant = Assistant(
            company=company,
            retriever=kb,
            indexer=kb,
            generator=ExtractiveGenerator(),
            audit=audit,
            clock=lambda: NOW,
        )
        ins = Insights(assistant=assistant, settings=settings, clock=lambda: NOW)

        def cold(fn: Callable[[Insights], object]) -> Callable[[], object]:
            """A fresh start: no cached closed days (as after a restart)."""

            def call() -> object:
                DAYS.clear()
                CITES.clear()
                return fn(Insights(assistant=assistant, settings=settings, clock=lambda: NOW))

            return call

        cases: list[tuple[str, Callable[[], object]]] = [
            ("overview 7d", lambda: ins.overview("hr", 7)),
            ("overview 30d", lambda: ins.overview("hr", 30)),
            ("overview 90d", lambda: ins.overview("hr", 90)),
            ("overview 90d, cold (no cached days)", cold(lambda i: i.overview("hr", 90))),
            *(
                [
                    (
                        "naive overview 90d (all rows → Python)",
                        lambda: naive_overview(state / "audit.db", "hr", 90),
                    )
                ]
                if pg is None
                else []
            ),
            ("gaps 90d, text hidden", lambda: ins.gaps("hr", 90, show_text=False)),
            ("gaps 90d, text shown", lambda: ins.gaps("hr", 90, show_text=True)),
            ("documents 90d", lambda: ins.documents("hr", 90)),
            ("documents 90d, cold", cold(lambda i: i.documents("hr", 90))),
            ("feedback 50, text shown", lambda: ins.feedback("hr", show_text=True)),
            ("evals 30", lambda: ins.evals("hr")),
        ]
        out = [(name, rows, _median_ms(fn, repeat)) for name, fn in cases]
        audit.close()
        forget_open_vaults()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="10000,100000", help="comma-separated audit row counts (department hr)")
    ap.add_argument("--big", action="store_true", help="also 1,000,000 rows (slow to set up)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--postgres", action="store_true", help="also every case on PostgreSQL (pgserver)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.rows.split(",") if s] + ([1_000_000] if args.big else [])
    results = [(f"{name} [sqlite]", n, ms) for size in sizes for name, n, ms in run(size, args.repeat)]
    if args.postgres:
        results += _on_postgres(sizes, args.repeat)
    names = list(dict.fromkeys(name for name, _, _ in results))
    print(f"| method (median of {args.repeat}, ms) | " + " | ".join(f"{n:,} rows" for n in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name in names:
        cells = [f"{ms:.1f}" for nm, _, ms in results if nm == name]
        print(f"| {name} | " + " | ".join(cells) + " |")


def _on_postgres(sizes: list[int], repeat: int) -> list[tuple[str, int, float]]:
    """Each size in a fresh database of a throwaway cluster (deleted afterwards)."""
    import shutil

    import pgserver  # the dev extra: PostgreSQL 16 with pgvector, no system install

    from bot.store.backend import close_shared

    folder = Path(tempfile.mkdtemp(prefix="bench-admin-pg-"))
    server = pgserver.get_server(folder / "data", cleanup_mode="delete")
    out: list[tuple[str, int, float]] = []
    try:
        base = server.get_uri()
        for n, size in enumerate(sizes):
            server.psql(f"create database bench{n}")
            url = base.replace("/postgres?", f"/bench{n}?", 1)
            out += [(f"{name} [postgres]", k, ms) for name, k, ms in run(size, repeat, url)]
            close_shared()
    finally:
        close_shared()
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
