"""Shared pieces for the operations tests: a settable clock, a recording delivery, a fake
refresher and evaluator, and ``make_operations`` (also used by the subprocess race test)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config import Company, Department, load_company
from bot.core.ports import IndexReport, IndexStatus, ProgressFn
from bot.ops.alerts import Alerts
from bot.ops.digest import Digest
from bot.ops.locks import LeaseLocks
from bot.ops.runner import Operations
from bot.ops.signals import AuditSignals
from bot.settings import Settings
from bot.settings_schema import Budgets, OpsSettings
from bot.store.alerts import AlertLog
from bot.store.evalruns import EvalRun, EvalRunStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday


class Clock:
    """A settable UTC clock; ``now()`` for datetimes, ``time()`` for epoch seconds."""

    def __init__(self, start: datetime = T0) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def time(self) -> float:
        return self.at.timestamp()

    def advance(self, **kw: float) -> None:
        self.at += timedelta(**kw)


def ops_settings(**over: Any) -> OpsSettings:
    base = Settings(departments_dir=Path("x"), state_dir=Path("y"), env={}, file={}).values.ops
    return base.model_copy(update=over)


def budgets(**over: Any) -> Budgets:
    base = Settings(departments_dir=Path("x"), state_dir=Path("y"), env={}, file={}).values.budgets
    return base.model_copy(update=over)


@dataclass
class Posted:
    department: str
    text: str
    kind: str


@dataclass
class RecordingDelivery:
    posted: list[Posted] = field(default_factory=list)
    reach: bool = True

    def deliver(self, dept: Department, text: str, *, kind: str) -> bool:
        self.posted.append(Posted(dept.name, text, kind))
        return self.reach


class SlowRefresher:
    """An ``Indexer`` that records overlapping refreshes per department."""

    def __init__(self, seconds: float = 0.0, fail: bool = False, log_file: Path | None = None) -> None:
        self.seconds = seconds
        self.fail = fail
        self.log_file = log_file
        self.active: dict[str, int] = {}
        self.max_active: dict[str, int] = {}
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def refresh(self, department: Department, *, progress: ProgressFn | None = None) -> IndexReport:
        name = department.name
        with self._lock:
            self.calls.append(name)
            self.active[name] = self.active.get(name, 0) + 1
            self.max_active[name] = max(self.max_active.get(name, 0), self.active[name])
        try:
            if self.log_file is not None:
                with self.log_file.open("a") as fh:
                    fh.write(f"refresh {name}\n")
            time.sleep(self.seconds)
            if self.fail:
                raise OSError("disk gone")
            return IndexReport(department=name)
        finally:
            with self._lock:
                self.active[name] -= 1

    def status(self, department: Department) -> IndexStatus:
        raise NotImplementedError


def run_of(dept: str, when: datetime, trigger: str, **kw: Any) -> EvalRun:
    base: dict[str, Any] = dict(
        department=dept,
        time=when,
        trigger=trigger,
        cases=4,
        source_hit=1.0,
        fact_hit=1.0,
        answered=1.0,
        refusal=1.0,
        p50_ms=10.0,
        p95_ms=20.0,
        passed=True,
        below=(),
        failed_cases=(),
    )
    base.update(kw)
    return EvalRun(**base)


@dataclass
class FakeEvaluate:
    """Returns queued results (default: a passing run), recording what it was asked."""

    clock: Clock
    results: list[dict[str, Any]] = field(default_factory=list)
    asked: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def __call__(self, dept: Department, trigger: str) -> EvalRun:
        self.asked.append((dept.name, trigger))
        time.sleep(self.seconds)
        over = self.results.pop(0) if self.results else {}
        return run_of(dept.name, self.clock.now(), trigger, **over)


def company_with(root: Path, extra: dict[str, str]) -> Company:
    """The fakes' company (already written under ``root``) with text appended to files."""
    for name, text in extra.items():
        path = root / "departments" / f"{name}.yaml"
        path.write_text(path.read_text() + text)
    return load_company(root / "departments")


EVALS = """
evals:
  cases:
    - question: How many vacation days do I get per year?
      sources: [time-off.md]
"""


@dataclass
class OpsKit:
    operations: Operations
    runs: EvalRunStore
    delivery: RecordingDelivery
    refresher: SlowRefresher
    evaluate: FakeEvaluate
    locks: LeaseLocks
    alert_log: AlertLog
    observers: list[Any]
    company: list[Company]


def make_operations(
    company: Company,
    state: Path,
    *,
    clock: Clock | None = None,
    refresher: SlowRefresher | None = None,
    ops: OpsSettings | None = None,
    usage: Any = None,
    budget: Budgets | None = None,
) -> OpsKit:
    clock = clock or Clock()
    ops = ops or ops_settings()
    state.mkdir(parents=True, exist_ok=True)
    runs = EvalRunStore.in_state_dir(state)
    log_ = AlertLog.in_state_dir(state, clock=clock.time)
    locks = LeaseLocks.in_state_dir(state, clock=clock.time)
    delivery = RecordingDelivery()
    signals = AuditSignals(state / "audit.db")
    b = budget or budgets()
    alerts = Alerts(
        signals=signals, usage=usage, log_=log_, delivery=delivery, ops=ops, budgets=b, clock=clock.now
    )
    refresher = refresher or SlowRefresher()
    evaluate = FakeEvaluate(clock)
    holder = [company]
    observers: list[Any] = []
    digest = Digest(signals=signals, usage=usage, budgets=b, runs=lambda n: runs.recent(n, 10))
    operations = Operations(
        company=lambda: holder[0],
        refresher=refresher,
        observers=observers,
        evaluate=evaluate,
        runs=runs,
        locks=locks,
        alerts=alerts,
        alert_log=log_,
        digest=digest,
        deliver=lambda d, text, kind: delivery.deliver(d, text, kind=kind),
        ops=ops,
        clock=clock.now,
    )
    return OpsKit(operations, runs, delivery, refresher, evaluate, locks, log_, observers, holder)
