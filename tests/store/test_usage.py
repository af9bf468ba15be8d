"""The usage store: attempts, the report behind `deptbot usage`, and its table."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from bot.store.usage import Attempt, UsageStore, format_usage_table, usage_report


def _attempt(user: str, provider: str, outcome: str = "ok", day: int = 4, cost: float = 0.01) -> Attempt:
    return Attempt(
        request_id=f"r-{user}-{provider}-{day}-{outcome}",
        time=datetime(2026, 3, day, 12, tzinfo=UTC),
        user=user,
        department="hr",
        provider=provider,
        model=f"{provider}-small",
        tier="small",
        route="cloud",
        outcome=outcome,
        input_tokens=100,
        output_tokens=20,
        cost=cost if outcome == "ok" else 0.0,
        latency_ms=250.0,
    )


def test_report_groups_and_filters(tmp_path: Path) -> None:
    store = UsageStore(path=tmp_path / "usage.db")
    store.record(_attempt("Alice@example.com", "anthropic"))
    store.record(_attempt("alice@example.com", "anthropic", outcome="timeout"))
    store.record(_attempt("bob@example.com", "openai", day=1))
    rows = usage_report(store)
    assert len(rows) == 2
    alice = next(r for r in rows if r["user"] == "alice@example.com")
    assert (alice["requests"], alice["attempts"], alice["failures"]) == (2, 2, 1)
    assert alice["input_tokens"] == 200 and alice["cost"] == 0.01
    assert [r["user"] for r in usage_report(store, user="BOB@example.com")] == ["bob@example.com"]
    assert [r["user"] for r in usage_report(store, since=date(2026, 3, 2))] == ["alice@example.com"]
    assert usage_report(store, department="finance") == []


def test_table_has_headers_totals_and_an_empty_message(tmp_path: Path) -> None:
    store = UsageStore(path=tmp_path / "usage.db")
    assert format_usage_table(usage_report(store)) == "No usage recorded."
    store.record(_attempt("alice@example.com", "anthropic"))
    store.record(_attempt("bob@example.com", "openai"))
    table = format_usage_table(usage_report(store))
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["user", "department", "provider", "model"]
    assert lines[-1].startswith("total") and "0.0200" in lines[-1] and " 200 " in lines[-1]


def test_store_is_shared_across_threads_and_reopenable(tmp_path: Path) -> None:
    import threading

    store = UsageStore(path=tmp_path / "usage.db")
    threads = [
        threading.Thread(target=store.record, args=(_attempt(f"u{i}@x.com", "openai"),)) for i in range(10)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(UsageStore(path=tmp_path / "usage.db").attempts()) == 10
