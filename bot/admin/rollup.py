"""Per-day aggregates of the audit log, kept in memory for days that are over.

A 90-day overview over a million rows cannot rescan the million on every page view and
stay fast, but almost all of those rows belong to days that are closed: rows are written
when a request ends, stamped with that moment. So each department's per-day aggregates
are computed once and reused, and only the open days (today and yesterday, for clock
skew) are read again on each view.

Reuse is exact, not a TTL guess: the cache remembers the highest ``seq`` it has seen per
department, and every view asks SQLite (through the primary key, so it costs a handful
of rows) whether any row written since landed in a cached day — such days are dropped
and recomputed. A retention purge (the oldest ``seq`` moves) or a different database
drops everything. Only numbers are cached, never text. Both backends (``Reader``) run the
same statements: ``seq`` is the chain's order on PostgreSQL too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Generic, TypeVar

from bot.admin.auditread import Reader

T = TypeVar("T")

OPEN_DAYS = 2  # today and yesterday are always read again
KEEP_DAYS = 400  # cached days older than this are dropped
MAX_KEYS = 64  # (database, department) pairs remembered


@dataclass
class _State:
    generation: tuple[object, ...]  # the records' identity, oldest seq, its request id
    seen_seq: int
    days: dict[date, object]


class DayCache(Generic[T]):
    """``compute(reader, department, first_day)`` → {day: value} for days from
    ``first_day`` through today (days without rows may be missing); ``empty()`` stands in
    for them."""

    def __init__(
        self,
        compute: Callable[[Reader, str, date], dict[date, T]],
        empty: Callable[[], T],
    ) -> None:
        self._compute = compute
        self._empty = empty
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], _State] = {}  # (records key, department)

    def clear(self) -> None:
        """Forget every cached day (benches measure a cold start with it)."""
        with self._lock:
            self._state.clear()

    def days(
        self,
        conn: Reader,
        department: str,
        start: date,
        today: date,
    ) -> dict[date, T]:
        """The value of every day from ``start`` through ``today``."""
        gen = conn.generation()
        key = (conn.key, department)
        head = int(conn.execute("select coalesce(max(seq), 0) from requests").fetchone()[0])
        closed_before = today - timedelta(days=OPEN_DAYS - 1)  # days < this are closed
        with self._lock:
            state = self._state.get(key)
            if state is None or state.generation != gen:
                state = _State(gen, head, {})
                self._state.pop(key, None)
                self._state[key] = state
                while len(self._state) > MAX_KEYS:  # oldest first (dicts keep insertion order)
                    del self._state[next(iter(self._state))]
            elif head > state.seen_seq:
                for (day,) in conn.execute(
                    'select distinct substr("time", 1, 10) from requests '
                    'where seq > ? and department = ? and "time" < ?',
                    [state.seen_seq, department, closed_before.isoformat()],
                ):
                    try:
                        state.days.pop(date.fromisoformat(str(day)), None)  # a late row: recompute
                    except ValueError:
                        continue
                state.seen_seq = head
            cached = dict(state.days)
        wanted = [start + timedelta(days=i) for i in range((today - start).days + 1)]
        missing = [d for d in wanted if d not in cached]
        fresh: dict[date, T] = {}
        if missing:
            fresh = self._compute(conn, department, min(missing))
        out: dict[date, T] = {}
        keep: dict[date, T] = {}
        for d in wanted:
            if d in cached:
                out[d] = cached[d]  # type: ignore[assignment]
                continue
            out[d] = fresh.get(d) or self._empty()
            if d < closed_before:
                keep[d] = out[d]
        if keep:
            with self._lock:
                state = self._state.get(key)
                if state is not None and state.generation == gen:
                    state.days.update(keep)
                    floor = today - timedelta(days=KEEP_DAYS)
                    for d in [d for d in state.days if d < floor]:
                        del state.days[d]
        return out
