"""Scheduler leases, job slots, alert claims and the eval history: the same contract on
SQLite (``ops.sqlite3``, ``evalruns.sqlite3``) and PostgreSQL (``DEPTBOT_DATABASE_URL``),
including real processes racing for one slot and one lease, and lease expiry on an
injected clock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import bot.store.evalruns as evalruns
from bot.ops.locks import LeaseLocks, RefreshGuard, department_lease, open_leases
from bot.settings import Settings
from bot.store.alerts import AlertLog, open_alert_log
from bot.store.backend import ENV_VAR
from bot.store.evalruns import EvalRunStore, open_eval_runs
from tests.ops.helpers import Clock
from tests.ops.test_evalruns import _run
from tests.store.conftest import Backend

ROOT = Path(__file__).resolve().parents[2]


def _leases(backend: Backend, clock: Clock | None = None) -> LeaseLocks:
    """A new opening each call: in tests, another process's (or replica's) handle."""
    kw = {"clock": clock.time} if clock else {}
    if backend.db is None:
        return LeaseLocks.in_state_dir(backend.home, **kw)
    from bot.store.pg_ops import PgLeaseLocks

    return PgLeaseLocks(backend.db, **kw)


def _alerts(backend: Backend, clock: Clock) -> AlertLog:
    if backend.db is None:
        return AlertLog.in_state_dir(backend.home, clock=clock.time)
    from bot.store.pg_ops import PgAlertLog

    return PgAlertLog(backend.db, clock=clock.time)


def _runs(backend: Backend) -> EvalRunStore:
    if backend.db is None:
        return EvalRunStore.in_state_dir(backend.home)
    from bot.store.pg_ops import PgEvalRunStore

    return PgEvalRunStore(backend.db)


def test_one_holder_at_a_time_then_release(backend: Backend) -> None:
    clock = Clock()
    a, b = _leases(backend, clock), _leases(backend, clock)
    lease = a.acquire("dept:hr", 60)
    assert lease is not None
    assert b.acquire("dept:hr", 60) is None
    assert a.acquire("dept:hr", 60) is None  # not re-entrant outside held()
    assert b.holder("dept:hr") == lease.holder
    assert b.acquire("dept:finance", 60) is not None
    a.release(lease)
    assert b.holder("dept:hr") is None
    assert b.acquire("dept:hr", 60) is not None


def test_a_lease_lapses_on_the_clock_and_renewal_keeps_it(backend: Backend) -> None:
    clock = Clock()
    a, b = _leases(backend, clock), _leases(backend, clock)
    lease = a.acquire("job", 60)
    assert lease is not None
    clock.advance(seconds=50)
    renewed = a.renew(lease, 60)
    assert renewed is not None
    clock.advance(seconds=50)
    assert b.acquire("job", 60) is None  # 100 s after taking it, held thanks to renewal
    clock.advance(seconds=11)  # the holder crashed: no renewal for 61 s
    taken = b.acquire("job", 60)
    assert taken is not None and taken.holder != lease.holder
    assert a.renew(renewed, 60) is None  # the old holder learns it lost the lease
    a.release(renewed)  # and releasing it does not free the new holder's
    assert a.holder("job") == taken.holder


def test_a_job_slot_is_claimed_once_per_window(backend: Backend) -> None:
    clock = Clock()
    a, b = _leases(backend, clock), _leases(backend, clock)
    assert a.claim_slot("refresh:hr", 3600)
    assert not b.claim_slot("refresh:hr", 3600)
    assert b.claim_slot("refresh:finance", 3600)
    clock.advance(seconds=3600)
    assert b.claim_slot("refresh:hr", 3600)
    assert not a.claim_slot("refresh:hr", 3600)


def test_held_is_reentrant_across_openings_of_one_store(backend: Backend) -> None:
    a, b = _leases(backend), _leases(backend)
    with a.held("dept:hr", 30) as outer:
        assert outer is not None
        with b.held("dept:hr", 30) as inner:  # the same store reached through another handle
            assert inner is not None and inner.holder == "re-entered"
        assert b.holder("dept:hr") == outer.holder
    assert b.holder("dept:hr") is None


def test_a_refresh_guard_on_the_store_sees_a_lease_held_elsewhere(backend: Backend) -> None:
    elsewhere = _leases(backend)  # e.g. another replica's scheduled refresh of hr
    lease = elsewhere.acquire(department_lease("hr"), 60)
    assert lease is not None
    guard = RefreshGuard(backend.home / "other-state", leases=lambda: _leases(backend))
    with guard.hold("hr") as free:
        assert not free
    elsewhere.release(lease)
    with guard.hold("hr") as free:
        assert free
    guard.close()


def test_alerts_are_claimed_once_and_can_be_given_back(backend: Backend) -> None:
    clock = Clock()
    a, b = _alerts(backend, clock), _alerts(backend, clock)
    assert a.claim("hr", "dont-know", "2026-01-05", "x" * 500)
    assert not b.claim("hr", "dont-know", "2026-01-05")
    clock.advance(seconds=60)
    assert b.claim("hr", "dont-know", "2026-01-06")
    b.give_back("hr", "dont-know", "2026-01-06")
    assert a.claim("hr", "dont-know", "2026-01-06")
    assert [(d, c, day) for d, c, day, _ in b.sent("hr")] == [
        ("hr", "dont-know", "2026-01-06"),
        ("hr", "dont-know", "2026-01-05"),
    ]  # newest first
    assert b.sent("finance") == []
    clock.advance(days=121)
    assert a.claim("finance", "budget", "2026-05-10")  # and the old claims are trimmed
    assert [c[0] for c in b.sent()] == ["finance"]


def test_eval_runs_newest_first_per_department_and_trimmed(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evalruns, "KEEP_PER_DEPARTMENT", 3)
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    a, b = _runs(backend), _runs(backend)
    a.record(_run("hr", t0))
    b.record(_run("hr", t0 + timedelta(hours=1), trigger="refresh", passed=True, below=()))
    a.record(_run("finance", t0, refusal=0.25))
    runs = b.recent("hr")
    assert [r.trigger for r in runs] == ["refresh", "manual"]
    assert runs[1] == _run("hr", t0) and runs[0].time.tzinfo is not None
    assert b.recent("finance")[0].refusal == 0.25 and b.recent("eng") == []
    for hours in range(2, 6):
        a.record(_run("hr", t0 + timedelta(hours=hours), trigger="schedule"))
    assert [r.time.hour for r in b.recent("hr")] == [13, 12, 11]  # the newest 3 are kept
    assert len(b.recent("finance")) == 1
    with pytest.raises(ValueError):
        a.record(_run("hr", t0, trigger="whenever"))


RACER = """
import sys, time
from pathlib import Path

where, go, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
if where.startswith("postgresql"):
    from bot.store.backend import Database, database_url
    from bot.store.pg_ops import PgLeaseLocks
    db = Database(database_url({"DEPTBOT_DATABASE_URL": where}))
    db.ready()
    locks = PgLeaseLocks(db)
else:
    from bot.ops.locks import LeaseLocks
    locks = LeaseLocks.in_state_dir(Path(where))
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
slots = [i for i in range(rounds) if locks.claim_slot(f"job{i}", 3600)]
leases = [i for i in range(rounds) if locks.acquire(f"lease{i}", 600) is not None]
print(" ".join(map(str, slots)) + "|" + " ".join(map(str, leases)), flush=True)
"""


def test_processes_racing_for_slots_and_leases_get_each_once(backend: Backend) -> None:
    """Two processes (two replicas) race for 30 job slots and 30 leases at the same moment:
    each slot runs once and each lease has one holder, never both, never neither."""
    script = backend.home / "racer.py"
    script.write_text(textwrap.dedent(RACER))
    go = backend.home / "go"
    where = backend.url or str(backend.home)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), where, str(go), "30"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.write_text("go")
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    slots: list[int] = []
    leases: list[int] = []
    for out, _ in outs:
        s, _, l_ = out.strip().partition("|")
        slots += [int(x) for x in s.split()]
        leases += [int(x) for x in l_.split()]
    assert sorted(slots) == list(range(30))
    assert sorted(leases) == list(range(30))


def test_the_settings_pick_postgresql_for_every_replica(tmp_path: Path, pg_url: str) -> None:
    a = Settings(departments_dir=Path("."), state_dir=tmp_path / "a", env={ENV_VAR: pg_url})
    b = Settings(departments_dir=Path("."), state_dir=tmp_path / "b", env={ENV_VAR: pg_url})
    lease = open_leases(a).acquire("dept:hr", 60)
    assert lease is not None
    assert open_leases(b).holder("dept:hr") == lease.holder
    assert open_alert_log(a).claim("hr", "budget", "2026-01-05")
    assert not open_alert_log(b).claim("hr", "budget", "2026-01-05")
    open_eval_runs(a).record(_run("hr", datetime(2026, 1, 5, tzinfo=UTC), trigger="schedule"))
    assert [r.trigger for r in open_eval_runs(b).recent("hr")] == ["schedule"]
    assert not (tmp_path / "a" / "ops.sqlite3").exists()
    local = Settings(departments_dir=Path("."), state_dir=tmp_path / "c", env={})
    assert open_leases(local).acquire("dept:hr", 60) is not None  # unset: the SQLite default
    assert (tmp_path / "c" / "ops.sqlite3").exists()


def _elsewhere(step: Callable[[], bool]) -> bool:
    """``step`` on another thread (leases are re-entrant per thread: another replica's
    worker is never this thread)."""
    out: list[bool] = []
    worker = threading.Thread(target=lambda: out.append(step()))
    worker.start()
    worker.join(10)
    return out == [True]


def _takes(locks: LeaseLocks, name: str) -> bool:
    with locks.held(name, 30) as held:
        return held is not None


def _guards(guard: RefreshGuard) -> bool:
    with guard.hold("hr") as free:
        return free


def test_replica_leases_keep_scheduled_jobs_off_this_replicas_local_refresh(
    tmp_path: Path, pg_url: str
) -> None:
    """With replicas, the scheduler's department lease is PostgreSQL's and this state
    folder's: a console/watcher refresh of this replica's index makes a scheduled run skip
    (busy, not failed), the refresh inside a scheduled run re-enters, and another replica
    is kept out of the job but not out of its own index."""
    a = Settings(departments_dir=Path("."), state_dir=tmp_path / "a", env={ENV_VAR: pg_url})
    b = Settings(departments_dir=Path("."), state_dir=tmp_path / "b", env={ENV_VAR: pg_url})
    scheduler_a, scheduler_b = open_leases(a), open_leases(b)
    guard_a, guard_b = RefreshGuard(a.state_dir), RefreshGuard(b.state_dir)
    lease = department_lease("hr")
    holding, done = threading.Event(), threading.Event()

    def console_refresh() -> None:  # `/kb refresh` running on replica a, another thread
        with guard_a.hold("hr") as free:
            assert free
            holding.set()
            done.wait(10)

    refresher = threading.Thread(target=console_refresh)
    refresher.start()
    assert holding.wait(10)
    with scheduler_a.held(lease, 30) as held:
        assert held is None
    assert scheduler_b.holder(lease) is None  # the shared lease was given back
    done.set()
    refresher.join(10)
    with scheduler_a.held(lease, 30) as held:  # a scheduled refresh on replica a
        assert held is not None
        with guard_a.hold("hr") as free:
            assert free  # KnowledgeBase.refresh inside it re-enters
        assert not _elsewhere(lambda: _takes(scheduler_b, lease))  # b does not run the same job
        assert _elsewhere(lambda: _guards(guard_b))  # but b's watcher may refresh b's own index
    assert scheduler_b.holder(lease) is None
    for closing in (scheduler_a, scheduler_b, guard_a, guard_b):
        closing.close()
