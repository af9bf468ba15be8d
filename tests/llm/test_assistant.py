"""End to end through the Assistant: classifier + router + stubs + answer cache.

Uses the shared tiny company and ``FakeRetriever`` (tests/conftest.py); generations are
counted at the provider stub, which is what a cache must save.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.types import Message, Status
from bot.sensitivity import PatternClassifier
from bot.store.cache import SqliteAnswerCache
from tests.fakes import CANARIES, FakeIndexer, FakeRetriever, MemoryAudit
from tests.llm.conftest import RouterFactory, down_url, env_for
from tests.llm.stubs import StubLLM

VACATION = "How many vacation days do I get?"


def make_assistant(
    company: Company, retriever: FakeRetriever, audit: MemoryAudit, router: object, tmp_path: Path
) -> Assistant:
    return Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=router,  # type: ignore[arg-type]
        audit=audit,
        classifier=PatternClassifier(),
        cache=SqliteAnswerCache(path=tmp_path / "cache.db"),
    )


def ask(assistant: Assistant, user: str, text: str) -> object:
    return assistant.ask(Message(user_id=user, email=user, text=text, department="hr"))


def test_cache_is_per_access_and_invalidated_by_refresh(
    company: Company,
    retriever: FakeRetriever,
    audit: MemoryAudit,
    tmp_path: Path,
    make_router: RouterFactory,
    openai_stub: StubLLM,
) -> None:
    router, _ = make_router(env_for(None, openai_stub))
    assistant = make_assistant(company, retriever, audit, router, tmp_path)

    first = assistant.ask(Message(user_id="alice", email="alice@example.com", text=VACATION, department="hr"))
    assert first.status == Status.ANSWERED and first.generator == "openai" and not first.cache_hit
    # dave is in no HR group but matches the same HR audience entries as alice.
    shared = assistant.ask(Message(user_id="dave", email="dave@example.com", text=VACATION, department="hr"))
    assert openai_stub.count == 1 and shared.cache_hit, "same relevant access → one generation"
    # hank is an HR admin: he may see the confidential investigations document, so his
    # access differs — never served alice's entry (his request is generated afresh).
    hank = assistant.ask(
        Message(user_id="hank", email="hank@example.com", text="How many vacation days?", department="hr")
    )
    assert not hank.cache_hit

    again = assistant.ask(
        Message(
            user_id="alice",
            email="alice@example.com",
            text="how many VACATION days do i get",
            department="hr",
        )
    )
    assert openai_stub.count == 1, "same access → served from cache"
    assert again.cache_hit and again.notice.startswith("From cache, sources as of")
    assert again.citations == first.citations and again.text == first.text
    assert audit.entries[-1].cache_hit

    retriever.version = "v2"  # a knowledge refresh changes the index version
    fresh = assistant.ask(Message(user_id="alice", email="alice@example.com", text=VACATION, department="hr"))
    assert openai_stub.count == 2 and not fresh.cache_hit


def test_confidential_documents_route_privately_and_only_authorized_sources_are_sent(
    company: Company,
    retriever: FakeRetriever,
    audit: MemoryAudit,
    tmp_path: Path,
    make_router: RouterFactory,
    anthropic_stub: StubLLM,
    openai_stub: StubLLM,
    private_stub: StubLLM,
) -> None:
    router, _usage = make_router(env_for(anthropic_stub, openai_stub, private_stub))
    assistant = make_assistant(company, retriever, audit, router, tmp_path)
    question = "How are workplace investigations handled?"

    admin = assistant.ask(Message(user_id="hank", email="hank@example.com", text=question, department="hr"))
    assert admin.route == "private" and admin.generator == "private"
    assert anthropic_stub.count == 0 and openai_stub.count == 0 and private_stub.count == 1
    assert CANARIES["hr-private"] in private_stub.requests[0].body["messages"][0]["content"]
    assert audit.entries[-1].route == "private" and "confidential" in audit.entries[-1].route_reason

    # alice may not see the investigations file: her request is internal and goes to the cloud,
    # carrying none of the restricted text
    assistant.ask(Message(user_id="alice", email="alice@example.com", text=VACATION, department="hr"))
    sent = [r.body for r in anthropic_stub.requests]
    assert sent and all(CANARIES["hr-private"] not in str(b) for b in sent)
    assert all(CANARIES["finance"] not in str(b) for b in sent)


def test_sensitive_question_with_private_down_gets_sources_only_and_no_cloud_call(
    company: Company,
    retriever: FakeRetriever,
    audit: MemoryAudit,
    tmp_path: Path,
    make_router: RouterFactory,
    anthropic_stub: StubLLM,
    openai_stub: StubLLM,
) -> None:
    router, _usage = make_router(env_for(anthropic_stub, openai_stub, down_url()))
    assistant = make_assistant(company, retriever, audit, router, tmp_path)
    answer = assistant.ask(
        Message(
            user_id="alice",
            email="alice@example.com",
            text="My card 4111 1111 1111 1111 — how many vacation days do I get?",
            department="hr",
        )
    )
    assert answer.status == Status.SOURCES_ONLY and answer.citations
    assert "private model" in answer.text and "unavailable" in answer.text
    assert anthropic_stub.count == 0 and openai_stub.count == 0
    assert audit.entries[-1].route == "none" and "payment-card" in audit.entries[-1].route_reason
    assert "4111" not in audit.entries[-1].route_reason


def test_over_budget_gives_sources_and_a_reset_time(
    company: Company,
    retriever: FakeRetriever,
    audit: MemoryAudit,
    tmp_path: Path,
    make_router: RouterFactory,
    openai_stub: StubLLM,
) -> None:
    router, _ = make_router(env_for(None, openai_stub), budgets={"user_daily_tokens": 50})
    assistant = make_assistant(company, retriever, audit, router, tmp_path)
    answer = assistant.ask(
        Message(user_id="alice", email="alice@example.com", text=VACATION, department="hr")
    )
    assert answer.status == Status.SOURCES_ONLY and "resets at 00:00 UTC" in answer.text
    assert openai_stub.count == 0
    assert audit.entries[-1].error == "BudgetExceeded"


@pytest.mark.parametrize("behaviour", ["malformed", "empty", "401"])
def test_provider_garbage_never_becomes_the_answer(
    company: Company,
    retriever: FakeRetriever,
    audit: MemoryAudit,
    tmp_path: Path,
    make_router: RouterFactory,
    openai_stub: StubLLM,
    behaviour: str,
) -> None:
    openai_stub.default = behaviour
    router, usage = make_router(env_for(None, openai_stub))
    assistant = make_assistant(company, retriever, audit, router, tmp_path)
    answer = assistant.ask(
        Message(user_id="alice", email="alice@example.com", text=VACATION, department="hr")
    )
    assert answer.generator == "extractive" and "SECRET-SDK-TEXT" not in answer.text + answer.notice
    assert "25 days" in answer.text and answer.notice
    assert any(a["outcome"] != "ok" for a in usage.attempts())
