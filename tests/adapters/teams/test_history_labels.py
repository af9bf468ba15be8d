"""A restricted answer never reaches a cloud model as history of a later question (issue 8, class 1).

Through the real endpoint, the real router and real SDKs: a recording OpenAI-compatible
stub on 127.0.0.1 plays the cloud model, another the private model. The first answer is
confidential only because of its document; the follow-up is an ordinary internal question
in the same conversation, which on its own would go to the cloud.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.llm.factory import build_generator
from bot.settings import Settings
from bot.store.usage import UsageStore
from tests.adapters.teams.conftest import GROUP_CHAT, Harness
from tests.fakes import CONFIDENTIAL_DOC, FakeIndexer, FakeRetriever, MemoryAudit, add_document
from tests.llm.stubs import StubLLM

PRIVATE_TEXT = "The relocation allowance is 7,500 dollars [1]. PRIVATE-ONLY-51c3."
LLM_TABLES = """\
[llm]
max_retries = 0
timeout_seconds = 1.5
deadline_seconds = 8
breaker_failures = 3
breaker_cooldown_seconds = 60
max_tokens = 300
[budgets]
user_daily_tokens = 0
user_daily_cost = 0
department_daily_tokens = 0
department_daily_cost = 0
"""


@pytest.fixture
def cloud() -> Iterator[StubLLM]:
    stub = StubLLM("openai")
    yield stub
    stub.close()


@pytest.fixture
def private_llm() -> Iterator[StubLLM]:
    stub = StubLLM("openai", text=PRIVATE_TEXT)
    yield stub
    stub.close()


@pytest.fixture(params=["private-route", "sources-only"])
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def assistant(  # replaces the shared fixture: the real router over the two stubs
    company: Company,
    retriever: FakeRetriever,
    audit: MemoryAudit,
    tmp_path: Path,
    cloud: StubLLM,
    private_llm: StubLLM,
    route: str,
) -> Assistant:
    add_document(company, retriever, "hr/relocation.md", CONFIDENTIAL_DOC)
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": cloud.url}
    if route == "private-route":
        env |= {"DEPTBOT_PRIVATE_LLM_URL": private_llm.url, "DEPTBOT_PRIVATE_LLM_KEY": "private-key"}
    file = tmp_path / "llm.toml"
    file.write_text(LLM_TABLES)
    settings = Settings.load(
        departments=tmp_path / "departments", state=tmp_path / "state", settings_file=file, env=env
    )
    router = build_generator(settings, usage_store=UsageStore(path=tmp_path / "usage.db"))
    return Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=router,
        audit=audit,
    )


def seen_by(stub: StubLLM) -> str:
    return "\n".join(json.dumps(r.body) for r in stub.requests)


@pytest.mark.parametrize("kind", ["personal", "groupChat"])
def test_a_confidential_answer_never_reaches_the_cloud_as_history(
    teams: Callable[..., None], cloud: StubLLM, private_llm: StubLLM, route: str, kind: str
) -> None:
    async def scenario(h: Harness) -> None:
        first = await h.ask(h.activity("What is the relocation allowance?", kind=kind))
        shown = " ".join(str(p.body) for p in first)
        mark = (
            "PRIVATE-ONLY-51c3" if route == "private-route" else "private model"
        )  # or sources only, and why
        assert mark in shown and private_llm.count == (route == "private-route")
        if kind == "groupChat":  # everyone there may read HR documents: posted in the chat, kept as history
            assert any(p.conversation == GROUP_CHAT and mark in str(p.body) for p in first)
        assert cloud.count == 0

        follow_up = await h.ask(h.activity("How many vacation days do I get?", kind=kind))
        assert follow_up[-1].body["type"] == "message"
        assert "PRIVATE-ONLY-51c3" not in seen_by(cloud) and "7,500" not in seen_by(cloud)
        assert cloud.count == 0, "the follow-up carries a confidential answer: not for the cloud"

        # the same question without that history is an ordinary internal one: cloud
        await h.ask(h.activity("How many vacation days do I get?", user="carol", kind="personal"))
        assert cloud.count == 1 and "7,500" not in seen_by(cloud)

    teams(scenario)
