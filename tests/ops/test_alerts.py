"""Alert conditions against a real audit log: each fires when it should, not on too few
data, at most once per department per day — also after a restart — and again the next day."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Company
from bot.ops.alerts import Alerts, regressions
from bot.ops.signals import AuditSignals
from bot.store.alerts import AlertLog
from tests.fakes import make_company
from tests.ops.alerts_data import Audit
from tests.ops.helpers import T0, Clock, RecordingDelivery, budgets, make_operations, ops_settings, run_of

_ids = itertools.count(1)


class Usage:
    def __init__(self, tokens: int = 0, cost: float = 0.0) -> None:
        self.tokens, self.cost = tokens, cost

    def spent(self, *, day: date, department: str | None = None) -> tuple[int, float]:
        return self.tokens, self.cost


def _alerts(
    state: Path, clock: Clock, usage: Usage | None = None, **ops: Any
) -> tuple[Alerts, RecordingDelivery]:
    delivery = RecordingDelivery()
    alerts = Alerts(
        signals=AuditSignals(state / "audit.db"),
        usage=usage,
        log_=AlertLog.in_state_dir(state, clock=clock.time),
        delivery=delivery,
        ops=ops_settings(**ops),
        budgets=budgets(department_daily_cost=50.0, department_daily_tokens=100_000),
        clock=clock.now,
    )
    return alerts, delivery


@pytest.fixture
def company(tmp_path: Path) -> Company:
    return make_company(tmp_path)


RECENT = T0 - timedelta(hours=2)
BASELINE = T0 - timedelta(days=5)


def test_dont_know_jump_fires_once_a_day_not_again_after_restart(tmp_path: Path, company: Company) -> None:
    state, clock = tmp_path / "state", Clock()
    audit = Audit(state)
    audit.add(90, BASELINE)
    audit.add(10, BASELINE, "dont_know")  # baseline: 10 %
    audit.add(18, RECENT)
    audit.add(12, RECENT, "dont_know")  # last 24 h: 40 % of 30
    audit.add(40, RECENT, "dont_know", platform="eval")  # eval traffic is not counted
    audit.add(5, RECENT, "denied")  # denials are not "don't know"
    hr = company.department("hr")
    alerts, delivery = _alerts(state, clock)
    assert alerts.check_and_send(hr) == ["dont-know-rate"]
    [posted] = delivery.posted
    assert "rose to 40%" in posted.text and "12 of 30 questions" in posted.text and "from 10%" in posted.text
    assert "previous 14 days" in posted.text and "What to do" in posted.text
    assert alerts.check_and_send(hr) == []  # once a day
    again, delivery2 = _alerts(state, clock)  # a restart: a new process, same state folder
    assert again.check_and_send(hr) == [] and delivery2.posted == []
    clock.advance(hours=1)
    assert again.check_and_send(hr) == []  # still the same UTC day


def test_too_few_questions_never_alert(tmp_path: Path, company: Company) -> None:
    state, clock = tmp_path / "state", Clock()
    audit = Audit(state)
    audit.add(100, BASELINE)
    audit.add(1, RECENT)
    audit.add(1, RECENT, "dont_know")  # 1 of 2: 50 %, but only 2 questions
    alerts, _ = _alerts(state, clock)
    assert alerts.check(company.department("hr")) == []


def test_thumbs_down_share_jump(tmp_path: Path, company: Company) -> None:
    state, clock = tmp_path / "state", Clock()
    audit = Audit(state)
    old = audit.add(20, BASELINE)
    new = audit.add(10, RECENT)
    for i, rid in enumerate(old):
        audit.log.record_feedback(rid, "alice@example.com", "down" if i < 2 else "up")  # 10 %
    for i, rid in enumerate(new):
        audit.log.record_feedback(rid, "alice@example.com", "down" if i < 6 else "up", "wrong table row")
    alerts, delivery = _alerts(state, clock)
    assert alerts.check_and_send(company.department("hr")) == ["thumbs-down"]
    text = delivery.posted[0].text
    assert "👎 rose to 60% of votes" in text and "6 of 10" in text and "from 10%" in text
    assert "wrong table row" not in text  # comments never leave the audit log
    assert _alerts(state, clock)[0].check_and_send(company.department("hr")) == []  # after a restart
    alerts_strict, _ = _alerts(state, clock, min_votes=11)  # fewer votes than the minimum
    assert alerts_strict.check(company.department("hr")) == []


def test_retrieval_score_drift(tmp_path: Path, company: Company) -> None:
    state, clock = tmp_path / "state", Clock()
    audit = Audit(state)
    audit.add(30, BASELINE, confidence=0.85)
    audit.add(30, BASELINE, confidence=0.65)
    audit.add(30, RECENT, confidence=0.85)
    audit.add(30, RECENT, confidence=0.35)
    audit.add(30, RECENT, confidence=0.05, cache_hit=True)  # cached answers are not retrieval
    alerts, delivery = _alerts(state, clock, psi_min_samples=50)
    assert alerts.check_and_send(company.department("hr")) == ["score-drift"]
    # shares: baseline [0.65): .5, [0.85): .5; recent [0.35): .5, [0.85): .5
    # PSI = (.5-1e-4)·ln(.5/1e-4) · 2 = 8.516
    assert "population stability index 8.52" in delivery.posted[0].text
    assert "for 60 answers" in delivery.posted[0].text
    assert _alerts(state, clock, psi_min_samples=50)[0].check_and_send(company.department("hr")) == []
    few, _ = _alerts(state, clock, psi_min_samples=61)
    assert few.check(company.department("hr")) == []


def test_budget_share_once_a_day_and_again_the_next_day(tmp_path: Path, company: Company) -> None:
    state, clock = tmp_path / "state", Clock()
    usage = Usage(tokens=10_000, cost=41.0)  # 82 % of $50; tokens 10 % of 100k
    hr = company.department("hr")
    alerts, delivery = _alerts(state, clock, usage)
    assert alerts.check_and_send(hr) == ["budget-cost"]
    assert "$41.00 of its $50.00 daily budget (82%" in delivery.posted[0].text
    assert alerts.check_and_send(hr) == []
    restarted, _ = _alerts(state, clock, usage)
    assert restarted.check_and_send(hr) == []
    usage.tokens = 85_000
    assert restarted.check_and_send(hr) == ["budget-tokens"]  # another condition, same day
    clock.advance(days=1)
    assert sorted(restarted.check_and_send(hr)) == ["budget-cost", "budget-tokens"]
    usage.cost = 39.0
    assert _alerts(state, clock, usage)[0].check(hr)[0].condition == "budget-tokens"  # 78 % is below 80 %


def test_a_failed_post_is_tried_again(tmp_path: Path, company: Company) -> None:
    state, clock = tmp_path / "state", Clock()
    alerts, delivery = _alerts(state, clock, Usage(cost=45.0))
    delivery.reach = False
    hr = company.department("hr")
    assert alerts.check_and_send(hr) == []
    delivery.reach = True
    assert alerts.check_and_send(hr) == ["budget-cost"]
    assert len(delivery.posted) == 2


def test_refresh_failure_from_an_observer_alerts_once(tmp_path: Path, company: Company) -> None:
    import time

    kit = make_operations(company, tmp_path / "state")
    ops = kit.operations.start()
    try:
        ops.refreshed("hr", 1.0, False)  # /kb refresh or the watcher raised
        ops.refreshed("hr", 1.0, False)
        deadline = time.monotonic() + 10
        while len(kit.delivery.posted) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
    finally:
        ops.stop()
    assert [p.kind for p in kit.delivery.posted] == ["refresh-failed"]


def test_regressions_rule() -> None:
    before = run_of("hr", T0, "manual")
    assert regressions(before, run_of("hr", T0, "refresh")) == []
    assert regressions(before, run_of("hr", T0, "refresh", source_hit=0.95)) == []  # < 10 points
    assert regressions(before, run_of("hr", T0, "refresh", source_hit=0.9)) == ["source hit 100% → 90%"]
    slow = run_of("hr", T0, "refresh", refusal=None, passed=False, below=("p95 9000 ms > 5000 ms",))
    worse = regressions(before, slow)
    assert worse == ["now below its thresholds (p95 9000 ms > 5000 ms)"]


def test_sql_bins_match_the_documented_bins(tmp_path: Path) -> None:
    from bot.ops.psi import shares

    state = tmp_path / "state"
    audit = Audit(state)
    values = [0.0, 0.05, 0.1, 0.55, 0.99, 1.0, 1.7, -0.5]
    for v in values:
        audit.add(1, RECENT, confidence=v)
    counts = AuditSignals(state / "audit.db").score_bins("hr", RECENT - timedelta(hours=1), T0)
    assert counts == [3, 1, 0, 0, 0, 1, 0, 0, 0, 3]
    assert [c / len(values) for c in counts] == shares(values)


def test_with_the_audit_log_elsewhere_only_budget_alerts_run(tmp_path: Path, company: Company) -> None:
    state, clock = tmp_path / "state", Clock()
    audit = Audit(state)
    audit.add(30, RECENT, "dont_know")
    audit.add(100, BASELINE)
    delivery = RecordingDelivery()
    alerts = Alerts(
        signals=AuditSignals(state / "audit.db", available=False),  # DEPTBOT_DATABASE_URL is set
        usage=Usage(cost=45.0),
        log_=AlertLog.in_state_dir(state, clock=clock.time),
        delivery=delivery,
        ops=ops_settings(),
        budgets=budgets(department_daily_cost=50.0),
        clock=clock.now,
    )
    assert [a.condition for a in alerts.check(company.department("hr"))] == ["budget-cost"]
