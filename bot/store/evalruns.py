"""Answer-level eval runs in SQLite (``<state>/evalruns.sqlite3``), shared by every process,
or in PostgreSQL with ``DEPTBOT_DATABASE_URL`` (``bot.store.pg_ops``), shared by every replica.

``deptbot eval --qa`` records a "manual" run, the scheduler a "refresh" or "schedule" run
after it refreshed a department. Keeping the history (not just the last result) is what
lets the scheduler say "fact hit fell from 90 % to 60 % after this morning's refresh" and
lets the admin console draw a trend. Only aggregate scores and short case labels are kept:
eval questions are configuration, never questions real people asked, and no answer text
is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.store.sqlite_store import SqliteStore

TRIGGERS = ("refresh", "schedule", "manual")
KEEP_PER_DEPARTMENT = 1000  # a run a day for almost three years; older runs say little

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eval_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    department TEXT NOT NULL,
    time REAL NOT NULL,
    trigger TEXT NOT NULL,
    cases INTEGER NOT NULL,
    source_hit REAL,
    fact_hit REAL,
    answered REAL,
    refusal REAL,
    p50_ms REAL NOT NULL,
    p95_ms REAL NOT NULL,
    passed INTEGER NOT NULL,
    below TEXT NOT NULL,
    failed_cases TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS eval_runs_dept_time ON eval_runs(department, time);
"""


@dataclass(frozen=True)
class EvalRun:
    """One department's eval results at one moment (shares are 0..1)."""

    department: str
    time: datetime  # UTC, aware
    trigger: str  # "refresh" | "schedule" | "manual"
    cases: int
    source_hit: float | None  # None when no case measured it
    fact_hit: float | None
    answered: float | None
    refusal: float | None
    p50_ms: float
    p95_ms: float
    passed: bool
    below: tuple[str, ...]  # thresholds missed (Report.below())
    failed_cases: tuple[str, ...] = ()  # short labels of failing cases (eval config, never user text)


SCORES = (
    ("source_hit", "source hit"),
    ("fact_hit", "fact hit"),
    ("answered", "answered"),
    ("refusal", "refusal"),
)
"""The shares where higher is better: (field, label)."""
REGRESSION_DROP = 0.10
"""A score falling this much (10 points) from one run to the next is a regression."""


def dropped(older: EvalRun, newer: EvalRun, drop: float = REGRESSION_DROP) -> list[tuple[str, float, float]]:
    """The one regression rule, for the alerts (``bot.ops.alerts``) and the console's Evals
    page alike, so a drop the page highlights is one an admin was told about: each score
    measured by both runs that fell by ``drop`` or more, as (field, before, after)."""
    out = []
    for field, _ in SCORES:
        before, after = getattr(older, field), getattr(newer, field)
        if before is not None and after is not None and before - after >= drop - 1e-9:
            out.append((field, before, after))
    return out


_INSERT_SQL = (
    'insert into eval_runs (department, "time", "trigger", cases, source_hit, fact_hit, answered,'
    " refusal, p50_ms, p95_ms, passed, below, failed_cases)"
    " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_KEEP_SQL = (
    "delete from eval_runs where department = ? and id not in"
    ' (select id from eval_runs where department = ? order by "time" desc, id desc limit ?)'
)
_RECENT_SQL = (
    'select department, "time", "trigger", cases, source_hit, fact_hit, answered, refusal,'
    " p50_ms, p95_ms, passed, below, failed_cases from eval_runs where department = ?"
    ' order by "time" desc, id desc limit ?'
)


class EvalRunStore(SqliteStore):
    """Append-only history of eval runs; thread-safe, safe across processes (WAL).

    The statements are written once for both backends: ``PgEvalRunStore``
    (``bot.store.pg_ops``) keeps the history in PostgreSQL with ``DEPTBOT_DATABASE_URL``,
    so whichever replica ran a scheduled eval, the next compares against it.
    ``open_eval_runs`` picks by the settings."""

    FILE = "evalruns.sqlite3"
    WHAT = "the eval runs database"

    def __init__(self, *, path: Path) -> None:
        self._open_sqlite(path, _SCHEMA)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> EvalRunStore:
        return cls(path=Path(state_dir) / cls.FILE)

    def record(self, run: EvalRun) -> None:
        if run.trigger not in TRIGGERS:
            raise ValueError(f"unknown eval trigger {run.trigger!r}")
        when = run.time if run.time.tzinfo else run.time.replace(tzinfo=UTC)
        row = (
            run.department,
            when.timestamp(),
            run.trigger,
            run.cases,
            run.source_hit,
            run.fact_hit,
            run.answered,
            run.refusal,
            run.p50_ms,
            run.p95_ms,
            int(run.passed),
            json.dumps(list(run.below)),
            json.dumps(list(run.failed_cases)),
        )
        with self._session(write=True) as conn:
            conn.execute(_INSERT_SQL, row)
            conn.execute(_KEEP_SQL, (run.department, run.department, KEEP_PER_DEPARTMENT))

    def recent(self, department: str, limit: int = 30) -> list[EvalRun]:
        """The department's runs, newest first."""
        with self._session() as conn:
            rows = conn.execute(_RECENT_SQL, (department, limit)).fetchall()
        return [
            EvalRun(
                department=d,
                time=datetime.fromtimestamp(t, UTC),
                trigger=trig,
                cases=int(n),
                source_hit=sh,
                fact_hit=fh,
                answered=an,
                refusal=rf,
                p50_ms=float(p50),
                p95_ms=float(p95),
                passed=bool(ok),
                below=tuple(json.loads(below)),
                failed_cases=tuple(json.loads(failed)),
            )
            for d, t, trig, n, sh, fh, an, rf, p50, p95, ok, below, failed in rows
        ]


def open_eval_runs(settings: Any) -> EvalRunStore:
    """The eval history of ``settings``: PostgreSQL when ``DEPTBOT_DATABASE_URL`` is set
    (one history for every replica), else ``<state>/evalruns.sqlite3``."""
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is None:
        return EvalRunStore.in_state_dir(settings.state_dir)
    from bot.store.pg_ops import PgEvalRunStore

    return PgEvalRunStore(db)
