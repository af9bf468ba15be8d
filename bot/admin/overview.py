"""The overview page's numbers: a few grouped SQL scans of one department's audit rows.

Aggregation happens in the database (``group by day, status``) so a 90-day window over 100k
rows moves a few hundred small tuples into Python, not 100k rows; only latencies travel
row by row (percentiles need them), as bare floats. Budgets come from the usage store's
reservation ledger — the very rows the router checks before a provider call — so "today
at 80 % of the budget" here means what the refusal at 100 % will mean.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from bot.admin.auditread import ASKED, ASKED_R, IN_QUESTIONS, Reader, window
from bot.admin.reports import (
    BudgetUse,
    DayPoint,
    Overview,
    PilotComparison,
    RouteMix,
    Satisfaction,
    StatusCounts,
    WeekStats,
)
from bot.admin.rollup import DayCache
from bot.config.models import Department
from bot.store.usage import BudgetLimits


@dataclass
class DayAgg:
    """One UTC day of one department: counts, sums and its latencies (sorted)."""

    status: dict[str, int] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latencies: np.ndarray = field(default_factory=lambda: np.zeros(0))


def day_sql(conn: Reader) -> str:
    """One department's days from a first day on (args: department, ISO day)."""
    return (
        "select substr(\"time\", 1, 10), status, case when generator = 'extractive' then 'local' "
        "when route in ('cloud', 'private', 'local') then route else 'none' end, count(*), "
        "sum(cache_hit), sum(input_tokens), sum(output_tokens), sum(cost), "
        f"{conn.joined('coalesce(latency_ms, 0)')} "
        f'from requests where department = ? and "time" >= ? and {IN_QUESTIONS} and {ASKED} '
        "group by 1, 2, 3"
    )


def compute_days(conn: Reader, department: str, first: date) -> dict[date, DayAgg]:
    """Aggregates of every day from ``first`` on, in ONE grouped scan answered from the
    covering index on (department, time, …): latencies travel as one joined string per
    group (parsed by numpy), not as one Python object per request."""
    out: dict[date, DayAgg] = {}
    lat: dict[date, list[np.ndarray]] = defaultdict(list)
    for day, status, route, n, hits, tin, tout, c, latencies in conn.execute(
        day_sql(conn),
        [department, first.isoformat()],
    ):
        key = _day(day)
        d = out.setdefault(key, DayAgg())
        d.status[status] = d.status.get(status, 0) + n
        d.routes[route] = d.routes.get(route, 0) + n
        d.cache_hits += int(hits or 0)
        d.input_tokens += int(tin or 0)
        d.output_tokens += int(tout or 0)
        d.cost += float(c or 0.0)
        if status != "denied" and latencies:  # a refusal's instant reply is not a wait
            lat[key].append(np.array(str(latencies).split(","), dtype=np.float64))
    for key, parts in lat.items():
        out[key].latencies = np.sort(np.concatenate(parts))
    return out


def _day(text: object) -> date:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return date.min


DAYS: DayCache[DayAgg] = DayCache(compute_days, DayAgg)
"""Closed days of every department, shared by every ``Insights`` of the process."""


def _status(counts: dict[str, int]) -> StatusCounts:
    return StatusCounts(
        answered=counts.get("answered", 0),
        dont_know=counts.get("dont_know", 0),
        denied=counts.get("denied", 0),
        sources_only=counts.get("sources_only", 0),
        error=counts.get("error", 0),
    )


def quantile(values: np.ndarray, q: float) -> float | None:
    """Nearest-rank percentile (a value really observed); None when empty."""
    n = len(values)
    if n == 0:
        return None
    k = max(1, math.ceil(n * q)) - 1
    return float(np.partition(values, k)[k])


def _votes(audit: Reader, department: str, lo: str, hi: str | None) -> dict[date, dict[str, int]]:
    """👍/👎 per day of the voted request. Driven from ``feedback`` (a few rows per hundred
    requests), each joined to its request by id — never a scan of the requests. A vote is
    never older than its request, so votes cast before the window (less a day: vote times
    carry the server's UTC offset) are skipped before the join."""
    if not audit.has_table("feedback"):
        return {}
    try:
        voted_from = (date.fromisoformat(lo[:10]) - timedelta(days=1)).isoformat()
    except ValueError:
        voted_from = ""
    out: dict[date, dict[str, int]] = {}
    for day, value, n in audit.execute(
        "select substr(r.time, 1, 10), f.value, count(*) from feedback f "
        f"{audit.driven_join} requests r on r.request_id = f.request_id "
        "where f.value in ('up', 'down') and f.time >= ? and r.department = ? and r.time >= ? "
        f"and {ASKED_R}" + (" and r.time < ?" if hi else "") + " group by 1, 2",
        [voted_from, department, lo, *([hi] if hi else [])],
    ):
        out.setdefault(_day(day), {})[str(value)] = int(n)
    return out


def build_overview(
    audit: Reader | None,
    usage: Reader | None,
    dept: Department,
    days: int,
    today: date,
    limits: BudgetLimits,
) -> Overview:
    start, since = window(today, days)
    name = dept.name
    per_day: dict[date, DayAgg] = {}
    votes: dict[date, dict[str, int]] = {}
    if audit is not None and audit.has_table("requests"):
        per_day = DAYS.days(audit, name, start, today)
        votes = _votes(audit, name, since, None)
    series = []
    totals: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    cache_hits = input_tokens = output_tokens = 0
    cost = 0.0
    for i in range(days):
        day = start + timedelta(days=i)
        d = per_day.get(day) or DayAgg()
        v = votes.get(day, {})
        totals.update(d.status)
        routes.update(d.routes)
        cache_hits += d.cache_hits
        input_tokens += d.input_tokens
        output_tokens += d.output_tokens
        cost += d.cost
        series.append(
            DayPoint(
                day=day,
                status=_status(d.status),
                up=v.get("up", 0),
                down=v.get("down", 0),
                tokens=d.input_tokens + d.output_tokens,
                cost=round(d.cost, 6),
                p50_ms=quantile(d.latencies, 0.5),
                p95_ms=quantile(d.latencies, 0.95),
            )
        )
    lat = [d.latencies for d in per_day.values() if len(d.latencies)]
    every = np.concatenate(lat) if lat else np.zeros(0)
    status = _status(dict(totals))
    allowed = status.total - status.denied
    return Overview(
        department=name,
        days=days,
        start=start,
        end=today,
        series=tuple(series),
        totals=status,
        satisfaction=Satisfaction(up=sum(p.up for p in series), down=sum(p.down for p in series)),
        p50_ms=quantile(every, 0.5),
        p95_ms=quantile(every, 0.95),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=round(cost, 6),
        budget=_budget(usage, name, start, today, limits),
        routes=RouteMix(
            cloud=routes["cloud"], private=routes["private"], extractive=routes["local"], none=routes["none"]
        ),
        cache_hits=cache_hits,
        cache_rate=cache_hits / allowed if allowed else None,
        pilot=_pilot(audit, dept, today) if dept.pilot is not None else None,
    )


def _budget(
    usage: Reader | None, department: str, start: date, today: date, limits: BudgetLimits
) -> BudgetUse:
    by_day: dict[str, tuple[int, float]] = {}
    if usage is not None and usage.has_table("reservations"):
        for day, tokens, cost in usage.execute(
            "select day, sum(tokens), sum(cost) from reservations where department = ? and day >= ? "
            "group by day",
            [department, start.isoformat()],
        ):
            by_day[str(day)] = (int(tokens or 0), float(cost or 0.0))
    now = by_day.get(today.isoformat(), (0, 0.0))
    return BudgetUse(
        daily_tokens_limit=limits.department_tokens,
        daily_cost_limit=limits.department_cost,
        today_tokens=now[0],
        today_cost=round(now[1], 6),
        peak_day_tokens=max((t for t, _ in by_day.values()), default=0),
        peak_day_cost=round(max((c for _, c in by_day.values()), default=0.0), 6),
        period_tokens=sum(t for t, _ in by_day.values()),
        period_cost=round(sum(c for _, c in by_day.values()), 6),
    )


def _pilot(audit: Reader | None, dept: Department, today: date) -> PilotComparison:
    """The last 7 UTC days against the 7 before. With ``pilot:`` set only pilot members
    can ask, so every question of the department is a pilot question."""
    this_start = today - timedelta(days=6)
    last_start = this_start - timedelta(days=7)
    days: dict[date, DayAgg] = {}
    votes: dict[date, dict[str, int]] = {}
    if audit is not None and audit.has_table("requests"):
        days = DAYS.days(audit, dept.name, last_start, today)
        votes = _votes(audit, dept.name, last_start.isoformat(), None)
    return PilotComparison(
        this_week=_week(audit, dept.name, this_start, today, days, votes),
        last_week=_week(audit, dept.name, last_start, this_start - timedelta(days=1), days, votes),
        entries=len(dept.pilot_entries),
        channels=len(dept.pilot_channels),
    )


def _week(
    audit: Reader | None,
    department: str,
    start: date,
    end: date,
    days: dict[date, DayAgg],
    votes: dict[date, dict[str, int]],
) -> WeekStats:
    span = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    counts: Counter[str] = Counter()
    for d in span:
        counts.update(days[d].status if d in days else {})
    lat = [days[d].latencies for d in span if d in days and len(days[d].latencies)]
    askers = 0
    if audit is not None and audit.has_table("requests"):
        askers = int(
            audit.execute(
                'select count(distinct "user") from requests where department = ? and "time" >= ? '
                f'and "time" < ? and {IN_QUESTIONS} and {ASKED}',
                [department, start.isoformat(), (end + timedelta(days=1)).isoformat()],
            ).fetchone()[0]
        )
    return WeekStats(
        start=start,
        end=end,
        questions=sum(counts.values()),
        answered=counts.get("answered", 0),
        dont_know=counts.get("dont_know", 0),
        satisfaction=Satisfaction(
            up=sum(votes.get(d, {}).get("up", 0) for d in span),
            down=sum(votes.get(d, {}).get("down", 0) for d in span),
        ),
        p50_ms=quantile(np.concatenate(lat) if lat else np.zeros(0), 0.5),
        askers=askers,
    )
