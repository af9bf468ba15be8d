"""The console's figure pages and ops' audit-based alerts read the same numbers on both
backends: the audit and usage records in the state folder (SQLite) or in PostgreSQL
(``DEPTBOT_DATABASE_URL``), through ``bot.admin.auditread.ConsoleRecords``. Rows are
written through the stores' own APIs (``tests.admin.insights_setup``), the way the bot
writes them; the assertions are the same for both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.admin.auditread import records_for
from bot.admin.documents import CITES
from bot.admin.overview import DAYS
from bot.core.ports import AuditEntry
from bot.governance.vault import Vault, forget_open_vaults
from bot.knowledge.embedders import Embedder, get_embedder
from bot.ops.signals import AuditSignals
from bot.store.evalruns import EvalRun, open_eval_runs
from tests.admin.insights_setup import NOW, World, build_world
from tests.store.conftest import Backend


@pytest.fixture(scope="module")
def wordllama() -> Embedder:
    return get_embedder("wordllama")


@pytest.fixture
def world(backend: Backend, wordllama: Embedder) -> Iterator[World]:
    DAYS.clear()
    CITES.clear()
    w = build_world(backend.home, wordllama, database_url=backend.url)
    yield w
    w.audit.close()
    forget_open_vaults()


def _fill(w: World) -> dict[str, str]:
    rids = {
        "good": w.ask("hr", "How many vacation days?", doc_ids=["hr/time-off.md"], latency_ms=800.0),
        "weak": w.ask("hr", "Meal allowance?", confidence=0.1, doc_ids=["hr/time-off.md"], latency_ms=1200.0),
        "again": w.ask("hr", "Vacation carry over?", doc_ids=["hr/time-off.md"], ago=timedelta(days=2)),
        "unknown": w.ask("hr", "Parking rules?", status="dont_know", ago=timedelta(days=3)),
        "denied": w.ask("hr", "salary of bob", status="denied"),
        "cached": w.ask(
            "hr",
            "vacation days",
            doc_ids=["hr/time-off.md"],
            cache_hit=True,
            route="cloud",
            generator="anthropic",
            tokens=(100, 20),
            cost=0.01,
        ),
        "finance": w.ask("finance", "expenses?", doc_ids=["finance/expenses.md"]),
    }
    w.vote(rids["weak"], "down", "wrong number")
    w.vote(rids["again"], "down")
    w.vote(rids["good"], "up", "thanks")
    w.audit.record(  # an eval's question: never counted
        AuditEntry(
            request_id="evalrow00001",
            time=NOW - timedelta(hours=3),
            user="eval@example.com",
            platform="eval",
            decision="allowed",
            rule="ask",
            status="dont_know",
            department="hr",
            question="an eval question",
            confidence=0.0,
        )
    )
    return rids


def test_overview_counts_the_same(world: World) -> None:
    _fill(world)
    o = world.insights().overview("hr", 7)
    t = o.totals
    assert (t.total, t.answered, t.dont_know, t.denied) == (6, 4, 1, 1)
    assert (o.satisfaction.up, o.satisfaction.down) == (1, 2)
    assert (o.routes.cloud, o.routes.extractive) == (1, 3)
    assert o.cache_hits == 1 and (o.input_tokens, o.output_tokens) == (100, 20)
    assert o.cost == pytest.approx(0.01)
    assert o.p50_ms == 1000.0 and o.p95_ms == 1200.0
    today = o.series[-1]
    assert today.day == NOW.date() and today.questions == 4 and today.down == 1
    assert world.insights().overview("finance", 7).totals.total == 1


def test_budget_comes_from_the_usage_ledger(world: World, backend: Backend) -> None:
    from bot.wiring import open_usage_store

    open_usage_store(world.settings).close()  # the ledger's tables, as the bot creates them
    day = NOW.date().isoformat()
    for rid, dept, tokens, cost in (("r1", "hr", 1000, 10.0), ("r2", "finance", 9999, 45.0)):
        backend.sql(
            "state/usage.db",
            'insert into reservations (request_id, day, "user", department, tokens, cost, state, "time") '
            "values (?, ?, ?, ?, ?, ?, ?, ?)",
            [rid, day, "a@example.com", dept, tokens, cost, "settled", NOW.isoformat()],
        )
    b = world.insights().overview("hr", 7).budget
    assert (b.today_tokens, b.today_cost, b.period_cost) == (1000, 10.0, 10.0)


def test_closed_days_are_cached_but_a_late_row_is_seen(world: World) -> None:
    world.ask("hr", "three days ago", ago=timedelta(days=3))
    ins = world.insights()
    assert ins.overview("hr", 7).totals.total == 1
    world.ask("hr", "late row in a closed day", ago=timedelta(days=3, hours=1))
    assert ins.overview("hr", 7).totals.total == 2


def test_gaps_both_ways(world: World) -> None:
    _fill(world)
    ins = world.insights()
    hidden = ins.gaps("hr", 7, show_text=False)
    assert [(g.basis, g.count) for g in hidden] == [("sources", 2), ("other", 1)]
    assert all(g.request_ids == () and g.examples == () for g in hidden)
    world.set_department("hr", admins_see_questions=True)
    shown = world.insights().gaps("hr", 7, show_text=True)
    examples = sorted(e for g in shown for e in g.examples)
    assert examples == ["Meal allowance?", "Parking rules?", "Vacation carry over?"]


def test_documents_count_citations(world: World) -> None:
    _fill(world)
    r = world.insights().documents("hr", 7)
    [top] = r.most_cited
    assert (top.doc.doc_id, top.citations) == ("hr/time-off.md", 4)
    assert top.last_cited is not None and top.last_cited.date() == NOW.date()
    assert "hr/time-off.md" not in {d.doc_id for d in r.never_cited}


def test_feedback_both_ways(world: World) -> None:
    rids = _fill(world)
    hidden = world.insights().feedback("hr", show_text=False)
    assert hidden.items == ()
    [group] = hidden.groups
    assert (group.basis, group.count, [c.doc.doc_id for c in group.closest]) == (
        "sources",
        2,
        ["hr/time-off.md"],
    )
    assert rids["weak"] not in repr(hidden)
    world.set_department("hr", admins_see_questions=True)
    shown = world.insights().feedback("hr", show_text=True).items
    assert [(f.request_id, f.question, f.reason) for f in shown] == [
        (rids["again"], "Vacation carry over?", None),
        (rids["weak"], "Meal allowance?", "wrong number"),
    ]


def test_hidden_text_is_never_decrypted(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(world)
    opened: list[str] = []
    real = Vault.open

    def spy(self: Vault, subject: str, blob: object, context: str = "") -> str:
        opened.append(context)
        return real(self, subject, blob, context)

    monkeypatch.setattr(Vault, "open", spy)
    ins = world.insights()
    for days in (7, 30):
        ins.overview("hr", days), ins.documents("hr", days), ins.gaps("hr", days, show_text=False)
    ins.feedback("hr", show_text=False)
    assert opened == []
    ins.gaps("hr", 7, show_text=True), ins.feedback("hr", show_text=True)
    assert opened and all(c.startswith(("request_text:", "feedback:")) for c in opened)


def test_evals_page_reads_the_shared_history(world: World) -> None:
    store = open_eval_runs(world.settings)
    for days_ago, source_hit in ((2, 1.0), (1, 0.8)):
        store.record(
            EvalRun(
                department="hr",
                time=NOW - timedelta(days=days_ago),
                trigger="schedule",
                cases=4,
                source_hit=source_hit,
                fact_hit=1.0,
                answered=1.0,
                refusal=None,
                p50_ms=10.0,
                p95_ms=20.0,
                passed=True,
                below=(),
            )
        )
    store.close()
    trend = world.insights().evals("hr")
    assert [r.source_hit for r in trend.runs] == [0.8, 1.0]
    assert [g.metric for g in trend.regressions] == ["source_hit"]


def test_alert_signals_count_the_same(world: World) -> None:
    _fill(world)
    signals = AuditSignals(records_for(world.settings))
    start, end = NOW - timedelta(days=7), NOW + timedelta(minutes=1)
    out = signals.outcomes("hr", start, end)
    assert (out.questions, out.answered, out.dont_know, out.denied) == (6, 4, 1, 1)
    votes = signals.votes("hr", start, end)
    assert (votes.up, votes.down) == (1, 2)
    # confidences 0.8 ×3 (one is a cache hit: left out), 0.1, and the "don't know" at 0.8
    assert signals.score_bins("hr", start, end) == [0, 1, 0, 0, 0, 0, 0, 0, 3, 0]
    assert signals.outcomes("eng", start, end).questions == 0
