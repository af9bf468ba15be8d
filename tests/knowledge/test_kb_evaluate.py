"""BEIR evaluation on a hand-checked fixture (tests/fixtures/beir-tiny)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot.errors import UsageError
from bot.knowledge.embedders import Embedder
from bot.knowledge.evaluate import evaluate_beir, evaluate_beir_runs

TINY = Path(__file__).parent.parent / "fixtures" / "beir-tiny"


def test_bm25_metrics_match_hand_computation(wordllama: Embedder) -> None:
    # BM25 only returns documents sharing a term with the query:
    #   q1 "zebra migration"    relevant {d1}     ranking [d1]        → nDCG 1, RR 1, recall 1
    #   q2 "penguin colony"     relevant {d4}     ranking [d3, d4]    (d3 has both terms)
    #                           → nDCG = (1/log2(3)) / 1 = 0.63093, RR 1/2, recall 1
    #   q3 "quantum tunnelling" relevant {d5, d1} ranking [d5]        (d1 shares no term)
    #                           → DCG 1, IDCG 1 + 1/log2(3) → nDCG 0.61315, RR 1, recall 1/2
    #   q4 has no judgements and is skipped.
    # mean nDCG@10 = (1 + 0.63093 + 0.61315) / 3 = 0.74803; MRR@10 = 2.5/3; Recall@100 = 2.5/3
    (bm25, hybrid, dense) = evaluate_beir_runs(
        TINY, embedder=wordllama, runs=[("bm25", "minmax"), ("hybrid", "rrf"), ("dense", "minmax")]
    )
    expected_ndcg = (1 + 1 / math.log2(3) + 1 / (1 + 1 / math.log2(3))) / 3
    assert bm25.queries == 3 and bm25.documents == 5
    assert bm25.ndcg_at_10 == pytest.approx(expected_ndcg, abs=1e-4)
    assert bm25.mrr_at_10 == pytest.approx(2.5 / 3, abs=1e-4)
    assert bm25.recall_at_100 == pytest.approx(2.5 / 3, abs=1e-4)
    # dense ranks every document, so hybrid and dense find all relevant ones
    assert hybrid.recall_at_100 == dense.recall_at_100 == 1.0
    assert hybrid.fusion == "rrf" and bm25.fusion == ""
    assert 0.0 < dense.ndcg_at_10 <= 1.0


def test_default_entry_point_and_errors(tmp_path: Path) -> None:
    result = evaluate_beir(TINY)
    assert result.mode == "hybrid" and result.embedder == "wordllama"
    assert result.ndcg_at_10 >= 0.74
    with pytest.raises(UsageError):
        evaluate_beir(tmp_path)
    with pytest.raises(UsageError):
        evaluate_beir(TINY, mode="nope")


def test_a_query_that_is_also_a_corpus_document_does_not_find_itself(
    wordllama: Embedder, tmp_path: Path
) -> None:
    import json

    (tmp_path / "qrels").mkdir()
    docs = [
        ("q1", "How do I reset my router password?"),
        ("d2", "Resetting the router password: hold the button."),
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "text": t}) for i, t in docs))
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": docs[0][1]}))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    result = evaluate_beir(tmp_path, embedder=wordllama, mode="bm25")
    assert result.ndcg_at_10 == pytest.approx(1.0) and result.mrr_at_10 == pytest.approx(1.0)
