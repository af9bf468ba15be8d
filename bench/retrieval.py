"""Retrieval latency at ~10,000 chunks: our retrieve() vs plain LlamaIndex retrievers.

    python -m bench.retrieval [--chunks 10000] [--queries 200]

Builds a knowledge folder from replicated 18F handbook pages in a temp dir, indexes it
with the default embedder, then times, over the same chunks and queries:
  * ours: KnowledgeBase.retrieve (access mask, BM25 + dense, fusion, calibration, SourceChunk)
  * LlamaIndex VectorStoreIndex (same WordLlama embedder, SimpleVectorStore), top 8
  * LlamaIndex BM25Retriever (llama-index-retrievers-bm25), top 8
Neither baseline filters by access or fuses; the ratio is ours / baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.handbook import DEFAULT_ROOT, make_beir, make_knowledge
from bot.config import Department
from bot.core.types import AccessScope
from bot.knowledge import KnowledgeBase
from bot.knowledge.embedders import get_embedder
from bot.knowledge.evaluate import load_beir

CHUNKS_PER_COPY = 2400  # one handbook copy yields ~2,400 chunks (sections)


def timed(fn: Any, queries: list[str]) -> np.ndarray:
    for q in queries[:5]:
        fn(q)  # warm caches
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000)
    return np.array(out)


def llama_embedding() -> Any:
    from llama_index.core.embeddings import BaseEmbedding

    emb = get_embedder("wordllama")

    class WordLlamaLI(BaseEmbedding):  # type: ignore[misc]
        def _get_query_embedding(self, query: str) -> list[float]:
            return emb.embed([query])[0].tolist()  # type: ignore[no-any-return]

        def _get_text_embedding(self, text: str) -> list[float]:
            return emb.embed([text])[0].tolist()  # type: ignore[no-any-return]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return emb.embed(texts).tolist()  # type: ignore[no-any-return]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return WordLlamaLI(model_name="wordllama", embed_batch_size=512)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--handbook", type=Path, default=DEFAULT_ROOT)
    args = ap.parse_args()
    copies = max(1, -(-args.chunks // CHUNKS_PER_COPY))
    with tempfile.TemporaryDirectory(prefix="deptbot-bench-") as tmp:
        root = Path(tmp)
        knowledge = root / "knowledge" / "handbook"
        make_knowledge(knowledge, copies=copies, root=args.handbook)
        dept = Department(name="handbook", title="Handbook", knowledge=knowledge)
        kb = KnowledgeBase(state_dir=root / "state")
        t0 = time.perf_counter()
        report = kb.refresh(dept)
        build = time.perf_counter() - t0
        queries = list(
            load_beir(make_beir(root / "beir", max_queries=args.queries, root=args.handbook)).queries.values()
        )
        scope = AccessScope(department="handbook", keys=frozenset({"*", "someone@example.com"}))
        ours = timed(lambda q: kb.retrieve(q, scope, top_k=8), queries)

        from llama_index.core import Settings, VectorStoreIndex
        from llama_index.core.schema import TextNode
        from llama_index.retrievers.bm25 import BM25Retriever

        index = kb.reader.loaded("handbook")
        assert index is not None
        nodes = [TextNode(text=index.text(i), id_=str(i)) for i in range(index.n)]
        Settings.embed_model = llama_embedding()
        t0 = time.perf_counter()
        vector = VectorStoreIndex(nodes, embed_model=Settings.embed_model, show_progress=False)
        li_build = time.perf_counter() - t0
        vec_retriever = vector.as_retriever(similarity_top_k=8)
        li_vec = timed(vec_retriever.retrieve, queries)
        bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=8)
        li_bm25 = timed(bm25.retrieve, queries)

        print(
            f"\nchunks={report.chunks} files={report.total_files} queries={len(queries)} "
            f"build {build:.1f}s (ours, incl. parsing) vs VectorStoreIndex {li_build:.1f}s (embedding only)"
        )
        print(f"{'retriever':<44} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'p50 ratio':>10}")
        for label, arr in (
            ("ours: hybrid + access mask + calibration", ours),
            ("LlamaIndex VectorStoreIndex (same embedder)", li_vec),
            ("LlamaIndex BM25Retriever", li_bm25),
        ):
            ratio = np.percentile(ours, 50) / np.percentile(arr, 50)
            print(
                f"{label:<44} {np.percentile(arr, 50):>8.2f} {np.percentile(arr, 95):>8.2f} "
                f"{arr.mean():>8.2f} {ratio:>9.2f}x"
            )
        print("targets: ours p50 <= 25 ms, p95 <= 60 ms (ratio = ours / that retriever)")


if __name__ == "__main__":
    main()
