"""What the alerts and the digest count, read from the audit records (``<state>/audit.db``,
or PostgreSQL with ``DEPTBOT_DATABASE_URL``: ``bot.admin.auditread.ConsoleRecords``, the
console's read-only port, so both backends run the same statements).

Only facts columns are read (status, confidence, platform, time, department, feedback
values) — never question or comment text, which lives sealed in other tables. Eval traffic
(``platform = 'eval'``) and admin actions (refreshes, ``platform = 'admin'``) are not
questions people asked, so they are left out of every count (``auditread.ASKED``, the
console's own rule).

The audit log stores ``time`` as ISO-8601 UTC text; ranges compare it as text, which orders
correctly for the UTC times deptbot writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.admin.auditread import ASKED, ASKED_R, ConsoleRecords, Reader, SqliteRecords

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
    """Read-only counts over the audit records for one department and time range."""

    def __init__(self, source: ConsoleRecords | Path, *, available: bool = True) -> None:
        """``source``: the records (``bot.admin.auditread.records_for``), or an
        ``audit.db`` path. ``available`` False: nothing can be counted (callers say so
        instead of reporting zeros)."""
        self.records = (
            source
            if isinstance(source, ConsoleRecords)
            else SqliteRecords(Path(source).parent, audit_file=Path(source))
        )
        self.available = available

    def _rows(
        self, sql: str | Callable[[Reader], str], args: tuple[object, ...], *, feedback: bool = False
    ) -> list[tuple[object, ...]]:
        """``sql`` as text, or made for the reader's dialect; [] while the tables are not there."""
        if not self.available:
            return []
        with self.records.audit() as db:
            if db is None or not db.has_table("requests"):  # nobody asked anything yet
                return []
            if feedback and not db.has_table("feedback"):
                return []
            return [tuple(r) for r in db.execute(sql if isinstance(sql, str) else sql(db), args)]

    def outcomes(self, department: str, start: datetime, end: datetime) -> Outcomes:
        rows = self._rows(
            'select status, count(*) from requests where department = ? and "time" >= ? and "time" < ?'
            f" and {ASKED} group by status",
            (department, _iso(start), _iso(end)),
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
            f" and {ASKED_R} group by f.value",
            (department, _iso(start), _iso(end)),
            feedback=True,
        )
        by = {str(v): int(n) for v, n in rows}  # type: ignore[call-overload]
        return Votes(up=by.get("up", 0), down=by.get("down", 0))

    def score_bins(self, department: str, start: datetime, end: datetime, bins: int = 10) -> list[int]:
        """Retrieval scores of uncached answers and refusals in the range (the PSI input),
        counted into ``bins`` equal-width bins over [0, 1] in the database (clamped like
        ``bot.ops.psi.shares``), so a busy department's 14 days of scores are never
        loaded into memory."""
        rows = self._rows(
            lambda db: (
                f"select {db.bin('confidence', bins)}, count(*)"
                ' from requests where department = ? and "time" >= ? and "time" < ?'
                f" and status in ({','.join('?' * len(ANSWER_STATUSES))}) and coalesce(cache_hit, 0) = 0"
                f" and {ASKED} and confidence is not null"
                " group by 1"
            ),
            (department, _iso(start), _iso(end), *ANSWER_STATUSES),
        )
        counts = [0] * bins
        for b, n in rows:
            counts[int(b)] += int(n)  # type: ignore[call-overload]
        return counts

    def close(self) -> None:
        """Nothing held between calls: each count opens and closes its reader."""
