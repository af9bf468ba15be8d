"""Retrieval statistics are per scope: restricted documents must not move what others see.

BM25 idf/avgdl, query-term coverage and so the calibrated confidence are computed over
the chunks the asker may see, so an outsider gets the same chunks and scores whether or
not restricted documents exist at all (issue 8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.config import Department
from bot.core.types import AccessScope, Classification, SourceChunk
from bot.knowledge import KnowledgeBase, lexical
from bot.knowledge.embedders import Embedder
from bot.knowledge.retrieve import LoadedIndex
from tests.knowledge.conftest import TIME_OFF

SECRET = "zorblax"
PUBLIC = {
    "time-off.md": TIME_OFF,
    "it/laptops.md": "# Laptops\n\n## Replacement\n\nLaptops are replaced every four years by IT.\n"
    "Ask your manager before ordering a second monitor.\n",
    "benefits.md": "# Benefits\n\n## Pension\n\nThe company pays 5% of your salary into the pension plan.\n\n"
    "## Bike lease\n\nA bike lease is paid from your gross salary; ask HR for the form.\n",
}
RESTRICTED = {
    "finance/_access.yaml": "audience: ['group:finance-admins']\nclassification: confidential\n",
    "finance/payroll.md": f"""# Payroll runs

## {SECRET.title()} adjustments

Every {SECRET} adjustment changes the salary of a manager. The {SECRET} table lists salary,
vacation days, annual vacation payout and pension for every employee. {SECRET} {SECRET}.

## Vacation payout

Unused annual vacation days are paid out with the March salary. Salary salary salary
vacation vacation pension pension manager laptops replaced every year.
""",
    "finance/bonus.md": f"# Bonus\n\nBonus pool {SECRET} is set per manager; salary reviews in May.\n",
}
QUERIES = (
    f"{SECRET} vacation days",  # restricted-only term + a common one
    f"what is the {SECRET} adjustment",
    SECRET,
    "How many days of annual vacation do employees get?",  # common words only
    "salary pension",
    "when are laptops replaced by my manager",
)
OUTSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:engineering"}))
INSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:finance-admins"}))


def _build(tmp_path: Path, name: str, files: dict[str, str], embedder: Embedder) -> KnowledgeBase:
    folder = tmp_path / name / "knowledge" / "hr"
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    dept = Department(name="hr", title="HR", knowledge=folder, classification=Classification.INTERNAL)
    kb = KnowledgeBase(state_dir=tmp_path / name / "state", embedder=embedder)
    kb.refresh(dept)
    return kb


@pytest.fixture
def public_only(tmp_path: Path, wordllama: Embedder) -> KnowledgeBase:
    return _build(tmp_path, "a", PUBLIC, wordllama)


@pytest.fixture
def with_restricted(tmp_path: Path, wordllama: Embedder) -> KnowledgeBase:
    return _build(tmp_path, "b", {**PUBLIC, **RESTRICTED}, wordllama)


def _ids_scores(chunks: list[SourceChunk]) -> tuple[list[str], list[float]]:
    return [c.chunk_id for c in chunks], [c.score for c in chunks]


def _raw(kb: KnowledgeBase, query: str, scope: AccessScope, mode: str) -> list[tuple[str, float, float]]:
    """(chunk id, fused, bm25) of every visible hit, before calibration and rounding."""
    index = kb.reader.loaded("hr")
    assert index is not None
    emb = kb.reader._embedder_named(index.embedder)
    hits, _, _ = index.search(query, index.mask(scope), 50, embedder=emb, mode=mode)
    out = []
    for h in hits:
        doc = index.docs[int(index.chunk_doc[h.index])]
        out.append((f"{doc['doc_id']}#{h.index - doc['start']}", h.fused, h.bm25))
    return out


def test_restricted_documents_do_not_change_outsider_results(
    public_only: KnowledgeBase, with_restricted: KnowledgeBase
) -> None:
    for query in QUERIES:
        a_ids, a_scores = _ids_scores(public_only.retrieve(query, OUTSIDER, top_k=50))
        b_ids, b_scores = _ids_scores(with_restricted.retrieve(query, OUTSIDER, top_k=50))
        assert b_ids == a_ids, query
        assert b_scores == pytest.approx(a_scores, abs=1e-6), query


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_outsider_bm25_and_fusion_ignore_restricted_statistics(
    public_only: KnowledgeBase, with_restricted: KnowledgeBase, mode: str
) -> None:
    for query in QUERIES:
        a = _raw(public_only, query, OUTSIDER, mode)
        b = _raw(with_restricted, query, OUTSIDER, mode)
        assert [h[0] for h in b] == [h[0] for h in a], query
        assert np.allclose([h[1:] for h in b], [h[1:] for h in a], rtol=1e-6, atol=1e-7), query


def test_restricted_only_term_does_not_move_outsider_confidence(
    public_only: KnowledgeBase, with_restricted: KnowledgeBase
) -> None:
    for query in (f"{SECRET} vacation days", f"{SECRET} salary"):
        a = public_only.retrieve(query, OUTSIDER, top_k=5)
        b = with_restricted.retrieve(query, OUTSIDER, top_k=5)
        assert b[0].chunk_id == a[0].chunk_id
        assert b[0].score == pytest.approx(a[0].score, abs=1e-6)


def test_insider_still_gets_restricted_chunks(with_restricted: KnowledgeBase) -> None:
    chunks = with_restricted.retrieve(f"{SECRET} adjustments", INSIDER, top_k=5)
    assert chunks[0].doc_id.startswith("hr/finance/") and SECRET in chunks[0].text.lower()
    assert chunks[0].classification == Classification.CONFIDENTIAL
    outsider = with_restricted.retrieve(f"{SECRET} adjustments", OUTSIDER, top_k=50)
    assert outsider and all(not c.doc_id.startswith("hr/finance/") for c in outsider)
    # For the insider the term is known: it ranks the payroll chunk above public ones.
    assert chunks[0].score > outsider[0].score


def test_all_visible_scope_matches_the_stored_bm25_matrix(with_restricted: KnowledgeBase) -> None:
    index = with_restricted.reader.loaded("hr")
    assert index is not None
    everyone = AccessScope(department="hr", keys=frozenset({"*", "group:finance-admins"}))
    emb = with_restricted.reader._embedder_named(index.embedder)
    for query in QUERIES:
        ids, _ = index.query_terms(query)
        if not ids:
            continue
        stored = np.asarray(index.bm25.get_scores(ids), dtype=np.float32)
        hits, _, _ = index.search(query, index.mask(everyone), index.n, embedder=emb, mode="bm25")
        assert hits
        for h in hits:
            assert h.bm25 == pytest.approx(float(stored[h.index]), rel=1e-5)


def test_versions_without_stored_term_freqs_still_load(with_restricted: KnowledgeBase) -> None:
    index = with_restricted.reader.loaded("hr")
    assert index is not None
    tf_file = index.path / "bm25" / lexical.TF_FILE
    assert tf_file.is_file()
    stored = np.array(np.load(tf_file))
    tf_file.unlink()  # as written before term frequencies were stored
    legacy = LoadedIndex(index.path)
    assert np.array_equal(np.asarray(legacy.tf), stored)
    emb = with_restricted.reader._embedder_named(index.embedder)
    for scope in (OUTSIDER, INSIDER):
        for query in QUERIES:
            new = index.search(query, index.mask(scope), 20, embedder=emb)[0]
            old = legacy.search(query, legacy.mask(scope), 20, embedder=emb)[0]
            assert [(h.index, h.bm25) for h in old] == [(h.index, h.bm25) for h in new]
