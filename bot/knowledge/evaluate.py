"""BEIR-format evaluation of exactly the production retrieval pipeline.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/test.tsv`` (header ``query-id corpus-id score``). Each
corpus entry becomes one document, chunked like any other; a document's rank is the rank
of its best chunk. Metrics follow trec_eval/BEIR: nDCG@10 with linear gains, Recall@100
(relevant = score > 0), MRR@10. Queries without judgements are skipped.

The index is built with the same ``assemble``/``write_version``/``LoadedIndex`` code the
bot uses, in a temporary folder, with no access restriction.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.core.types import AccessScope
from bot.errors import UsageError
from bot.knowledge import chunking, ingest
from bot.knowledge.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from bot.knowledge.index import assemble, write_version
from bot.knowledge.retrieve import DEFAULT_FUSION, FUSIONS, MODES, LoadedIndex


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    embedder: str
    mode: str  # hybrid | bm25 | dense
    fusion: str  # minmax | rrf (hybrid only; "" otherwise)
    queries: int
    documents: int
    chunks: int
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    build_seconds: float
    ms_per_query_p50: float
    ms_per_query_p95: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    def table(self) -> str:
        """The ``deptbot eval`` output: one metric per line."""
        how = f"{self.mode}" + (f" ({self.fusion})" if self.fusion else "")
        rows = [
            ("dataset", self.dataset),
            ("retrieval", f"{how}, embedder {self.embedder}"),
            ("queries / documents / chunks", f"{self.queries} / {self.documents} / {self.chunks}"),
            ("nDCG@10", f"{self.ndcg_at_10:.4f}"),
            ("Recall@100", f"{self.recall_at_100:.4f}"),
            ("MRR@10", f"{self.mrr_at_10:.4f}"),
            ("index build", f"{self.build_seconds:.2f} s"),
            ("ms per query p50 / p95", f"{self.ms_per_query_p50:.2f} / {self.ms_per_query_p95:.2f}"),
        ]
        return "\n".join(f"{k:<30}{v}" for k, v in rows)


@dataclass(frozen=True)
class BeirSet:
    name: str
    corpus: dict[str, tuple[str, str]]  # id → (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _jsonl(path: Path) -> Iterable[dict[str, object]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def load_beir(path: Path, split: str = "test") -> BeirSet:
    path = Path(path)
    needed = [path / "corpus.jsonl", path / "queries.jsonl", path / "qrels" / f"{split}.tsv"]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise UsageError(f"{path} is not a BEIR folder (missing {', '.join(missing)}).")
    corpus = {str(d["_id"]): (str(d.get("title") or ""), str(d.get("text") or "")) for d in _jsonl(needed[0])}
    queries = {str(q["_id"]): str(q["text"]) for q in _jsonl(needed[1])}
    qrels: dict[str, dict[str, int]] = {}
    with needed[2].open(encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if len(row) < 3 or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(float(row[2]))
    return BeirSet(path.name, corpus, queries, qrels)


def build_index(
    data: BeirSet, embedder: Embedder, folder: Path, *, all_terms_first: bool = True
) -> tuple[LoadedIndex, float]:
    started = time.perf_counter()
    order: list[tuple[str, ingest.DocRecord | None]] = []
    for doc_id, (title, text) in data.corpus.items():
        chunks = chunking.chunk_sections([("", text)]) or [chunking.Chunk(title or doc_id)]
        order.append((doc_id, ingest.DocRecord(doc_id, doc_id, doc_id, title, 0.0, 0, (), tuple(chunks))))
    index_data = assemble(None, order, embedder)
    version = write_version(folder, "beir", index_data)
    index = LoadedIndex(folder / "versions" / version, all_terms_first=all_terms_first)
    return index, time.perf_counter() - started


def ndcg_at_10(ranked: list[str], rel: dict[str, int]) -> float:
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_100(ranked: list[str], rel: dict[str, int]) -> float:
    relevant = {d for d, g in rel.items() if g > 0}
    return len(relevant.intersection(ranked[:100])) / len(relevant) if relevant else 0.0


def mrr_at_10(ranked: list[str], rel: dict[str, int]) -> float:
    for i, d in enumerate(ranked[:10]):
        if rel.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def run(
    data: BeirSet,
    index: LoadedIndex,
    embedder: Embedder,
    *,
    mode: str,
    fusion: str,
    build_seconds: float,
    dense_weight: float | None = None,
) -> EvalResult:
    """Score one (mode, fusion) on an already built index."""
    if mode not in MODES:
        raise UsageError(f"Unknown mode {mode!r}; use one of {', '.join(MODES)}.")
    if fusion not in FUSIONS:
        raise UsageError(f"Unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}.")
    mask = index.mask(AccessScope(department="beir", keys=frozenset({"*"})))
    per_doc = {d["doc_id"]: d["count"] for d in index.docs}
    k = min(index.n, 100 * max(1, round(index.n / max(1, len(per_doc)))) + 50)
    sums = {"ndcg": 0.0, "recall": 0.0, "mrr": 0.0}
    times: list[float] = []
    judged = [q for q in data.qrels if q in data.queries and any(g > 0 for g in data.qrels[q].values())]
    for qid in judged:
        t0 = time.perf_counter()
        hits, _, _ = index.search(
            data.queries[qid],
            mask,
            k,
            embedder=embedder,
            mode=mode,
            fusion=fusion,
            candidates=k,
            dense_weight=dense_weight,
        )
        times.append((time.perf_counter() - t0) * 1000)
        ranked = list(dict.fromkeys(index.docs[int(index.chunk_doc[h.index])]["doc_id"] for h in hits))
        # As BEIR does (ignore_identical_ids): in sets like Quora and ArguAna the query is
        # also a corpus document, and finding itself is not a result.
        ranked = [d for d in ranked if d != qid]
        rel = data.qrels[qid]
        sums["ndcg"] += ndcg_at_10(ranked, rel)
        sums["recall"] += recall_at_100(ranked, rel)
        sums["mrr"] += mrr_at_10(ranked, rel)
    n = max(1, len(judged))
    return EvalResult(
        dataset=data.name,
        embedder=embedder.name,
        mode=mode,
        fusion=fusion if mode == "hybrid" else "",
        queries=len(judged),
        documents=len(per_doc),
        chunks=index.n,
        ndcg_at_10=round(sums["ndcg"] / n, 4),
        recall_at_100=round(sums["recall"] / n, 4),
        mrr_at_10=round(sums["mrr"] / n, 4),
        build_seconds=round(build_seconds, 2),
        ms_per_query_p50=round(float(np.percentile(times, 50)), 2) if times else 0.0,
        ms_per_query_p95=round(float(np.percentile(times, 95)), 2) if times else 0.0,
    )


def evaluate_beir_runs(
    path: Path,
    *,
    embedder: str | Embedder = DEFAULT_EMBEDDER,
    runs: Iterable[tuple[str, str]] = (("hybrid", DEFAULT_FUSION),),
) -> list[EvalResult]:
    """Build the index once and score several (mode, fusion) pairs on it."""
    data = load_beir(path)
    emb = get_embedder(embedder) if isinstance(embedder, str) else embedder
    with tempfile.TemporaryDirectory(prefix="deptbot-beir-") as tmp:
        index, seconds = build_index(data, emb, Path(tmp))
        return [run(data, index, emb, mode=m, fusion=f, build_seconds=seconds) for m, f in runs]


def evaluate_beir(
    path: Path, *, embedder: str = DEFAULT_EMBEDDER, mode: str = "hybrid", fusion: str = DEFAULT_FUSION
) -> EvalResult:
    """nDCG@10, Recall@100 and MRR@10 of the retrieval pipeline on a BEIR folder."""
    return evaluate_beir_runs(path, embedder=embedder, runs=[(mode, fusion)])[0]
