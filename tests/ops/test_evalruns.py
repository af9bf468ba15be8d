"""The eval-run history: what ``deptbot eval --qa`` and the scheduler record."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.store.evalruns import EvalRun, EvalRunStore
from tests.fakes import make_company
from tests.test_cli_eval_qa import HR_EVALS


def _run(dept: str, when: datetime, **kw: object) -> EvalRun:
    base: dict[str, object] = dict(
        department=dept,
        time=when,
        trigger="manual",
        cases=2,
        source_hit=1.0,
        fact_hit=0.5,
        answered=1.0,
        refusal=None,
        p50_ms=12.0,
        p95_ms=30.0,
        passed=False,
        below=("fact hit 50% < 100%",),
        failed_cases=("How many days?",),
    )
    base.update(kw)
    return EvalRun(**base)  # type: ignore[arg-type]


def test_record_and_recent_newest_first_per_department(tmp_path: Path) -> None:
    store = EvalRunStore.in_state_dir(tmp_path)
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    store.record(_run("hr", t0))
    store.record(_run("hr", t0 + timedelta(hours=1), trigger="refresh", passed=True, below=()))
    store.record(_run("finance", t0))
    store.close()
    again = EvalRunStore.in_state_dir(tmp_path)  # another process / a restart sees them
    runs = again.recent("hr")
    assert [r.trigger for r in runs] == ["refresh", "manual"]
    assert runs[1] == _run("hr", t0)
    assert runs[0].time == t0 + timedelta(hours=1) and runs[0].time.tzinfo is not None
    assert again.recent("hr", limit=1)[0].trigger == "refresh"
    assert len(again.recent("finance")) == 1 and again.recent("eng") == []
    again.close()


def test_an_unknown_trigger_is_refused(tmp_path: Path) -> None:
    store = EvalRunStore.in_state_dir(tmp_path)
    with pytest.raises(ValueError):
        store.record(_run("hr", datetime.now(UTC), trigger="cron"))
    store.close()


def test_eval_qa_records_a_manual_run_per_department(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_company(tmp_path)
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    path = tmp_path / "departments" / "hr.yaml"
    path.write_text(path.read_text() + HR_EVALS.replace('facts: ["25 days"]', 'facts: ["30 days"]'))
    assert main(["eval", "--qa", "hr"]) == 1
    capsys.readouterr()
    store = EvalRunStore.in_state_dir(tmp_path / "state")
    [run] = store.recent("hr")
    store.close()
    assert run.trigger == "manual" and run.cases == 2 and not run.passed
    assert run.source_hit == 1.0 and run.fact_hit == 0.0 and run.refusal == 1.0
    assert run.below == ("fact hit 0% < 100%",)
    assert run.failed_cases == ("How many vacation days do I get per year?",)
    assert run.p95_ms >= run.p50_ms > 0


def test_eval_qa_is_audited_as_eval_traffic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manual ``deptbot eval --qa`` asks through the real pipeline: its audit rows say
    platform "eval", like the scheduler's, so console counts and alerts leave them out."""
    from bot.store.audit import SqliteAuditLog

    make_company(tmp_path)
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    path = tmp_path / "departments" / "hr.yaml"
    path.write_text(path.read_text() + HR_EVALS)
    main(["eval", "--qa", "hr"])
    capsys.readouterr()
    audit = SqliteAuditLog(path=tmp_path / "state" / "audit.db")
    try:
        asked = [r for r in audit.tail(100) if r["status"] in ("answered", "dont_know", "sources_only")]
    finally:
        audit.close()
    assert len(asked) == 2
    assert {r["platform"] for r in asked} == {"eval"}
