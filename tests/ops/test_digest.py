"""The weekly digest: what it says (counts and shares, no question text), once per ISO week
per department — also after a restart — on the configured schedule (Monday 08:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.ops.digest import eval_trend, week_label
from tests.fakes import make_company
from tests.ops.alerts_data import Audit
from tests.ops.helpers import T0, Clock, budgets, make_operations, run_of


class Usage:
    def report(
        self, *, user: str | None = None, department: str | None = None, since: Any = None
    ) -> list[dict[str, Any]]:
        if department != "hr":
            return []
        return [{"cost": 60.0, "input_tokens": 100_000, "output_tokens": 20_000}, {"cost": 15.5}]

    def spent(self, **kw: Any) -> tuple[int, float]:
        return 0, 0.0


def test_digest_text_and_once_a_week(tmp_path: Path) -> None:
    company = make_company(tmp_path)
    state, clock = tmp_path / "state", Clock(T0.replace(hour=8))  # Monday 08:00
    audit = Audit(state)
    asked = audit.add(15, T0 - timedelta(days=2), question="What is Bob's salary?")
    audit.add(4, T0 - timedelta(days=3), "dont_know")
    audit.add(1, T0 - timedelta(days=3), "denied")
    audit.add(9, T0 - timedelta(days=3), "dont_know", platform="eval")  # not counted
    audit.add(50, T0 - timedelta(days=20))  # older than a week
    for i, rid in enumerate(asked[:8]):
        audit.log.record_feedback(rid, "alice@example.com", "up" if i < 6 else "down")
    weekly_70 = budgets(department_daily_cost=10.0)
    kit = make_operations(company, state, clock=clock, usage=Usage(), budget=weekly_70)
    kit.runs.record(run_of("hr", T0 - timedelta(days=6), "schedule", fact_hit=0.8))
    kit.runs.record(run_of("hr", T0 - timedelta(days=1), "refresh", fact_hit=1.0))
    sent = kit.operations.send_digests()
    assert set(sent) == {d.name for d in company if d.enabled}
    text = next(p.text for p in kit.delivery.posted if p.department == "hr")
    assert text.startswith("📊 Human Resources: weekly digest, 2025-12-29 – 2026-01-05")
    assert 'Questions: 20; answered 75% (15), "I don\'t know" 4, denied 1, errors 0' in text
    assert "👍 75% (6 👍, 2 👎)" in text
    assert 'Knowledge gaps: 4 questions answered "I don\'t know" and 2 👎' in text
    assert "AI cost: $75.50 of a $70.00 weekly budget (108%), 120,000 tokens" in text
    assert "last run 2026-01-04 (refresh) passed" in text and "fact hit 80% → 100%" in text
    assert "salary" not in text and "Bob" not in text
    assert all(p.kind == "digest" for p in kit.delivery.posted)

    assert kit.operations.send_digests() == []  # same week
    again = make_operations(company, state, clock=clock, usage=Usage())  # a restart
    assert again.operations.send_digests() == []
    clock.advance(days=7)
    assert "hr" in again.operations.send_digests()


def test_the_digest_runs_monday_at_eight_utc_by_default(tmp_path: Path) -> None:
    kit = make_operations(make_company(tmp_path), tmp_path / "state")
    ops = kit.operations.start()
    try:
        job = ops._scheduler.get_job("ops:digest")
        sunday = datetime(2026, 1, 11, 12, 0, tzinfo=UTC)
        assert job.trigger.get_next_fire_time(None, sunday) == datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
    finally:
        ops.stop()


def test_trend_and_week_labels() -> None:
    assert week_label(T0) == "2026-W02"
    assert week_label(datetime(2026, 1, 4, 23, 59, tzinfo=UTC)) == "2026-W01"
    assert eval_trend([]).startswith("no eval runs yet")
    runs = [run_of("hr", T0, "refresh", passed=False, below=("fact hit 50% < 80%",), fact_hit=0.5)]
    assert eval_trend(runs) == (
        "last run 2026-01-05 (refresh) below its thresholds (fact hit 50% < 80%): "
        "source hit 100%, fact hit 50%, refusal 100%"
    )
