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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from bot.errors import BudgetExceeded, StoreError
from bot.store.db import connect


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


# ── shared by every backend (this module's SQLite store, bot.store.pg_usage) ───────────


def budget_checks(limits: BudgetLimits, user: str, department: str) -> list[tuple[str, str, int, float, str]]:
    """(column, value, max tokens, max cost, whose) for each dimension with a limit."""
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
    return [c for c in checks if c[2] or c[3]]


def check_budget(
    used: tuple[int, float],
    *,
    tokens: int,
    cost: float,
    max_tokens: int,
    max_cost: float,
    whose: str,
    now: datetime,
) -> None:
    """Raise ``BudgetExceeded`` when ``used`` today plus this estimate goes over a limit."""
    used_tokens, used_cost = int(used[0]), float(used[1])
    if max_tokens and used_tokens + tokens > max_tokens:
        raise BudgetExceeded(
            f"This would go over {whose} AI budget of {max_tokens:,} tokens "
            f"({used_tokens:,} used today). It resets at 00:00 UTC (in {_until(now)})."
        )
    if max_cost and used_cost + cost > max_cost + 1e-12:
        raise BudgetExceeded(
            f"This would go over {whose} AI budget of ${max_cost:,.2f} "
            f"(${used_cost:,.2f} used today). It resets at 00:00 UTC (in {_until(now)})."
        )


def attempt_row(attempt: Attempt) -> dict[str, Any]:
    """An ``attempts`` row: ISO time, its UTC day, lower-cased user, 0/1 flag."""
    row: dict[str, Any] = asdict(attempt)
    row["time"] = attempt.time.isoformat()
    row["day"] = attempt.time.astimezone(UTC).date().isoformat()
    row["user"] = attempt.user.lower()
    row["usage_reported"] = int(attempt.usage_reported)
    return row


def purge_day(cutoff: datetime) -> str:
    """Usage detail goes by whole past UTC days: today's budget ledger is never touched."""
    return min(cutoff.astimezone(UTC).date(), datetime.now(UTC).date()).isoformat()


def usage_filters(
    *,
    day: date | None = None,
    user: str | None = None,
    department: str | None = None,
    since: date | None = None,
) -> tuple[str, list[Any]]:
    """`` where …`` over ``attempts`` or ``reservations`` ("" when nothing is set); ``user``
    quoted: in PostgreSQL a bare ``user`` is the session's role name, not the column."""
    clause: list[str] = []
    args: list[Any] = []
    for sql, value in (
        ("day = ?", day.isoformat() if day else None),
        ('"user" = ?', user.lower() if user else None),
        ("department = ?", department or None),
        ("day >= ?", since.isoformat() if since else None),
    ):
        if value is not None:
            clause.append(sql)
            args.append(value)
    return (" where " + " and ".join(clause) if clause else ""), args


def since_day(since: date | datetime | None) -> date | None:
    return since.astimezone(UTC).date() if isinstance(since, datetime) else since


SPENT_SQL = "select coalesce(sum(tokens), 0) as tokens, coalesce(sum(cost), 0) as cost from reservations"
RESERVE_SQL = (
    'insert into reservations (request_id, day, "user", department, tokens, cost, state, "time") '
    "values (?, ?, ?, ?, ?, ?, 'reserved', ?)"
)
SETTLE_SQL = "update reservations set tokens = ?, cost = ?, state = 'settled' where id = ?"


def spent_on(column: str) -> str:
    """Today's ledger of one budget dimension ("user" or "department")."""
    return SPENT_SQL + f' where day = ? and "{column}" = ?'


USAGE_TABLES = ("attempts", "reservations")


def purge_usage(tx: Callable[[], AbstractContextManager[Any]], cutoff: datetime, batch: int) -> int:
    """Delete the usage detail of whole past UTC days, ``batch`` rows per transaction
    (``tx()`` opens one on either backend); today's budget ledger is never touched."""
    day, size, total = purge_day(cutoff), max(1, batch), 0
    for table in USAGE_TABLES:
        while True:
            with tx() as db:
                n = int(
                    db.execute(
                        f"delete from {table} where id in (select id from {table} where day < ? limit ?)",
                        [day, size],
                    ).rowcount
                )
            total += n
            if n < size:
                break
    return total


REPORT_SELECT = (
    'select "user", department, provider, model, count(distinct request_id) as requests, '
    "count(*) as attempts, sum(case when outcome != 'ok' then 1 else 0 end) as failures, "
    "sum(input_tokens) as input_tokens, sum(output_tokens) as output_tokens, {cost} as cost, "
    "{latency} as avg_latency_ms, min(day) as first_day, max(day) as last_day from attempts"
)
REPORT_ORDER = ' group by "user", department, provider, model order by cost desc, "user", department'


class UsageLedger(Protocol):
    """What the router, ``deptbot usage`` and retention need of a usage store; one
    implementation per backend (``UsageStore`` here, ``bot.store.pg_usage.PgUsageStore``)."""

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
    ) -> int: ...

    def settle(self, reservation: int, *, tokens: int, cost: float) -> None: ...

    def spent(
        self, *, day: date, user: str | None = None, department: str | None = None
    ) -> tuple[int, float]: ...

    def record(self, attempt: Attempt) -> None: ...

    def attempts(self, request_id: str | None = None) -> list[dict[str, Any]]: ...

    def report(
        self, *, user: str | None = None, department: str | None = None, since: date | datetime | None = None
    ) -> list[dict[str, Any]]: ...

    def count_older_than(self, kind: str, cutoff: datetime) -> int: ...

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int: ...

    def close(self) -> None: ...


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
                for column, value, max_tokens, max_cost, whose in budget_checks(limits, user, department):
                    row = db.execute(spent_on(column), [day, value]).fetchone()
                    check_budget(
                        row,
                        tokens=tokens,
                        cost=cost,
                        max_tokens=max_tokens,
                        max_cost=max_cost,
                        whose=whose,
                        now=now,
                    )
                cur = db.execute(
                    RESERVE_SQL, [request_id, day, user, department, tokens, cost, now.isoformat()]
                )
                return int(cur.lastrowid or 0)
        except sqlite3.Error as exc:
            raise StoreError("Could not check the AI budget.") from exc

    def settle(self, reservation: int, *, tokens: int, cost: float) -> None:
        """Replace a reservation's estimate with what the call really used (0 on failure)."""
        try:
            with self._tx() as db:
                db.execute(SETTLE_SQL, [tokens, cost, reservation])
        except sqlite3.Error as exc:
            raise StoreError("Could not settle the AI budget.") from exc

    def spent(
        self, *, day: date, user: str | None = None, department: str | None = None
    ) -> tuple[int, float]:
        clause, args = usage_filters(day=day, user=user, department=department)
        row = self._db().execute(SPENT_SQL + clause, args).fetchone()
        return int(row[0]), float(row[1])

    # ── attempts ─────────────────────────────────────────────────────────────────────

    def record(self, attempt: Attempt) -> None:
        row = attempt_row(attempt)
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
        clause, args = usage_filters(user=user, department=department, since=since_day(since))
        select = REPORT_SELECT.format(cost="round(sum(cost), 6)", latency="round(avg(latency_ms), 1)")
        sql = select + clause + REPORT_ORDER
        return list(self._db().query(sql, args))

    # ── retention (``bot.governance.retention``) ─────────────────────────────────────

    def count_older_than(self, kind: str, cutoff: datetime) -> int:
        if kind != "usage":
            return 0
        day = cutoff.astimezone(UTC).date().isoformat()
        db = self._db()
        return sum(
            int(db.execute(f"select count(*) from {t} where day < ?", [day]).fetchone()[0])
            for t in USAGE_TABLES
        )

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """Delete usage detail ("usage": attempts and budget reservations) of UTC days
        before ``cutoff``'s day, ``batch`` rows per transaction. Only whole past days go,
        so today's budget ledger is never touched (any cutoff before today keeps it)."""
        if kind != "usage":
            return 0
        try:
            return purge_usage(self._tx, cutoff, batch)
        except sqlite3.Error as exc:
            raise StoreError("Could not purge expired usage detail.") from exc

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None


def usage_report(
    store: UsageLedger,
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
