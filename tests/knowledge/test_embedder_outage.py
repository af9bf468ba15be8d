"""A department whose embedder cannot load sits out auto-routed questions; the others answer.

hr's index is built with an embedder registered as "minilm" (wordllama's vectors under that
name), which then stops loading the way the real one does without its extra or with an
altered model file (``ProviderUnavailable``). finance and eng stay on wordllama.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.config import Company, load_company
from bot.core import routing
from bot.core.pipeline import Assistant
from bot.core.types import AccessScope, Message, Status
from bot.errors import ProviderUnavailable
from bot.knowledge import KnowledgeBase, embedders
from bot.knowledge.embedders import Embedder
from bot.llm.extractive import ExtractiveGenerator
from bot.store.notices import MemoryNotices
from tests.fakes import CANARIES, MemoryAudit, RecordingGenerator, make_company

NOTICE_KIND = "embedder-unavailable"  # bot.knowledge.outages.NOTICE_KIND
REFUSAL = "The minilm embedder is not installed: pip install 'deptbot[minilm]'."
MEALS = "Are meal expenses reimbursed when travelling?"


class Renamed:
    """wordllama's vectors under another profile's name (builds hr's "minilm" index)."""

    def __init__(self, inner: Embedder, name: str) -> None:
        self.inner, self.name, self.dim, self.is_cloud = inner, name, inner.dim, False

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed(texts)


class Unloadable:
    """An embedder that cannot load here, as minilm without its extra."""

    name, dim, is_cloud = "minilm", 256, False

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        raise ProviderUnavailable(REFUSAL)


class World:
    def __init__(self, root: Path, company: Company, kb: KnowledgeBase, notices: MemoryNotices) -> None:
        self.root, self.company, self.kb, self.notices = root, company, kb, notices
        self.generator = RecordingGenerator(ExtractiveGenerator())
        self.assistant = Assistant(
            company=company,
            retriever=kb,
            indexer=kb,
            generator=self.generator,  # type: ignore[arg-type]
            audit=MemoryAudit(),
            notices=notices,
        )

    def ask(self, user: str, text: str, department: str | None = None) -> object:
        return self.assistant.ask(Message(user_id=user, email=user, text=text, department=department))

    def told(self) -> list[str]:
        return [n.text for n in self.notices.recent(limit=100) if n.kind == NOTICE_KIND]


@pytest.fixture
def world(tmp_path: Path, wordllama: Embedder, monkeypatch: pytest.MonkeyPatch) -> tuple[World, Unloadable]:
    make_company(tmp_path)
    hr_file = tmp_path / "departments" / "hr.yaml"
    hr_file.write_text(hr_file.read_text() + "embedder: minilm\n")
    company = load_company(tmp_path / "departments")
    assert company.department("hr").embedder == "minilm"
    monkeypatch.setitem(embedders._INSTANCES, "minilm", Renamed(wordllama, "minilm"))
    notices = MemoryNotices()
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder="wordllama", notices=notices)
    for dept in company:
        kb.refresh(dept)
    assert kb.reader.loaded("hr").embedder == "minilm"  # type: ignore[union-attr]
    assert kb.reader.loaded("finance").embedder == "wordllama"  # type: ignore[union-attr]
    broken = Unloadable()
    monkeypatch.setitem(embedders._INSTANCES, "minilm", broken)
    return World(tmp_path, company, kb, notices), broken


def test_an_auto_routed_question_is_answered_by_a_department_that_can_load(
    world: tuple[World, Unloadable],
) -> None:
    w, broken = world
    for _ in range(3):
        answer = w.ask("carol@example.com", MEALS)  # carol may ask hr and finance
        assert answer.status is Status.ANSWERED and answer.department == "finance"  # type: ignore[attr-defined]
        assert "60 dollars" in answer.text  # type: ignore[attr-defined]
    assert broken.calls == 3  # tried each time (a reinstall fixes it without a restart)
    told = w.told()
    assert len(told) == 1 and told[0].startswith("hr: the minilm embedder")
    assert REFUSAL in told[0] and str(w.root) not in told[0] and "/" not in told[0]
    assert [n.department for n in w.notices.recent(limit=100) if n.kind == NOTICE_KIND] == ["hr"]
    sent = repr([r.sources for r in w.generator.requests])  # type: ignore[attr-defined]
    assert CANARIES["hr"] not in sent  # hr was never searched with wordllama's vectors


def test_a_question_named_to_that_department_still_gets_the_refusal(world: tuple[World, Unloadable]) -> None:
    w, broken = world
    with pytest.raises(ProviderUnavailable) as refused:  # adapters show its user_message
        w.ask("carol@example.com", "How many vacation days do I get?", department="hr")
    assert refused.value.user_message == REFUSAL
    assert broken.calls == 1 and w.generator.requests == []


def test_the_left_out_department_is_neither_chosen_nor_named_as_searched(
    world: tuple[World, Unloadable],
) -> None:
    w, _ = world
    keys = frozenset({"*", "bob@example.com", "group:engineering"})  # bob may ask all three
    depts = list(w.company)
    scopes = {d.name: AccessScope(department=d.name, keys=keys) for d in depts}
    probes = w.kb.probe_many("How many vacation days do I get?", list(scopes.values()), top_k=6)
    hr = probes[[d.name for d in depts].index("hr")]
    assert hr.unavailable and hr.best == 0.0 and hr.chunks() == []
    route = routing.best_department("How many vacation days do I get?", depts, scopes, w.kb, top_k=6)
    assert route.department.name != "hr" and "Human Resources" not in route.searched
    assert sorted(route.searched) == ["Engineering", "Finance"]
    two = [w.company.department("hr"), w.company.department("finance")]
    route = routing.best_department(MEALS, two, scopes, w.kb, top_k=6)
    assert (route.department.name, route.how, route.searched) == ("finance", "auto", ("Finance",))
    assert route.probe and route.assessment is not None


def test_nobody_left_to_search_gets_the_refusal(world: tuple[World, Unloadable]) -> None:
    w, _ = world
    scope = AccessScope(department="hr", keys=frozenset({"*"}))
    with pytest.raises(ProviderUnavailable, match="not installed"):
        w.kb.probe_many("vacation days", [scope, scope], top_k=6)


class CountingNotices(MemoryNotices):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def notify(self, department: str | None, kind: str, text: str) -> bool:
        self.calls += 1
        return super().notify(department, kind, text)


def test_admins_are_told_once_per_outage(wordllama: Embedder) -> None:
    from bot.knowledge.outages import NOTICE_KIND as KIND
    from bot.knowledge.outages import EmbedderOutages

    assert KIND == NOTICE_KIND
    outages = EmbedderOutages()
    notices = outages.notices = CountingNotices()
    broken, error = Unloadable(), ProviderUnavailable(REFUSAL)
    works = Renamed(wordllama, "minilm")
    current: list[Embedder] = [broken]
    for _ in range(3):
        vectors, failed = outages.embed("q", ["minilm", "minilm"], lambda name: current[0])
        assert vectors == {} and set(failed) == {"minilm"}
        outages.left_out("hr", "minilm", failed["minilm"])
    assert notices.calls == 1 and broken.calls == 3
    current[0] = works  # reinstalled: works again, then breaks anew → told again
    vectors, failed = outages.embed("q", ["minilm"], lambda name: current[0])
    assert set(vectors) == {"minilm"} and failed == {}
    outages.left_out("hr", "minilm", error)
    assert notices.calls == 2


def test_a_stale_department_whose_refresh_cannot_embed_still_sits_out(
    world: tuple[World, Unloadable],
) -> None:
    """One-shot commands check staleness before the first question: hr's refresh fails on its
    embedder (admins hear "refresh-failed"), and the question goes on without hr: it is not
    searched at all (its own check failed), as a question named to it is refused."""
    w, broken = world
    (w.root / "knowledge" / "hr" / "time-off.md").write_text("# Time off\nEveryone gets 30 days.\n")
    answer = w.ask("carol@example.com", MEALS)
    assert answer.status is Status.ANSWERED and answer.department == "finance"  # type: ignore[attr-defined]
    kinds = {(n.department, n.kind) for n in w.notices.recent(limit=100)}
    assert ("hr", "refresh-failed") in kinds
    assert broken.calls >= 1  # the refresh tried the embedder
