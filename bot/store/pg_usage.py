"""Usage and budgets on PostgreSQL: the ``UsageStore`` contract, atomic across replicas.

A reservation checks today's totals and inserts its row in one transaction that first
takes a transaction-level advisory lock per limited dimension (the department, then the
user: one fixed order, so two requests never wait on each other in a cycle). Requests of
other users and departments do not queue behind each other; two replicas reserving for
the same user do, so together they cannot overspend. The rules and messages are
``bot.store.usage``'s, shared with the SQLite store.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import psycopg

from bot.errors import StoreError
from bot.store.backend import Database
from bot.store.pg_store import PgStore
from bot.store.usage import (
    REPORT_ORDER,
    REPORT_SELECT,
    RESERVE_SQL,
    SETTLE_SQL,
    SPENT_SQL,
    USAGE_TABLES,
    Attempt,
    BudgetLimits,
    attempt_row,
    budget_checks,
    check_budget,
    purge_usage,
    since_day,
    spent_on,
    usage_filters,
)

_ATTEMPT_COLUMNS = (
    "request_id", "time", "day", "user", "department", "provider", "model", "tier", "route", "outcome",
    "input_tokens", "output_tokens", "cost", "latency_ms", "usage_reported",
)  # fmt: skip
_INSERT_ATTEMPT = (
    f"insert into attempts ({', '.join(chr(34) + c + chr(34) for c in _ATTEMPT_COLUMNS)}) "
    f"values ({', '.join('?' * len(_ATTEMPT_COLUMNS))})"
)


class PgUsageStore(PgStore):
    """Attempts + budget ledger in PostgreSQL; thread-safe (pooled connections)."""

    WHAT = "the usage tables"

    def __init__(self, db: Database) -> None:
        self._open_pg(db)

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
        checks = sorted(budget_checks(limits, user, department), key=lambda c: c[0] != "department")
        try:
            with self.db.tx() as c:
                for column, value, *_ in checks:
                    c.execute(
                        "select pg_advisory_xact_lock(hashtextextended(?, 0))", [f"budget:{column}:{value}"]
                    )
                for column, value, max_tokens, max_cost, whose in checks:
                    row = c.execute(spent_on(column), [day, value]).fetchone()
                    assert row is not None  # an aggregate always returns one row
                    check_budget(
                        (row[0], row[1]),
                        tokens=tokens,
                        cost=cost,
                        max_tokens=max_tokens,
                        max_cost=max_cost,
                        whose=whose,
                        now=now,
                    )
                got = c.execute(
                    RESERVE_SQL + " returning id",
                    [request_id, day, user, department, tokens, cost, now.isoformat()],
                ).fetchone()
                assert got is not None
                return int(got[0])
        except psycopg.Error as exc:
            raise StoreError("Could not check the AI budget.") from exc

    def settle(self, reservation: int, *, tokens: int, cost: float) -> None:
        """Replace a reservation's estimate with what the call really used (0 on failure)."""
        try:
            with self.db.tx() as c:
                c.execute(SETTLE_SQL, [tokens, cost, reservation])
        except psycopg.Error as exc:
            raise StoreError("Could not settle the AI budget.") from exc

    def spent(
        self, *, day: date, user: str | None = None, department: str | None = None
    ) -> tuple[int, float]:
        clause, args = usage_filters(day=day, user=user, department=department)
        row = self._rows(SPENT_SQL + clause, args)[0]
        return int(row["tokens"]), float(row["cost"])

    # ── attempts ─────────────────────────────────────────────────────────────────────

    def record(self, attempt: Attempt) -> None:
        row = attempt_row(attempt)
        try:
            with self.db.tx() as c:
                c.execute(_INSERT_ATTEMPT, [row[k] for k in _ATTEMPT_COLUMNS])
        except psycopg.Error as exc:
            raise StoreError("Could not record AI usage.") from exc

    def attempts(self, request_id: str | None = None) -> list[dict[str, Any]]:
        if request_id is None:
            return self._rows("select * from attempts order by id", [])
        return self._rows("select * from attempts where request_id = ? order by id", [request_id])

    def report(
        self, *, user: str | None = None, department: str | None = None, since: date | datetime | None = None
    ) -> list[dict[str, Any]]:
        """Totals per user, department, provider and model (the ``deptbot usage`` table)."""
        clause, args = usage_filters(user=user, department=department, since=since_day(since))
        select = REPORT_SELECT.format(
            cost="round(sum(cost)::numeric, 6)::float8",
            latency="round(avg(latency_ms)::numeric, 1)::float8",
        )
        sql = select + clause + REPORT_ORDER
        rows = self._rows(sql, args)
        for r in rows:  # PostgreSQL sums bigints as numeric; the table wants ints like SQLite's
            for k in ("requests", "attempts", "failures", "input_tokens", "output_tokens"):
                r[k] = int(r[k] or 0)
        return rows

    # ── retention (``bot.governance.retention``) ─────────────────────────────────────

    def count_older_than(self, kind: str, cutoff: datetime) -> int:
        if kind != "usage":
            return 0
        day = cutoff.astimezone(UTC).date().isoformat()
        return sum(
            int(self._rows(f"select count(*) as n from {t} where day < ?", [day])[0]["n"])
            for t in USAGE_TABLES
        )

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """As ``UsageStore.purge_older_than``: whole past UTC days, ``batch`` rows a transaction."""
        if kind != "usage":
            return 0
        try:
            return purge_usage(self.db.tx, cutoff, batch)
        except psycopg.Error as exc:
            raise StoreError("Could not purge expired usage detail.") from exc

    def _rows(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        return self.db.rows(sql, args, what="AI usage")

    def close(self) -> None:
        """The pool is shared by every store of the process (``bot.store.backend``)."""
