"""Query-side identifiers (``lexical.query_term_ids``): "GL account" finds the ``gl_account``
column, in the one-department path and the one pass alike, with coverage that treats the
identifier as another spelling, and without revealing identifiers only restricted chunks hold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.config import Department
from bot.core.types import AccessScope, Classification
from bot.knowledge import KnowledgeBase, lexical
from bot.knowledge.embedders import Embedder

CATEGORIES = (
    "category,gl_account,description,limit\n"
    "Hotel,6112,Accommodation on business trips,150-260 EUR per night\n"
    "Rail,6111,Train tickets for business trips,Standard class\n"
    "Taxi,6114,Taxis on business trips,Reasonable\n"
)
PUBLIC = {
    "expense-categories.csv": CATEGORIES,
    "travel.md": "# Travel\n\n## Hotels\n\nBook hotels through the travel tool. The hotel limit depends "
    "on the city.\n\n## Trains\n\nTake the "
    "train for trips under four hours.\n",
    "ledger.md": "# Ledger\n\n## Accounts\n\nFinance keeps one account per cost centre in the general "
    "ledger. Ask finance before opening a new account.\n",
}
RESTRICTED = {
    "private/_access.yaml": "audience: ['group:finance-admins']\nclassification: confidential\n",
    "private/bonus.csv": "employee,bonus_pool,notes\nA,1000,none\nB,2000,none\n",
}
EVERYONE = frozenset({"*"})
OUTSIDER = frozenset({"*", "group:engineering"})


def _kb(
    tmp_path: Path,
    name: str,
    files: dict[str, str],
    embedder: Embedder,
    departments: tuple[str, ...] = ("finance", "travel"),
) -> KnowledgeBase:
    """A knowledge base whose ``departments`` each hold ``files`` (the one pass needs several)."""
    kb = KnowledgeBase(state_dir=tmp_path / name / "state", embedder=embedder)
    for dept in departments:
        folder = tmp_path / name / "knowledge" / dept
        for rel, text in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        internal = Classification.INTERNAL
        kb.refresh(Department(name=dept, title=dept.title(), knowledge=folder, classification=internal))
    return kb


@pytest.fixture
def kb(tmp_path: Path, wordllama: Embedder) -> KnowledgeBase:
    return _kb(tmp_path, "a", PUBLIC, wordllama)


def test_forms_join_adjacent_terms_with_underscores_only() -> None:
    forms = lexical.compound_forms(["gl", "account", "hotel"])
    assert forms[:2] == ["gl_account", "gl_account"] or "gl_account" in forms
    assert {"gl_account", "account_hotel", "gl_account_hotel"} <= set(forms)
    assert "receipt_requir" in lexical.compound_forms(["receipt", "requir"])
    # no concatenations: "set up" is not "setup", "do need" is not "done"
    assert not {"setup", "glaccount", "done"} & set(lexical.compound_forms(["set", "up", "do", "need"]))
    assert lexical.compound_forms(["one"]) == []


def test_identifiers_follow_the_query_terms_only_when_the_index_knows_them() -> None:
    vocab = {"gl": 0, "account": 1, "hotel": 2, "gl_account": 3}
    known = lexical.query_term_ids(["gl", "account", "hotel", "xyz"], vocab.get)
    assert known == [("gl", 0), ("account", 1), ("hotel", 2), ("gl_account", 3)]
    assert lexical.query_term_ids(["hotel", "gl"], vocab.get) == [("hotel", 2), ("gl", 0)]


def test_an_identifier_is_another_spelling_in_the_coverage_denominator() -> None:
    tokens = ["gl", "account", "hotel", "xyz"]
    known = [("gl", 0), ("account", 1), ("hotel", 2), ("gl_account", 3)]
    idf0 = np.float32(3.3)
    # without the identifier visible: exactly the old count, in the idf's float32 precision
    visible = {0: 1.0, 1: 0.5, 2: 2.0}
    assert lexical.unseen_mass(tokens, known, visible, idf0) == float(np.float32(1) * idf0)
    # visible: its weight comes back out, so the denominator is what it was without it
    with_id = {**visible, 3: 2.5}
    denominator = sum(with_id.values()) + lexical.unseen_mass(tokens, known, with_id, idf0)
    assert denominator == pytest.approx(sum(visible.values()) + float(idf0))
    # an own token no visible chunk holds counts as unseen whether or not the index knows it
    assert lexical.unseen_mass(tokens, known, {2: 2.0}, idf0) == pytest.approx(3 * float(idf0))


def test_gl_account_question_finds_the_column_first_by_bm25(kb: KnowledgeBase) -> None:
    index = kb.reader.loaded("finance")
    assert index is not None
    emb = kb.reader._embedder_named(index.embedder)
    mask = index.mask(AccessScope("finance", EVERYONE))
    question = "What is the GL account for hotel expenses?"
    hits, terms, _ = index.search(question, mask, 3, embedder=emb, mode="bm25")
    assert "gl_account" in index.text(hits[0].index)
    assert index.term_id("gl_account") in terms


def test_both_paths_expand_a_question_identically(kb: KnowledgeBase) -> None:
    scopes = [AccessScope("finance", EVERYONE), AccessScope("travel", EVERYONE)]
    for q in ("GL account for hotel", "gl account", "hotel gl account limit", "bonus pool"):
        for probe, scope in zip(kb.probe_many(q, scopes, top_k=5), scopes, strict=True):
            index = kb.reader.loaded(scope.department)
            assert index is not None
            alone = kb.reader._probe_in(index, scope, q, 5)
            assert probe._hits == alone._hits and probe._terms == alone._terms, q
            assert probe._unseen == alone._unseen and probe.best == alone.best, q
            assert probe.chunks() == alone.chunks(), q


def test_a_prose_chunk_keeps_its_coverage_when_an_identifier_is_added(kb: KnowledgeBase) -> None:
    index = kb.reader.loaded("finance")
    assert index is not None
    emb = kb.reader._embedder_named(index.embedder)
    mask = index.mask(AccessScope("finance", EVERYONE))
    prose = next(i for i in range(index.n) if "general ledger" in index.text(i))
    # "ledger account" has no identifier; "gl account" adds gl_account (only the CSV holds it)
    _, terms, unseen = index.search("gl account", mask, 5, embedder=emb)
    assert len(terms) == 2  # "account" and the identifier; "gl" alone is in no chunk
    coverage = index.coverage(np.array([prose]), terms, unseen)[0]
    tokens = ["gl", "account"]
    plain = {t: w for t, w in terms.items() if index._term_name(t) in tokens}
    idf0 = float(lexical.idf(np.array([0.0]), int(mask.sum()))[0])
    assert coverage == pytest.approx(plain[index.term_id("account")] / (sum(plain.values()) + idf0))


def test_an_identifier_only_restricted_chunks_hold_changes_nothing_for_an_outsider(
    tmp_path: Path, wordllama: Embedder
) -> None:
    public = _kb(tmp_path, "p", PUBLIC, wordllama)
    both = _kb(tmp_path, "r", {**PUBLIC, **RESTRICTED}, wordllama)
    scope = AccessScope("finance", OUTSIDER)
    for q in ("bonus pool for hotel", "what is the bonus pool", "gl account bonus pool"):
        a = public.retrieve(q, scope, top_k=10)
        b = both.retrieve(q, scope, top_k=10)
        assert [c.chunk_id for c in b] == [c.chunk_id for c in a], q
        assert [c.score for c in b] == pytest.approx([c.score for c in a], abs=1e-6), q
    insider = AccessScope("finance", frozenset({"*", "group:finance-admins"}))
    assert both.retrieve("what is the bonus pool", insider, top_k=1)[0].doc_id == "finance/private/bonus.csv"
