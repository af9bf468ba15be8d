"""``/metrics`` scraped through the real aiohttp server on 127.0.0.1, after real questions
through the offline pipeline (real index, extractive generator, SQLite audit and cache)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.adapters.http import build_app
from bot.adapters.metrics import IndexCollector, Metrics, how_to_enable
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.types import Message, Status
from bot.errors import ConfigError
from bot.knowledge import KnowledgeBase
from bot.llm.factory import build_generator, open_usage_store
from bot.observability import ObservedIndexer
from bot.settings import Settings
from bot.store.audit import SqliteAuditLog
from bot.store.cache import SqliteAnswerCache
from tests.fakes import FakeIndexer, make_company

CANARY_QUESTION = "How many vacation days do I get? CANARYQ-7f3e91"
ASKER = "alice@example.com"
TOKEN = "s3cret-metrics-token-0123456789"

World = tuple[Assistant, Company, Path]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("company")
    company = make_company(root)
    state = root / "state"
    settings = Settings.load(departments=root / "departments", state=state, env={})
    kb = KnowledgeBase(state_dir=state)
    for dept in company:
        kb.refresh(dept)
    assistant = Assistant(
        company=company,
        retriever=kb,
        indexer=kb,
        generator=build_generator(settings, usage_store=open_usage_store(settings)),
        audit=SqliteAuditLog(path=state / "audit.db"),
        cache=SqliteAnswerCache(path=state / "cache.db"),
    )
    return assistant, company, root


def _settings(root: Path, **env: str) -> Settings:
    return Settings.load(departments=root / "departments", state=root / "state", env=env)


def _values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(values: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)


async def _scrape(
    app_settings: Settings,
    assistant: Assistant,
    *,
    host: str | None = "127.0.0.1",
    headers: dict[str, str] | None = None,
    before: object = None,
) -> tuple[int, str]:
    app = build_app(assistant=assistant, settings=app_settings, host=host)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        if callable(before):
            await asyncio.to_thread(before)
        resp = await client.get("/metrics", headers=headers or {})
        return resp.status, await resp.text()


def test_scrape_moves_with_answers_votes_refreshes_and_shows_index_sizes(world: World) -> None:
    assistant, company, root = world

    def traffic() -> None:
        for _ in range(3):  # the first is generated, the next two come from the cache
            a = assistant.ask(
                Message(user_id="U1", email=ASKER, text=CANARY_QUESTION, platform="slack", channel="C0HRHELP")
            )
            assert a.status is Status.ANSWERED and a.department == "hr"
        denied = assistant.ask(
            Message(
                user_id="U2", email="grace@example.com", text="deploys?", department="eng", platform="teams"
            )
        )
        assert denied.status is Status.DENIED
        assistant.feedback(a.request_id, user=ASKER, value="up")
        assistant.feedback(a.request_id, user=ASKER, value="down")
        assistant.feedback(a.request_id, user=ASKER, value="down")
        assistant.refresh("hr", user="hank@example.com")

    status, body = asyncio.run(_scrape(_settings(root), assistant, before=traffic))
    assert status == 200
    v = _values(body)
    hr_slack = {"department": "hr", "platform": "slack", "route": "local"}
    assert _get(v, "deptbot_requests_total", status="answered", **hr_slack) == 3
    assert (
        _get(v, "deptbot_requests_total", department="eng", status="denied", platform="teams", route="none")
        == 1
    )
    assert _get(v, "deptbot_cache_hits_total", department="hr") == 2
    assert _get(v, "deptbot_request_duration_seconds_count", department="hr", stage="total") == 3
    assert _get(v, "deptbot_request_duration_seconds_count", department="hr", stage="retrieve") == 1
    assert _get(v, "deptbot_feedback_total", value="up") == 1
    assert _get(v, "deptbot_feedback_total", value="down") == 2
    assert _get(v, "deptbot_refresh_duration_seconds_count", department="hr") == 1
    assert _get(v, "deptbot_refresh_failures_total", department="hr") == 0
    for dept in company:
        assert _get(v, "deptbot_index_chunks", department=dept.name) > 0
        assert _get(v, "deptbot_index_documents", department=dept.name) >= 1
        assert 0 <= _get(v, "deptbot_index_age_seconds", department=dept.name) < 3600
    # privacy and cardinality: no question text, no asker, no channel, no document title
    for secret in (
        "CANARYQ-7f3e91",
        "vacation",
        ASKER,
        "alice",
        "grace",
        "U1",
        "C0HRHELP",
        "Time off policy",
    ):
        assert secret not in body, secret
    # the server detached its counters when it stopped: a later server starts from zero
    assert assistant.observers == []


def test_a_second_server_counts_on_its_own(world: World) -> None:
    assistant, _company, root = world

    def one() -> None:
        assistant.ask(Message(user_id=ASKER, email=ASKER, text="meal expenses receipts", platform="cli"))

    status, body = asyncio.run(_scrape(_settings(root), assistant, before=one))
    assert status == 200
    v = _values(body)
    total = sum(val for (name, _labels), val in v.items() if name == "deptbot_requests_total")
    assert total == 1
    assert _get(v, "deptbot_feedback_total", value="up") == 0


def test_token_is_required_when_set_and_compared_exactly(world: World) -> None:
    assistant, _company, root = world
    settings = _settings(root, DEPTBOT_METRICS__TOKEN=TOKEN)
    assert asyncio.run(_scrape(settings, assistant))[0] == 401
    wrong = {"Authorization": f"Bearer {TOKEN}x"}
    assert asyncio.run(_scrape(settings, assistant, headers=wrong))[0] == 401
    basic = {"Authorization": f"Basic {TOKEN}"}
    assert asyncio.run(_scrape(settings, assistant, headers=basic))[0] == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    status, body = asyncio.run(_scrape(settings, assistant, headers=right, host="0.0.0.0"))
    assert status == 200 and "deptbot_requests" in body  # a token opens it on any address


def test_without_a_token_only_a_loopback_bind_serves_it(world: World) -> None:
    assistant, _company, root = world
    settings = _settings(root)
    assert asyncio.run(_scrape(settings, assistant, host="0.0.0.0"))[0] == 404
    assert asyncio.run(_scrape(settings, assistant, host=None))[0] == 404  # unknown bind: public
    assert asyncio.run(_scrape(settings, assistant, host="::1"))[0] == 200
    assert "DEPTBOT_METRICS__TOKEN" in how_to_enable(settings.values.metrics)


def test_disabled_is_404_even_with_a_token(world: World) -> None:
    assistant, _company, root = world
    settings = _settings(root, DEPTBOT_METRICS__ENABLED="false", DEPTBOT_METRICS__TOKEN=TOKEN)
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert asyncio.run(_scrape(settings, assistant, headers=right))[0] == 404
    assert how_to_enable(settings.values.metrics) == "metrics: off (metrics.enabled = false)"


def test_a_short_token_refuses_to_start_without_echoing_it(world: World) -> None:
    assistant, _company, root = world
    with pytest.raises(ConfigError) as err:
        build_app(assistant=assistant, settings=_settings(root, DEPTBOT_METRICS__TOKEN="short-tok"))
    assert err.value.field == "metrics.token" and "short-tok" not in str(err.value)
    assert assistant.observers == []


def test_failed_refreshes_and_unknown_labels_are_counted_without_new_values(tmp_path: Path) -> None:
    metrics = Metrics(departments=lambda: ["hr"], state_dir=tmp_path)

    class Broken(FakeIndexer):
        def refresh(self, department, *, progress=None):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    company = make_company(tmp_path)
    indexer = ObservedIndexer(Broken(), [metrics])
    with pytest.raises(OSError):
        indexer.refresh(company.department("hr"))
    metrics.answered(Message(user_id="x", text="q", platform="weird-platform"), None)
    metrics.refreshed("someone@example.com", 1.0, True)
    v = _values(metrics.render().decode())
    assert _get(v, "deptbot_refresh_failures_total", department="hr") == 1
    assert (
        _get(v, "deptbot_requests_total", department="none", status="error", platform="other", route="none")
        == 1
    )
    assert _get(v, "deptbot_refresh_duration_seconds_count", department="other") == 1
    assert "someone" not in metrics.render().decode()


def test_index_gauges_read_the_pointer_once_until_it_changes(world: World) -> None:
    _assistant, company, root = world
    clock = [10**10]
    collector = IndexCollector(lambda: [d.name for d in company], root / "state", clock=lambda: clock[0])
    first = {m.name: m.samples for m in collector.collect()}
    assert {s.labels["department"] for s in first["deptbot_index_chunks"]} == {d.name for d in company}
    meta_reads = []
    import bot.knowledge.index as index_module

    original = index_module.current_version
    index_module.current_version = lambda r: meta_reads.append(r) or original(r)  # type: ignore[assignment,func-returns-value]
    try:
        list(collector.collect())
    finally:
        index_module.current_version = original
    assert meta_reads == []  # unchanged pointers: one stat each, no reads


def test_tokens_and_cost_are_counted_once_not_again_for_cache_hits(tmp_path: Path) -> None:
    from bot.core.types import Answer, Timings, Usage

    metrics = Metrics(departments=lambda: ["finance"], state_dir=tmp_path)
    paid = Answer(
        text="x",
        request_id="r1",
        department="finance",
        route="cloud",
        model="claude-haiku-4-5",
        usage=Usage(input_tokens=1200, output_tokens=300, cost=0.0042),
        timings=Timings(10.0, 900.0, 950.0),
    )
    message = Message(user_id="u", text="q", platform="teams")
    metrics.answered(message, paid)
    metrics.answered(message, Answer(**{**paid.__dict__, "cache_hit": True}))
    v = _values(metrics.render().decode())
    labels = {"department": "finance", "route": "cloud", "model": "claude-haiku-4-5"}
    assert _get(v, "deptbot_tokens_total", direction="input", **labels) == 1200
    assert _get(v, "deptbot_tokens_total", direction="output", **labels) == 300
    assert _get(v, "deptbot_cost_dollars_total", **labels) == pytest.approx(0.0042)
    assert _get(v, "deptbot_cache_hits_total", department="finance") == 1
    assert _get(v, "deptbot_request_duration_seconds_count", department="finance", stage="generate") == 2
