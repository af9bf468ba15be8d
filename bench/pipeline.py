"""End-to-end pipeline latency with the extractive generator on a ~10,000-chunk department.

    python -m bench.pipeline [--chunks 10000] [--queries 200]

Times ``Assistant.ask`` — identify, authorize, retrieve (access mask, hybrid, calibration),
classify, route (offline → extractive), generate, cite, and the SQLite audit write — with
the answer cache off, against plain LlamaIndex retrievers over the same chunks and embedder
in the same run (they do none of the other steps). Reads the public handbook from
``../shared/corpora``; writes only to a temp folder.
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from bench.handbook import DEFAULT_ROOT, make_beir, make_knowledge
from bench.retrieval import CHUNKS_PER_COPY, llama_embedding, timed
from bot.config import load_company
from bot.core.pipeline import Assistant
from bot.core.types import Message, Status
from bot.knowledge import KnowledgeBase
from bot.knowledge.evaluate import load_beir
from bot.llm.factory import build_generator, open_usage_store
from bot.sensitivity import PatternClassifier
from bot.settings import Settings
from bot.store.audit import SqliteAuditLog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--handbook", type=Path, default=DEFAULT_ROOT)
    args = ap.parse_args()
    copies = max(1, -(-args.chunks // CHUNKS_PER_COPY))
    with tempfile.TemporaryDirectory(prefix="deptbot-bench-") as tmp:
        root = Path(tmp)
        make_knowledge(root / "knowledge" / "handbook", copies=copies, root=args.handbook)
        deps = root / "departments"
        deps.mkdir()
        (deps / "handbook.yaml").write_text(
            textwrap.dedent("""\
            title: Handbook
            knowledge: ../knowledge/handbook
            ask: ["*@example.com"]
            admins: ["admin@example.com"]
            dont_know_below: 0.35
            """)
        )
        company = load_company(deps)
        settings = Settings.load(departments=deps, state=root / "state", env={})
        kb = KnowledgeBase(state_dir=root / "state")
        report = kb.refresh(company.department("handbook"))
        assistant = Assistant(
            company=company,
            retriever=kb,
            indexer=kb,
            generator=build_generator(settings, usage_store=open_usage_store(settings)),
            audit=SqliteAuditLog(path=root / "state" / "audit.db"),
            classifier=PatternClassifier(),
            cache=None,
        )
        queries = list(
            load_beir(make_beir(root / "beir", max_queries=args.queries, root=args.handbook)).queries.values()
        )
        statuses: list[Status] = []

        def ask(q: str) -> None:
            a = assistant.ask(
                Message(user_id="u", email="someone@example.com", text=q, department="handbook")
            )
            statuses.append(a.status)

        ours = timed(ask, queries)
        answered = sum(s is Status.ANSWERED for s in statuses) / len(statuses)

        from llama_index.core import VectorStoreIndex
        from llama_index.core.schema import TextNode
        from llama_index.retrievers.bm25 import BM25Retriever

        index = kb.reader.loaded("handbook")
        assert index is not None
        nodes = [TextNode(text=index.text(i), id_=str(i)) for i in range(index.n)]
        vector = VectorStoreIndex(nodes, embed_model=llama_embedding(), show_progress=False)
        li_vec = timed(vector.as_retriever(similarity_top_k=6).retrieve, queries)
        li_bm25 = timed(BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=6).retrieve, queries)

        print(f"\nchunks={report.chunks} queries={len(queries)} answered={answered:.0%} (rest: don't know)")
        print(f"{'path':<52} {'p50 ms':>8} {'p95 ms':>8} {'ours/it p50':>12}")
        for label, arr in (
            ("deptbot Assistant.ask (extractive, audit, no cache)", ours),
            ("LlamaIndex VectorStoreIndex retrieve (same embedder)", li_vec),
            ("LlamaIndex BM25Retriever retrieve", li_bm25),
        ):
            ratio = np.percentile(ours, 50) / np.percentile(arr, 50)
            print(
                f"{label:<52} {np.percentile(arr, 50):>8.2f} {np.percentile(arr, 95):>8.2f} {ratio:>11.2f}x"
            )
        print("targets: Assistant.ask p50 <= 25 ms, p95 <= 60 ms")


if __name__ == "__main__":
    main()
