"""The operations wiring of ``deptbot serve`` on the real pipeline: a ``/kb refresh`` (the
core's ``Assistant.refresh``) is followed by the department's evals, run off the calling
thread through a cache-less assistant, recorded as a "refresh" run and audited as eval
traffic (``platform = "eval"``) that alerts and counts leave out."""

from __future__ import annotations

import time
from pathlib import Path

from bot.ops.service import start_operations
from bot.settings import Settings
from bot.store.audit import SqliteAuditLog
from bot.store.evalruns import EvalRunStore
from bot.wiring import build
from tests.fakes import make_company
from tests.ops.helpers import company_with
from tests.test_cli_eval_qa import HR_EVALS


def _settings(tmp_path: Path, **ops: object) -> Settings:
    env = {"DEPTBOT_AUDIT_KEY": "k" * 64}
    file = {"ops": ops} if ops else {}
    root = tmp_path
    return Settings(departments_dir=root / "departments", state_dir=root / "state", env=env, file=file)


def test_kb_refresh_is_followed_by_recorded_evals(tmp_path: Path) -> None:
    make_company(tmp_path)
    company_with(tmp_path, {"hr": HR_EVALS})
    settings = _settings(tmp_path)
    wired = build(settings, watched=True)
    operations = start_operations(settings, wired)
    assert operations is not None
    try:
        started = time.monotonic()
        wired.assistant.refresh("hr", user="hank@example.com")  # what /kb refresh hr runs
        returned = time.monotonic() - started
        store = EvalRunStore.in_state_dir(settings.state_dir)
        deadline = time.monotonic() + 60
        while not store.recent("hr") and time.monotonic() < deadline:
            time.sleep(0.05)
        [run] = store.recent("hr")
    finally:
        operations.stop()
    assert run.trigger == "refresh" and run.cases == 2 and run.passed
    assert run.source_hit == 1.0 and run.fact_hit == 1.0 and run.refusal == 1.0
    assert returned < 30  # the refresh returned without waiting for the evals
    audit = SqliteAuditLog(path=settings.state_dir / "audit.db", env=settings.env)
    rows = audit.tail(20, department="hr")
    assert [r["platform"] for r in rows if r["status"] != "refresh"] == ["eval", "eval"]
    assert all(not r["cache_hit"] for r in rows)


def test_disabled_ops_start_nothing(tmp_path: Path) -> None:
    make_company(tmp_path)
    settings = _settings(tmp_path, enabled=False)
    assert start_operations(settings, build(settings, watched=True)) is None
