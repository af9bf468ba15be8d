"""One-pass routing over a real index gives the same decisions and scores as one retrieve per department."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core import routing
from bot.core.types import AccessScope, SourceChunk
from bot.knowledge import KnowledgeBase
from bot.knowledge.embedders import Embedder
from tests.fakes import CANARIES, make_company

QUESTIONS = [
    "How many vacation days do I get?",
    "Are meal expenses reimbursed when travelling?",
    "What are the salary bands?",
    "How are workplace investigations handled?",
    "sick leave doctor's note",
    "What is the cafeteria menu on Tuesday?",
    "deploy",
    "",
]
KEYS = {
    "outsider": frozenset({"*", "bob@example.com", "group:engineering"}),
    "finance admin": frozenset({"*", "carol@example.com", "group:finance-team", "group:finance-admins"}),
    "hr admin": frozenset({"*", "hank@example.com", "group:hr-team", "group:hr-admins"}),
}


class SequentialOnly:
    """The same knowledge base without ``retrieve_many``: routing loops over ``retrieve``."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.calls = 0

    def retrieve(self, query: str, scope: AccessScope, *, top_k: int = 8) -> list[SourceChunk]:
        self.calls += 1
        return self.kb.retrieve(query, scope, top_k=top_k)

    def index_version(self, department: str) -> str | None:
        return self.kb.index_version(department)

    def audience_entries(self, department: str) -> frozenset[str]:
        return self.kb.audience_entries(department)


class CountingEmbedder:
    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim, self.is_cloud = inner, inner.name, inner.dim, False
        self.texts: list[str] = []

    def embed(self, texts: list[str]):  # type: ignore[no-untyped-def]
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture
def company_kb(tmp_path: Path, wordllama: Embedder):  # type: ignore[no-untyped-def]
    company = make_company(tmp_path)
    embedder = CountingEmbedder(wordllama)
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=embedder)
    for dept in company:
        kb.refresh(dept)
    return company, kb, embedder


@pytest.mark.parametrize("who", sorted(KEYS))
@pytest.mark.parametrize("question", QUESTIONS)
def test_one_pass_routes_exactly_like_sequential(company_kb, who: str, question: str) -> None:  # type: ignore[no-untyped-def]
    company, kb, _ = company_kb
    depts = list(company)
    scopes = {d.name: AccessScope(department=d.name, keys=KEYS[who]) for d in depts}
    slow = SequentialOnly(kb)
    before = routing.best_department(question, depts, scopes, slow, top_k=6)
    after = routing.best_department(question, depts, scopes, kb, top_k=6)
    assert slow.calls == len(depts)
    assert after == before  # department, how, alternative, probe chunks with their scores, searched


def test_retrieve_many_equals_retrieve_per_scope(company_kb) -> None:  # type: ignore[no-untyped-def]
    company, kb, _ = company_kb
    for keys in KEYS.values():
        scopes = [AccessScope(department=d.name, keys=keys) for d in company]
        for q in QUESTIONS:
            assert kb.retrieve_many(q, scopes, top_k=8) == [kb.retrieve(q, s, top_k=8) for s in scopes]


def test_one_pass_embeds_the_question_once(company_kb) -> None:  # type: ignore[no-untyped-def]
    company, kb, embedder = company_kb
    scopes = [AccessScope(department=d.name, keys=KEYS["outsider"]) for d in company]
    embedder.texts.clear()
    kb.retrieve_many("How many vacation days do I get?", scopes, top_k=4)
    assert embedder.texts == ["How many vacation days do I get?"]


def test_each_department_keeps_its_own_access_mask(company_kb) -> None:  # type: ignore[no-untyped-def]
    company, kb, _ = company_kb
    scopes = [AccessScope(department=d.name, keys=KEYS["outsider"]) for d in company]
    found = kb.retrieve_many("salary bands payroll investigations case code", scopes, top_k=50)
    text = " ".join(c.text for chunks in found for c in chunks)
    assert CANARIES["payroll"] not in text and CANARIES["hr-private"] not in text
    for scope, chunks in zip(scopes, found, strict=True):
        assert all(c.department == scope.department and scope.admits(c.audiences) for c in chunks)


def test_probe_many_is_retrieve_many_with_chunks_on_demand(company_kb) -> None:  # type: ignore[no-untyped-def]
    company, kb, _ = company_kb
    for keys in KEYS.values():
        scopes = [AccessScope(department=d.name, keys=keys) for d in company]
        for q in QUESTIONS:
            probes = kb.probe_many(q, scopes, top_k=8)
            for probe, scope in zip(probes, scopes, strict=True):
                chunks = kb.retrieve(q, scope, top_k=8)
                assert probe.best == max((c.score for c in chunks), default=0.0)
                assert probe.chunks() == chunks
