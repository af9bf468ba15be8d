"""Insights over a real sealed audit log, usage ledger, index and eval runs: the numbers
each console page shows, for one department at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.admin.insights import Insights, regressions
from bot.config import load_company
from bot.knowledge.embedders import Embedder
from bot.store.evalruns import EvalRun, EvalRunStore
from bot.store.usage import UsageStore
from tests.admin.insights_setup import NOW, World, build_world

# ── overview ─────────────────────────────────────────────────────────────────────────


def test_overview_counts_statuses_votes_latency_routes_and_cache(world: World) -> None:
    a = world.ask(
        "hr", "q1", latency_ms=100, route="cloud", generator="anthropic", tokens=(100, 20), cost=0.5
    )
    b = world.ask("hr", "q2", latency_ms=300, route="private", generator="ollama", cache_hit=True)
    world.ask("hr", "q3", latency_ms=200, route="local", generator="extractive")
    world.ask("hr", "q4", status="dont_know", latency_ms=400)
    world.ask("hr", "q5", status="denied", latency_ms=1)
    world.ask("hr", "q6", status="error", latency_ms=900)
    world.ask("hr", "old", ago=timedelta(days=8))  # outside the 7-day window
    world.vote(a, "up")
    world.vote(b, "down", "wrong")
    world.vote(b, "up", user="carol@example.com")

    o = world.insights().overview("hr", 7)

    assert (o.totals.answered, o.totals.dont_know, o.totals.denied, o.totals.error) == (3, 1, 1, 1)
    assert o.totals.total == 6
    assert len(o.series) == 7 and o.series[-1].day == NOW.date() and o.start == NOW.date() - timedelta(days=6)
    assert sum(p.questions for p in o.series) == 6
    assert (o.satisfaction.up, o.satisfaction.down) == (2, 1)
    assert o.satisfaction.share == pytest.approx(2 / 3)
    # the denial's instant reply is not a wait: latencies of the 5 allowed requests
    assert o.p50_ms == 300 and o.p95_ms == 900
    assert (o.routes.cloud, o.routes.private, o.routes.extractive, o.routes.none) == (1, 1, 1, 3)
    assert o.cache_hits == 1 and o.cache_rate == pytest.approx(1 / 5)
    assert (o.input_tokens, o.output_tokens, o.cost) == (100, 20, 0.5)
    assert o.pilot is None
    assert world.insights().overview("hr", 30).totals.total == 7


def test_overview_reads_one_department_and_only_questions(world: World) -> None:
    world.ask("hr", "hr question")
    world.ask("finance", "finance question")
    world.ask("finance", "finance question 2", status="dont_know")
    world.assistant.refresh("hr", user="hank@example.com")  # an audit row with status "refresh"

    hr = world.insights().overview("hr", 7)
    fin = world.insights().overview("finance", 7)

    assert hr.totals.total == 1
    assert (fin.totals.total, fin.totals.dont_know) == (2, 1)
    assert world.insights().overview("eng", 7).totals.total == 0


def test_empty_state_folder_gives_zeros_not_errors(tmp_path: Path, world: World) -> None:
    from bot.settings import Settings

    empty = Settings.load(departments=world.root / "departments", state=tmp_path / "nothing", env={})
    ins = Insights(assistant=world.assistant, settings=empty, clock=lambda: NOW)
    o = ins.overview("hr", 90)
    assert o.totals.total == 0 and o.p50_ms is None and o.cache_rate is None and len(o.series) == 90
    assert ins.gaps("hr", 90, show_text=True) == []
    assert ins.feedback("hr", show_text=True).items == ()
    assert ins.feedback("hr", show_text=False).groups == ()
    assert ins.documents("hr", 90).indexed is False
    assert ins.evals("hr").runs == ()
    assert not (tmp_path / "nothing").exists()  # reading creates nothing


def test_budget_use_compares_the_ledger_with_the_daily_limit(world: World) -> None:
    usage = UsageStore(path=world.state / "usage.db")
    conn = usage._db().conn
    rows = [
        ("r1", NOW.date().isoformat(), "a@example.com", "hr", 1000, 10.0, "settled", NOW.isoformat()),
        (
            "r2",
            (NOW.date() - timedelta(days=2)).isoformat(),
            "a@example.com",
            "hr",
            5000,
            30.0,
            "settled",
            "",
        ),
        ("r3", NOW.date().isoformat(), "a@example.com", "finance", 9999, 45.0, "settled", ""),
    ]
    conn.executemany(
        "insert into reservations (request_id, day, user, department, tokens, cost, state, time) "
        "values (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    usage.close()

    b = world.insights().overview("hr", 7).budget

    assert b.daily_cost_limit == 50.0  # settings.toml [budgets] department_daily_cost
    assert (b.today_tokens, b.today_cost) == (1000, 10.0)
    assert (b.peak_day_tokens, b.peak_day_cost) == (5000, 30.0)
    assert (b.period_tokens, b.period_cost) == (6000, 40.0)
    assert b.today_cost_share == pytest.approx(0.2)
    assert b.today_tokens_share is None  # 0 = no token limit


def test_pilot_department_gets_week_over_week(world: World) -> None:
    world.set_department("hr", pilot=["alice@example.com", "channel:C0HRHELP"])
    for k in range(3):
        world.ask("hr", f"this week {k}", ago=timedelta(days=k), user=f"p{k}@example.com", latency_ms=100)
    rid = world.ask("hr", "last week", ago=timedelta(days=9), status="dont_know", latency_ms=500)
    world.vote(rid, "down")

    p = world.insights().overview("hr", 30).pilot

    assert p is not None and (p.entries, p.channels) == (1, 1)
    assert (p.this_week.questions, p.this_week.answered, p.this_week.askers) == (3, 3, 3)
    assert (p.last_week.questions, p.last_week.dont_know, p.last_week.askers) == (1, 1, 1)
    assert p.last_week.satisfaction.down == 1 and p.this_week.satisfaction.votes == 0
    assert p.this_week.end == NOW.date() and p.last_week.end == NOW.date() - timedelta(days=7)


def test_closed_days_are_cached_but_a_late_row_is_seen(world: World) -> None:
    world.ask("hr", "three days ago", ago=timedelta(days=3))
    ins = world.insights()
    assert ins.overview("hr", 7).totals.total == 1
    world.ask("hr", "late row in a closed day", ago=timedelta(days=3, hours=1))
    world.ask("hr", "today")
    assert ins.overview("hr", 7).totals.total == 3


def test_cached_days_never_cross_databases(tmp_path: Path, world: World, wordllama: Embedder) -> None:
    world.ask("hr", "in the first world", ago=timedelta(days=3))
    assert world.insights().overview("hr", 7).totals.total == 1
    other = build_world(tmp_path / "other", wordllama)  # same departments, another state folder
    try:
        assert other.insights().overview("hr", 7).totals.total == 0
        assert other.insights().documents("hr", 7).most_cited == ()
    finally:
        other.audit.close()


def test_retention_purge_drops_cached_days(world: World) -> None:
    world.ask("hr", "old", ago=timedelta(days=20))
    world.ask("hr", "new", ago=timedelta(days=1))
    ins = world.insights()
    assert ins.overview("hr", 30).totals.total == 2
    world.audit.purge_older_than("audit", NOW - timedelta(days=10))
    assert ins.overview("hr", 30).totals.total == 1


# ── documents ────────────────────────────────────────────────────────────────────────


def test_documents_cited_never_cited_stale_failed_and_restricted(world: World) -> None:
    for _ in range(3):
        world.ask("hr", "vacation", doc_ids=["hr/time-off.md"])
    world.ask("hr", "both", doc_ids=["hr/time-off.md", "hr/investigations.md"])
    world.ask("hr", "removed doc", doc_ids=["hr/gone.md"])
    world.ask("finance", "meals", doc_ids=["finance/expenses.md"])

    r = world.insights().documents("hr", 30)

    assert r.indexed and r.documents == 3 and r.chunks > 0 and r.built_at is not None
    assert [(c.doc.doc_id, c.citations) for c in r.most_cited] == [
        ("hr/time-off.md", 4),
        ("hr/investigations.md", 1),
    ]
    assert r.most_cited[0].doc.title == "Time off policy" and r.most_cited[0].doc.path == "time-off.md"
    assert [d.doc_id for d in r.never_cited] == ["hr/old-handbook.md"] and r.never_cited_total == 1
    assert [(s.doc.doc_id, str(s.updated)) for s in r.stale] == [("hr/old-handbook.md", "2020-01-15")]
    assert r.stale[0].age_days is not None and r.stale[0].age_days > 2000
    assert r.undated == 2  # no front-matter date, no git: only "first indexed", never called stale
    assert [(f.path, f.reason) for f in r.failed] == [("broken.pdf", "not a valid PDF")]
    assert (r.restricted.above_default, r.restricted.with_audience) == (1, 1)
    assert dict(r.restricted.by_classification) == {"internal": 2, "confidential": 1}


def test_documents_not_every_admin_may_read_are_counted_not_named(world: World) -> None:
    world.ask("hr", "who investigates", doc_ids=["hr/investigations.md"])
    world.vote(world.ask("hr", "again", doc_ids=["hr/investigations.md", "hr/time-off.md"]), "down")
    world.set_department("hr", admins=["group:hr-admins", "alice@example.com"])  # alice: not in hr-admins

    ins = world.insights()
    r = ins.documents("hr", 30)
    [item] = ins.feedback("hr", show_text=True).items

    named = {c.doc.doc_id for c in r.most_cited} | {d.doc_id for d in r.never_cited}
    assert "hr/investigations.md" not in named and "hr/time-off.md" in named
    assert r.restricted.unlisted == 1 and r.restricted.with_audience == 1
    assert [d.doc_id for d in item.sources] == ["hr/time-off.md"] and item.unnamed_sources == 1
    assert "investigation" not in repr((r, item)).lower()


def test_documents_links_follow_docs_url(world: World) -> None:
    world.set_department("hr", docs_url="https://intranet.example.com/hr/{path}")
    world.kb.refresh(world.company.department("hr"))
    r = world.insights().documents("hr", 7)
    links = {d.doc_id: d.link for d in r.never_cited}
    assert links["hr/time-off.md"] == "https://intranet.example.com/hr/time-off.md"


# ── feedback ─────────────────────────────────────────────────────────────────────────


def test_feedback_lists_thumbs_down_newest_first_with_sources(world: World) -> None:
    first = world.ask("hr", "How much vacation?", doc_ids=["hr/time-off.md"])
    world.vote(first, "down", "wrong number")
    second = world.ask("hr", "Who investigates?", doc_ids=["hr/investigations.md"], status="sources_only")
    world.vote(second, "down")
    up = world.ask("hr", "fine")
    world.vote(up, "up", "great")

    shown = world.insights().feedback("hr", show_text=True).items
    hidden = world.insights().feedback("hr", show_text=False)

    assert [f.request_id for f in shown] == [second, first]
    assert shown[1].reason == "wrong number" and shown[1].question == "How much vacation?"
    assert shown[0].reason is None and shown[0].status == "sources_only"
    assert [s.title for s in shown[1].sources] == ["Time off policy"]
    assert hidden.items == ()
    assert [(g.basis, g.count) for g in hidden.groups] == [("other", 2)]  # one vote per document: folded
    assert len(world.insights().feedback("hr", limit=1, show_text=True).items) == 1


def test_feedback_of_an_erased_person_shows_no_text(world: World) -> None:
    rid = world.ask("hr", "my private question", user="eve@example.com")
    world.vote(rid, "down", "my private comment", user="eve@example.com")
    world.audit.vault.shred("eve@example.com")

    [item] = world.insights().feedback("hr", show_text=True).items

    assert item.request_id == rid and item.question is None and item.reason is None


# ── evals ────────────────────────────────────────────────────────────────────────────


def _run(days_ago: int, source_hit: float | None, fact_hit: float = 0.8) -> EvalRun:
    return EvalRun(
        department="hr",
        time=NOW - timedelta(days=days_ago),
        trigger="schedule",
        cases=7,
        source_hit=source_hit,
        fact_hit=fact_hit,
        answered=0.9,
        refusal=1.0,
        p50_ms=800.0,
        p95_ms=1500.0,
        passed=True,
        below=(),
    )


def test_evals_trend_marks_drops_beyond_the_tolerance(world: World) -> None:
    store = EvalRunStore.in_state_dir(world.state)
    for run in (_run(4, 0.9), _run(3, 0.88), _run(2, 0.7), _run(1, None, fact_hit=0.5)):
        store.record(run)
    store.record(EvalRun(**{**_run(1, 0.1).__dict__, "department": "finance"}))
    store.close()

    t = world.insights().evals("hr")

    assert [r.time for r in t.runs] == sorted((r.time for r in t.runs), reverse=True) and len(t.runs) == 4
    assert t.latest is not None and t.latest.fact_hit == 0.5
    # 0.9→0.88 is within 10 points; 0.88→0.7 drops; source_hit unmeasured last run is skipped
    assert [(r.metric, r.before, r.after) for r in t.regressions] == [
        ("fact_hit", 0.8, 0.5),
        ("source_hit", 0.88, 0.7),
    ]
    assert t.regressions[1].drop == pytest.approx(0.18)
    assert all(r.department == "hr" for r in t.runs)


def test_regressions_need_two_runs() -> None:
    assert regressions([], 0.05) == ()
    assert regressions([_run(1, 0.1)], 0.05) == ()


# ── configuration ────────────────────────────────────────────────────────────────────


def test_admins_see_questions_defaults_off_and_reads_from_yaml(world: World) -> None:
    assert world.company.department("hr").admins_see_questions is False
    path = world.root / "departments" / "finance.yaml"
    path.write_text(path.read_text() + "admins_see_questions: true\n")
    company = load_company(world.root / "departments")
    assert company.department("finance").admins_see_questions is True
    assert company.department("hr").admins_see_questions is False


def test_documented_example_mentions_the_setting() -> None:
    text = (Path(__file__).parents[2] / "departments" / "hr.yaml").read_text()
    assert "admins_see_questions" in text


def test_unknown_department_is_refused(world: World) -> None:
    from bot.errors import UsageError

    with pytest.raises(UsageError):
        world.insights().overview("nope", 7)


def test_window_is_clamped(world: World) -> None:
    world.ask("hr", "q", ago=timedelta(hours=1))
    assert len(world.insights().overview("hr", 0).series) == 1
    assert len(world.insights().overview("hr", 10_000).series) == 366
    assert world.insights().overview("hr", 0).end == datetime(2026, 11, 30, tzinfo=UTC).date()
