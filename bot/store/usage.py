"""Usage and budgets in SQLite (WAL) via sqlite-utils.

- ``attempts``: one row per generation attempt (provider call, extractive fallback,
  refusal): who, which department, provider, model, tier, route, real tokens, cost,
  latency and outcome ("ok", "budget", "timeout", "auth", …).
- ``reservations``: the budget ledger. Before a provider call the router reserves the
  estimate; after it, the row is settled to the real tokens and cost (0 on failure). The
  check-and-insert runs in one ``BEGIN IMMEDIATE`` transaction, so concurrent requests —
  threads or processes — cannot together overspend. A reservation left by a crash keeps
  counting its estimate until the day ends (errs on the side of not overspending).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.errors import BudgetExceeded, StoreError
from bot.store.db import connect, where


@dataclass(frozen=True)
class BudgetLimits:
    """Daily limits (UTC days); 0 means no limit on that dimension."""

    user_tokens: int = 0
    user_cost: float = 0.0
    department_tokens: int = 0
    department_cost: float = 0.0


@dataclass(frozen=True)
class Attempt:
    request_id: str
    time: datetime
    user: str
    department: str
    provider: str  # anthropic | openai | private | extractive | none
    model: str
    tier: str
    route: str  # cloud | private | local | none
    outcome: str  # ok | budget | timeout | connection | rate-limited | auth | … | circuit-open
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    usage_reported: bool = True


def next_reset(now: datetime) -> datetime:
    """Budgets are per UTC day: the next 00:00 UTC."""
    now = now.astimezone(UTC)
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def _until(now: datetime) -> str:
    mins = max(1, int((next_reset(now) - now.astimezone(UTC)).total_seconds() // 60))
    return f"{mins // 60} h {mins % 60} min" if mins >= 60 else f"{mins} min"


class UsageStore:
    """Attempts + budget ledger; safe to share across threads (one connection per thread)."""

    def __init__(self, *, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self._migrate(self._db())
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the usage database at {path}.") from exc

    def _db(self) -> sqlite_utils.Database:
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite_utils.Database(connect(self.path))
            self._local.db = db
        return db

    @staticmethod
    def _migrate(db: sqlite_utils.Database) -> None:
        names = set(db.table_names())
        if "attempts" not in names:
            db.table("attempts").create(
                {
                    "id": int,
                    "request_id": str,
                    "time": str,
                    "day": str,
                    "user": str,
                    "department": str,
                    "provider": str,
                    "model": str,
                    "tier": str,
                    "route": str,
                    "outcome": str,
                    "input_tokens": int,
                    "output_tokens": int,
                    "cost": float,
                    "latency_ms": float,
                    "usage_reported": int,
                },
                pk="id",
                if_not_exists=True,
            )
            db.table("attempts").create_index(["day", "user"], if_not_exists=True)
            db.table("attempts").create_index(["request_id"], if_not_exists=True)
        if "reservations" not in names:
            db.table("reservations").create(
                {
                    "id": int,
                    "request_id": str,
                    "day": str,
                    "user": str,
                    "department": str,
                    "tokens": int,
                    "cost": float,
                    "state": str,  # reserved | settled
                    "time": str,
                },
                pk="id",
                if_not_exists=True,
            )
            db.table("reservations").create_index(["day", "user"], if_not_exists=True)
            db.table("reservations").create_index(["day", "department"], if_not_exists=True)

    @contextmanager
    def _tx(self) -> Iterator[sqlite_utils.Database]:
        db = self._db()
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
        else:
            db.conn.execute("COMMIT")

    # ── budgets ──────────────────────────────────────────────────────────────────────

    def reserve(
        self,
        *,
        request_id: str,
        user: str,
        department: str,
        tokens: int,
        cost: float,
        limits: BudgetLimits,
        now: datetime,
    ) -> int:
        """Reserve an estimate or raise ``BudgetExceeded`` (nothing reserved)."""
        day = now.astimezone(UTC).date().isoformat()
        user = user.lower()
        try:
            with self._tx() as db:
                checks = (
                    ("user", user, limits.user_tokens, limits.user_cost, "your daily"),
                    (
                        "department",
                        department,
                        limits.department_tokens,
                        limits.department_cost,
                        "the department's daily",
                    ),
                )
                for column, value, max_tokens, max_cost, whose in checks:
                    if not (max_tokens or max_cost):
                        continue
                    row = db.execute(
                        f"select coalesce(sum(tokens), 0), coalesce(sum(cost), 0) from reservations "
                        f"where day = ? and {column} = ?",
                        [day, value],
                    ).fetchone()
                    if max_tokens and row[0] + tokens > max_tokens:
                        raise BudgetExceeded(
                            f"This would go over {whose} AI budget of {max_tokens:,} tokens "
                            f"({row[0]:,} used today). It resets at 00:00 UTC (in {_until(now)})."
                        )
                    if max_cost and row[1] + cost > max_cost + 1e-12:
                        raise BudgetExceeded(
                            f"This would go over {whose} AI budget of ${max_cost:,.2f} "
                            f"(${row[1]:,.2f} used today). It resets at 00:00 UTC (in {_until(now)})."
                        )
                cur = db.execute(
                    "insert into reservations (request_id, day, user, department, tokens, cost, state, time) "
                    "values (?, ?, ?, ?, ?, ?, 'reserved', ?)",
                    [request_id, day, user, department, tokens, cost, now.isoformat()],
                )
                return int(cur.lastrowid or 0)
        except sqlite3.Error as exc:
            raise StoreError("Could not check the AI budget.") from exc

    def settle(self, reservation: int, *, tokens: int, cost: float) -> None:
        """Replace a reservation's estimate with what the call really used (0 on failure)."""
        try:
            with self._tx() as db:
                db.execute(
                    "update reservations set tokens = ?, cost = ?, state = 'settled' where id = ?",
                    [tokens, cost, reservation],
                )
        except sqlite3.Error as exc:
            raise StoreError("Could not settle the AI budget.") from exc

    def spent(
        self, *, day: date, user: str | None = None, department: str | None = None
    ) -> tuple[int, float]:
        where, args = ["day = ?"], [day.isoformat()]
        if user:
            where.append("user = ?")
            args.append(user.lower())
        if department:
            where.append("department = ?")
            args.append(department)
        row = (
            self._db()
            .execute(
                "select coalesce(sum(tokens), 0), coalesce(sum(cost), 0) from reservations where "
                + " and ".join(where),
                args,
            )
            .fetchone()
        )
        return int(row[0]), float(row[1])

    # ── attempts ─────────────────────────────────────────────────────────────────────

    def record(self, attempt: Attempt) -> None:
        row: dict[str, Any] = asdict(attempt)
        row["time"] = attempt.time.isoformat()
        row["day"] = attempt.time.astimezone(UTC).date().isoformat()
        row["user"] = attempt.user.lower()
        row["usage_reported"] = int(attempt.usage_reported)
        try:
            with self._tx() as db:
                db.table("attempts").insert(row)
        except sqlite3.Error as exc:
            raise StoreError("Could not record AI usage.") from exc

    def attempts(self, request_id: str | None = None) -> list[dict[str, Any]]:
        if request_id is None:
            return list(self._db().query("select * from attempts order by id"))
        return list(self._db().query("select * from attempts where request_id = ? order by id", [request_id]))

    def report(
        self, *, user: str | None = None, department: str | None = None, since: date | datetime | None = None
    ) -> list[dict[str, Any]]:
        """Totals per user, department, provider and model (the ``deptbot usage`` table)."""
        clause, args = where(user=user.lower() if user else None, department=department)
        if since is not None:
            day = since.astimezone(UTC).date() if isinstance(since, datetime) else since
            clause += (" and" if clause else " where") + " day >= ?"
            args.append(day.isoformat())
        sql = (
            "select user, department, provider, model, count(distinct request_id) as requests, "
            "count(*) as attempts, sum(outcome != 'ok') as failures, sum(input_tokens) as input_tokens, "
            "sum(output_tokens) as output_tokens, round(sum(cost), 6) as cost, "
            "round(avg(latency_ms), 1) as avg_latency_ms, min(day) as first_day, max(day) as last_day "
            "from attempts"
            + clause
            + " group by user, department, provider, model order by cost desc, user, department"
        )
        return list(self._db().query(sql, args))

    # ── retention (``bot.governance.retention``) ─────────────────────────────────────

    def count_older_than(self, kind: str, cutoff: datetime) -> int:
        if kind != "usage":
            return 0
        day = cutoff.astimezone(UTC).date().isoformat()
        db = self._db()
        return sum(
            int(db.execute(f"select count(*) from {t} where day < ?", [day]).fetchone()[0])
            for t in ("attempts", "reservations")
        )

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """Delete usage detail ("usage": attempts and budget reservations) of UTC days
        before ``cutoff``'s day, ``batch`` rows per transaction. Only whole past days go,
        so today's budget ledger is never touched (any cutoff before today keeps it)."""
        if kind != "usage":
            return 0
        day = min(cutoff.astimezone(UTC).date(), datetime.now(UTC).date()).isoformat()
        total = 0
        try:
            for table in ("attempts", "reservations"):
                while True:
                    with self._tx() as db:
                        n = db.execute(
                            f"delete from {table} where id in (select id from {table} where day < ? limit ?)",
                            [day, max(1, batch)],
                        ).rowcount
                    total += n
                    if n < max(1, batch):
                        break
        except sqlite3.Error as exc:
            raise StoreError("Could not purge expired usage detail.") from exc
        return total

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None


def usage_report(
    store: UsageStore,
    *,
    user: str | None = None,
    department: str | None = None,
    since: date | datetime | None = None,
) -> list[dict[str, Any]]:
    return store.report(user=user, department=department, since=since)


REPORT_COLUMNS = (
    ("user", "user"),
    ("department", "department"),
    ("provider", "provider"),
    ("model", "model"),
    ("requests", "requests"),
    ("failures", "failures"),
    ("input_tokens", "input tok"),
    ("output_tokens", "output tok"),
    ("cost", "cost $"),
)


def format_usage_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table (numbers right-aligned) with a total line; "No usage recorded." when empty."""
    if not rows:
        return "No usage recorded."

    def cell(key: str, value: Any) -> str:
        if key == "cost":
            return f"{float(value or 0):.4f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value if value is not None else "")

    total = {
        "user": "total",
        **{
            k: sum(int(r.get(k) or 0) for r in rows)
            for k in ("requests", "failures", "input_tokens", "output_tokens")
        },
        "cost": sum(float(r.get("cost") or 0) for r in rows),
    }
    table = [[cell(k, r.get(k)) for k, _ in REPORT_COLUMNS] for r in [*rows, total]]
    headers = [h for _, h in REPORT_COLUMNS]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    numeric = {
        i
        for i, (k, _) in enumerate(REPORT_COLUMNS)
        if k in ("requests", "failures", "input_tokens", "output_tokens", "cost")
    }

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in numeric else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    out = [line(headers), "  ".join("─" * w for w in widths)]
    out += [line(r) for r in table[:-1]]
    out += ["  ".join("─" * w for w in widths), line(table[-1])]
    return "\n".join(out)
