"""A department with no usable index sits out auto-routed questions; the others answer.

Before, one department without an index (its first refresh failed, its knowledge folder is
gone) failed every auto-routed question for everyone: ``IndexMissing`` from ``probe_many``
or the refresh's ``KnowledgeError``. Now it is left out like a department whose embedder
cannot load (``bot.knowledge.outages``), its admins are told once (``index-missing``), a
question named to it keeps the refusal, and nobody left to ask keeps it too. Fail closed:
it is never answered from another or an older version of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.config import Company, load_company
from bot.core.pipeline import Assistant
from bot.core.types import AccessScope, Message, Status
from bot.errors import IndexMissing, KnowledgeError, ProviderUnavailable
from bot.knowledge import KnowledgeBase, embedders
from bot.knowledge.embedders import Embedder
from bot.llm.extractive import ExtractiveGenerator
from bot.store.notices import MemoryNotices
from tests.fakes import CANARIES, MemoryAudit, RecordingGenerator, make_company

KIND = "index-missing"  # bot.knowledge.outages.MISSING_KIND
MEALS = "Are meal expenses reimbursed when travelling?"
CAROL = "carol@example.com"  # may ask hr and finance


class World:
    def __init__(self, root: Path, company: Company, *, auto_index: bool = True, check: bool = True) -> None:
        self.root, self.company = root, company
        self.notices = MemoryNotices()
        self.kb = KnowledgeBase(state_dir=root / "state", embedder="wordllama", notices=self.notices)
        self.generator = RecordingGenerator(ExtractiveGenerator())
        self.assistant = Assistant(
            company=company,
            retriever=self.kb,
            indexer=self.kb,
            generator=self.generator,  # type: ignore[arg-type]
            audit=MemoryAudit(),
            notices=self.notices,
            auto_index=auto_index,
            check_staleness=check,
        )

    def ask(self, text: str, department: str | None = None, user: str = CAROL) -> object:
        return self.assistant.ask(Message(user_id=user, email=user, text=text, department=department))

    def told(self, kind: str = KIND) -> list[tuple[str | None, str]]:
        return [(n.department, n.text) for n in self.notices.recent(limit=100) if n.kind == kind]

    def sent(self) -> str:
        return repr([r.sources for r in self.generator.requests])  # type: ignore[attr-defined]


@pytest.fixture
def company(tmp_path: Path) -> Company:
    return make_company(tmp_path)


def _answered_by_finance(answer: object) -> None:
    assert answer.status is Status.ANSWERED  # type: ignore[attr-defined]
    assert answer.department == "finance" and "60 dollars" in answer.text  # type: ignore[attr-defined]


def test_first_refresh_failed_the_others_answer_and_admins_hear_once(
    tmp_path: Path, company: Company, wordllama: Embedder
) -> None:
    """hr was never indexed and its folder is gone: its refresh fails on every question."""
    shutil.rmtree(tmp_path / "knowledge" / "hr")
    w = World(tmp_path, company)
    for _ in range(3):
        _answered_by_finance(w.ask(MEALS))
    assert w.kb.index_version("hr") is None
    told = w.told()
    assert [d for d, _ in told] == ["hr"]
    assert "deptbot index hr" in told[0][1] and str(tmp_path) not in told[0][1] and "/" not in told[0][1]
    assert CANARIES["hr"] not in w.sent()


def test_a_question_named_to_it_keeps_the_refusal(
    tmp_path: Path, company: Company, wordllama: Embedder
) -> None:
    shutil.rmtree(tmp_path / "knowledge" / "hr")
    w = World(tmp_path, company)
    with pytest.raises(KnowledgeError, match="does not exist"):
        w.ask("How many vacation days do I get?", department="hr")
    assert w.generator.requests == []  # type: ignore[attr-defined]
    w = World(tmp_path, company, auto_index=False)
    with pytest.raises(IndexMissing):
        w.ask("How many vacation days do I get?", department="hr")


def test_nobody_left_keeps_the_refusal(tmp_path: Path, company: Company, wordllama: Embedder) -> None:
    shutil.rmtree(tmp_path / "knowledge" / "hr")
    shutil.rmtree(tmp_path / "knowledge" / "finance")
    w = World(tmp_path, company)
    with pytest.raises(KnowledgeError, match="Finance does not exist"):
        w.ask(MEALS)  # both of carol's departments: the first one's refusal, as before
    w = World(tmp_path, company, auto_index=False)
    with pytest.raises(IndexMissing, match="finance has no index yet"):
        w.ask(MEALS)
    scope = AccessScope(department="hr", keys=frozenset({"*"}))
    with pytest.raises(IndexMissing):
        w.kb.probe_many("vacation days", [scope, scope], top_k=6)
    assert w.generator.requests == []  # type: ignore[attr-defined]


def test_without_auto_index_the_retriever_leaves_it_out(
    tmp_path: Path, company: Company, wordllama: Embedder
) -> None:
    """``probe_many`` itself: a department with no index gets an ``unavailable`` probe."""
    w = World(tmp_path, company, auto_index=False)
    w.kb.refresh(company.department("finance"))
    w.kb.refresh(company.department("eng"))
    for _ in range(2):
        _answered_by_finance(w.ask(MEALS))
    assert [d for d, _ in w.told()] == ["hr"]
    keys = frozenset({"*", "bob@example.com", "group:engineering"})
    scopes = [AccessScope(department=d.name, keys=keys) for d in company]
    probes = w.kb.probe_many("How many vacation days do I get?", scopes, top_k=6)
    hr = probes[[d.name for d in company].index("hr")]
    assert hr.unavailable and hr.best == 0.0 and hr.chunks() == []
    assert all(not p.unavailable for p in probes if p is not hr)
    # indexed now: answered, and a later loss of its index is news again
    w.kb.refresh(company.department("hr"))
    w.kb.probe_many("vacation", scopes, top_k=6)
    assert not w.kb.reader.outages._missing
    (w.kb.indexer.root("hr") / "CURRENT").unlink()
    w.kb.probe_many("vacation", scopes, top_k=6)
    assert w.kb.reader.outages._missing == {"hr"}


def test_a_served_index_whose_folder_is_gone_is_not_searched(
    tmp_path: Path, company: Company, wordllama: Embedder
) -> None:
    """Fail closed: one-shot commands check staleness first; hr's folder is gone, so its old
    index (documents nobody can re-check) must not answer or be compared."""
    w = World(tmp_path, company)
    for dept in company:
        w.kb.refresh(dept)
    shutil.rmtree(tmp_path / "knowledge" / "hr")
    assert w.kb.index_version("hr") is not None
    answer = w.ask("How many vacation days can be carried over to next year?")
    assert answer.department != "hr"  # type: ignore[attr-defined]
    assert CANARIES["hr"] not in w.sent() and CANARIES["hr"] not in answer.text  # type: ignore[attr-defined]
    assert ("hr", "refresh-failed") in {(n.department, n.kind) for n in w.notices.recent(limit=100)}


class Unloadable:
    name, dim, is_cloud = "minilm", 256, False

    def embed(self, texts: list[str]) -> np.ndarray:
        raise ProviderUnavailable("The minilm embedder is not installed: pip install 'deptbot[minilm]'.")


def test_an_embedder_that_cannot_load_and_no_index_sits_out_too(
    tmp_path: Path, wordllama: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hr was never indexed and its embedder cannot load (its refresh fails every time)."""
    make_company(tmp_path)
    hr_file = tmp_path / "departments" / "hr.yaml"
    hr_file.write_text(hr_file.read_text() + "embedder: minilm\n")
    company = load_company(tmp_path / "departments")
    monkeypatch.setitem(embedders._INSTANCES, "minilm", Unloadable())
    w = World(tmp_path, company)
    _answered_by_finance(w.ask(MEALS))
    assert [d for d, _ in w.told()] == ["hr"]
    with pytest.raises(ProviderUnavailable):
        w.ask("How many vacation days do I get?", department="hr")


def test_a_gone_folder_keeps_its_department_out_for_every_later_question_too(
    tmp_path: Path, company: Company, wordllama: Embedder
) -> None:
    """Review R3: the one-shot staleness check was recorded before it ran, so only the
    first question in a process left the department out; the second (and a question named
    to it) were answered from the index of a folder that no longer exists."""
    w = World(tmp_path, company)
    for dept in company:
        w.kb.refresh(dept)
    shutil.rmtree(tmp_path / "knowledge" / "hr")
    question = "How many vacation days can be carried over to next year?"
    for _ in range(2):
        assert w.ask(question).department != "hr"  # type: ignore[attr-defined]
    with pytest.raises(KnowledgeError):
        w.ask(question, department="hr")


class _Unloadable:
    name, dim, is_cloud = "minilm", 256, False

    def embed(self, texts: list[str]) -> np.ndarray:
        raise ProviderUnavailable("The minilm embedder is not installed.")


def test_a_department_whose_new_embedder_cannot_load_sits_out_as_its_named_question_is_refused(
    tmp_path: Path, wordllama: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review R3: hr switched to an embedder that cannot load keeps its wordllama index. A
    question named to hr is refused (its refresh cannot run); an auto-routed one used to be
    answered by hr from that index. Both now agree: hr is left out."""
    make_company(tmp_path)
    company = load_company(tmp_path / "departments")
    w = World(tmp_path, company)
    for dept in company:
        w.kb.refresh(dept)
    hr_file = tmp_path / "departments" / "hr.yaml"
    hr_file.write_text(hr_file.read_text() + "embedder: minilm\n")
    monkeypatch.setitem(embedders._INSTANCES, "minilm", _Unloadable())
    w = World(tmp_path, load_company(tmp_path / "departments"))
    with pytest.raises(ProviderUnavailable):
        w.ask("How many vacation days do I get?", department="hr")
    w = World(tmp_path, load_company(tmp_path / "departments"))
    auto = w.ask("How many vacation days do I get?")
    assert auto.department != "hr"  # type: ignore[attr-defined]
    assert w.told("refresh-failed")
