"""Budgets hold under concurrency: reserve-before, settle-after, in one SQLite transaction."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from bot.errors import BudgetExceeded
from bot.store.usage import BudgetLimits, UsageStore, next_reset
from tests.llm.conftest import RouterFactory, env_for, make_request
from tests.llm.stubs import StubLLM


@pytest.mark.parametrize("dimension", ["user_daily_cost", "department_daily_tokens"])
def test_50_concurrent_requests_at_the_edge_of_a_budget_never_overspend(
    make_router: RouterFactory, openai_stub: StubLLM, dimension: str
) -> None:
    # Each call really costs 120 in + 18 out tokens; the estimate is larger (prompt + max_tokens).
    router, usage = make_router(
        env_for(None, openai_stub), budgets={dimension: 0.0012 if "cost" in dimension else 5000}
    )
    limit = 0.0012 if "cost" in dimension else 5000

    def ask(i: int) -> str:
        try:
            return router.generate(
                make_request(user=f"u{i % 2}@example.com" if "department" in dimension else "a@example.com")
            ).generator
        except BudgetExceeded:
            return "budget"

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(ask, range(50)))
    ok = results.count("openai")
    print("ok", ok, "refused", results.count("budget"))
    assert ok >= 1 and results.count("budget") >= 1 and ok + results.count("budget") == 50
    assert openai_stub.count == ok, "a refused request never reaches the provider"
    today = datetime.now(UTC).date()
    tokens, cost = usage.spent(day=today, department="hr")
    rows = usage.attempts()
    recorded_cost = sum(r["cost"] for r in rows)
    recorded_tokens = sum(r["input_tokens"] + r["output_tokens"] for r in rows)
    if "cost" in dimension:
        assert recorded_cost <= limit and cost <= limit
    else:
        assert recorded_tokens <= limit and tokens <= limit
    assert sum(r["outcome"] == "budget" for r in rows) == results.count("budget")


def test_budget_message_says_when_it_resets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = UsageStore(path=tmp_path / "u.db")
    now = datetime(2026, 3, 4, 21, 30, tzinfo=UTC)
    limits = BudgetLimits(user_tokens=1000)
    rid = store.reserve(
        request_id="r", user="A@x.com", department="hr", tokens=900, cost=0, limits=limits, now=now
    )
    with pytest.raises(BudgetExceeded) as info:
        store.reserve(
            request_id="r2", user="a@x.com", department="hr", tokens=200, cost=0, limits=limits, now=now
        )
    assert "1,000 tokens" in info.value.user_message and "in 2 h 30 min" in info.value.user_message
    store.settle(rid, tokens=100, cost=0)  # the real call used less: room again
    store.reserve(
        request_id="r2", user="a@x.com", department="hr", tokens=200, cost=0, limits=limits, now=now
    )
    assert next_reset(now) == datetime(2026, 3, 5, tzinfo=UTC)
    # a new UTC day starts from zero
    tomorrow = datetime(2026, 3, 5, 0, 1, tzinfo=UTC)
    store.reserve(
        request_id="r3", user="a@x.com", department="hr", tokens=999, cost=0, limits=limits, now=tomorrow
    )
