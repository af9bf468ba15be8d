"""The daily jobs (retention and the audit chain-head checkpoint) run once per day across
replicas: every ``deptbot serve`` schedules them, and each run first claims its day in the
scheduler's job slots (``bot.ops.locks``), on SQLite (processes sharing a state folder) and
on PostgreSQL (replicas sharing the database)."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.governance import retention as retention_mod
from bot.governance.retention import Retention
from bot.ops.locks import LeaseLocks
from bot.settings import Settings
from bot.store.backend import Database, database_url
from tests.fakes import make_company
from tests.store.conftest import Backend

KEY = "5a" * 32


def _settings(root: Path, state: str, url: str) -> Settings:
    """One replica's settings: its own state folder, the shared database (if any)."""
    file = root / "settings.toml"
    file.write_text("[retention]\naudit_days = 3650\n[audit]\ncheckpoint_log = true\n")
    env = {"DEPTBOT_AUDIT_KEY": KEY, **({"DEPTBOT_DATABASE_URL": url} if url else {})}
    return Settings.load(departments=root / "departments", state=root / state, settings_file=file, env=env)


def _counts(audit: Any, caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    """(retention audit rows in the shared records, chain heads logged)."""
    rows = [r for r in audit.tail(1000) if r["status"] == "retention"]
    heads = [r for r in caplog.records if r.name == "bot.governance.checkpoint"]
    return len(rows), len(heads)


def test_two_replicas_run_each_daily_job_once(
    tmp_path: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two servers' own schedulers (two state folders, one database on PostgreSQL; one
    state folder's slots on SQLite) fire both jobs at once: one retention row, one log
    checkpoint. Before, each server ran both."""
    from bot.cli.audit import start_governance_jobs
    from bot.wiring import open_audit_log, open_usage_store

    make_company(tmp_path)
    monkeypatch.setattr(
        retention_mod, "start_daily", functools.partial(retention_mod.start_daily, first_delay=0)
    )
    names = ("a", "b") if backend.db is not None else ("a", "a")  # SQLite: processes share a state folder
    replicas = [_settings(tmp_path, name, backend.url) for name in names]
    wired = [
        SimpleNamespace(audit=open_audit_log(s), usage=open_usage_store(s), cache=None) for s in replicas
    ]
    caplog.set_level("INFO", logger="bot.governance.checkpoint")
    schedulers = [start_governance_jobs(s, w) for s, w in zip(replicas, wired, strict=True)]  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and min(_counts(wired[0].audit, caplog)) < 1:
            time.sleep(0.05)
        time.sleep(1.5)  # the other server's jobs fired too (the first run is due at start)
    finally:
        for scheduler in schedulers:
            assert scheduler is not None
            scheduler.shutdown(wait=True)
    assert _counts(wired[0].audit, caplog) == (1, 1)
    assert wired[0].audit.verify().ok


def _handle(backend: Backend, home: Path, clock: Any) -> LeaseLocks:
    """Another process's (or replica's) own handle on the job slots: its own pool."""
    if backend.db is None:
        return LeaseLocks.in_state_dir(home, clock=clock)
    from bot.store.pg_ops import PgLeaseLocks

    url = database_url({"DEPTBOT_DATABASE_URL": backend.url})
    assert url is not None
    return PgLeaseLocks(Database(url), clock=clock)


def test_each_slot_runs_once_however_many_handles_race(tmp_path: Path, backend: Backend) -> None:
    from bot.governance.retention import DAY, daily_jobs

    now = [1_800_000_000.0]
    ran: list[str] = []
    lock = threading.Lock()

    class Counting(Retention):
        def run(self, *, dry_run: bool = False) -> list[Any]:
            with lock:
                ran.append("retention")
            return []

    def checkpoint() -> Any:
        with lock:
            ran.append("checkpoint")
        return SimpleNamespace(line=lambda: "head")

    handles = [_handle(backend, tmp_path, lambda: now[0]) for _ in range(4)]
    jobs = [
        daily_jobs(
            retention=Counting(stores=[], policy={"audit": 1}),
            checkpoint=checkpoint,
            claim=h.claim_slot,
        )
        for h in handles
    ]
    start = threading.Barrier(len(jobs))

    def fire(job_set: dict[str, Any]) -> None:
        start.wait()
        for fn in job_set.values():
            fn()

    for day in range(2):
        threads = [threading.Thread(target=fire, args=(j,)) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(ran) == sorted(["checkpoint", "retention"] * (day + 1))
        now[0] += DAY  # the next UTC day: a new slot
    assert [fn() for fn in jobs[0].values()] == [True, True]  # a lone process runs every slot
    for h in handles:
        h.close()


def test_a_failed_daily_run_gives_its_day_back(tmp_path: Path, backend: Backend) -> None:
    """A run that fails (a database blip) releases its slot, so the next occurrence that
    day, on any replica, tries again instead of the day being lost."""
    from bot.ops.locks import slot_claimer

    url = backend.url if backend.name == "postgresql" else ""
    settings = _settings(tmp_path, "state", url)
    claim = slot_claimer(settings)
    calls: list[str] = []

    def flaky() -> None:
        calls.append("run")
        if len(calls) == 1:
            raise OSError("database blip")

    run = retention_mod._once(flaky, "retention:test", 24 * 3600.0, claim, "test job")
    assert run() is False  # failed
    assert run() is True  # the same day: tried again, and this time it ran
    assert run() is False  # done for the day
    assert calls == ["run", "run"]
