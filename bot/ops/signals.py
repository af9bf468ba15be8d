"""What the alerts and the digest count, read from the audit log (``<state>/audit.db``).

Only facts columns are read (status, confidence, platform, time, department, feedback
values) — never question or comment text, which lives sealed in other tables. Eval traffic
(``platform = 'eval'``) and admin actions (refreshes, ``platform = 'admin'``) are not
questions people asked, so they are left out of every count.

The audit log stores ``time`` as ISO-8601 UTC text; ranges compare it as text, which orders
correctly for the UTC times deptbot writes.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.store.db import connect

NOT_QUESTIONS = ("eval", "admin")
ANSWER_STATUSES = ("answered", "dont_know", "sources_only")


@dataclass(frozen=True)
class Outcomes:
    questions: int = 0  # every request people made (denied and errors included)
    answered: int = 0
    dont_know: int = 0
    denied: int = 0
    error: int = 0

    @property
    def dont_know_rate(self) -> float | None:
        """Share of "I don't know" among answers and refusals (denials and errors aside)."""
        base = self.answered + self.dont_know
        return self.dont_know / base if base else None

    @property
    def answered_share(self) -> float | None:
        return self.answered / self.questions if self.questions else None


@dataclass(frozen=True)
class Votes:
    up: int = 0
    down: int = 0

    @property
    def total(self) -> int:
        return self.up + self.down

    @property
    def down_share(self) -> float | None:
        return self.down / self.total if self.total else None

    @property
    def up_share(self) -> float | None:
        return self.up / self.total if self.total else None


def _iso(t: datetime) -> str:
    return t.isoformat()


class AuditSignals:
    """Read-only counts over the audit log for one department and time range."""

    def __init__(self, path: Path, *, available: bool = True) -> None:
        """``available`` False: the audit log is not this SQLite file (it lives in
        PostgreSQL, ``DEPTBOT_DATABASE_URL``), so nothing here can be counted — callers say
        so instead of reporting zeros."""
        self.path = Path(path)
        self.available = available
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():  # nobody asked anything yet: never create the log here
                return None
            self._conn = connect(self.path)
        return self._conn

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        if not self.available:
            return []
        with self._lock:
            db = self._db()
            if db is None:
                return []
            try:
                return list(db.execute(sql, args).fetchall())
            except sqlite3.OperationalError as exc:  # no requests table yet
                if "no such table" in str(exc):
                    return []
                raise

    def outcomes(self, department: str, start: datetime, end: datetime) -> Outcomes:
        rows = self._rows(
            "select status, count(*) from requests where department = ? and time >= ? and time < ?"
            f" and platform not in ({','.join('?' * len(NOT_QUESTIONS))}) group by status",
            (department, _iso(start), _iso(end), *NOT_QUESTIONS),
        )
        by = {str(s): int(n) for s, n in rows}  # type: ignore[call-overload]
        return Outcomes(
            questions=sum(by.values()),
            answered=by.get("answered", 0),
            dont_know=by.get("dont_know", 0),
            denied=by.get("denied", 0),
            error=by.get("error", 0),
        )

    def votes(self, department: str, start: datetime, end: datetime) -> Votes:
        """👍/👎 on answers given in the range (a vote counts on the answer's day)."""
        rows = self._rows(
            "select f.value, count(*) from feedback f join requests r on r.request_id = f.request_id"
            " where r.department = ? and r.time >= ? and r.time < ?"
            f" and r.platform not in ({','.join('?' * len(NOT_QUESTIONS))}) group by f.value",
            (department, _iso(start), _iso(end), *NOT_QUESTIONS),
        )
        by = {str(v): int(n) for v, n in rows}  # type: ignore[call-overload]
        return Votes(up=by.get("up", 0), down=by.get("down", 0))

    def score_bins(self, department: str, start: datetime, end: datetime, bins: int = 10) -> list[int]:
        """Retrieval scores of uncached answers and refusals in the range (the PSI input),
        counted into ``bins`` equal-width bins over [0, 1] inside SQLite
        (clamped like ``bot.ops.psi.shares``), so a busy department's 14 days of scores are
        never loaded into memory."""
        rows = self._rows(
            "select min(cast(min(max(confidence, 0.0), 1.0) * ? as integer), ? - 1) as bin, count(*)"
            " from requests where department = ? and time >= ? and time < ?"
            f" and status in ({','.join('?' * len(ANSWER_STATUSES))}) and coalesce(cache_hit, 0) = 0"
            f" and platform not in ({','.join('?' * len(NOT_QUESTIONS))}) and confidence is not null"
            " group by bin",
            (bins, bins, department, _iso(start), _iso(end), *ANSWER_STATUSES, *NOT_QUESTIONS),
        )
        counts = [0] * bins
        for b, n in rows:
            counts[int(b)] += int(n)  # type: ignore[call-overload]
        return counts

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
