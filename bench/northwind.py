"""Retrieval quality on natural employee questions over the sample company.

    python -m bench.northwind [--embedders wordllama,minilm] [--sets 1,2]

A second evaluation set, different in kind from ``bench.quality`` (whose queries are
derived from headings and so favour exact words): questions in ``bench/data`` phrased
the way people ask — set 1, 43 questions with one relevant document each
(``northwind-questions.tsv``); set 2, 58 more written the same way later, where a fact
that two documents hold counts both as relevant (``northwind-questions-2.tsv``). The
corpus is the sample company's own knowledge, parsed by deptbot's ingester into a BEIR
folder in a temp dir (payroll included: this measures ranking, not access). Prints
nDCG@10 / Recall@100 / MRR@10 for BM25 alone, dense alone and the fusion methods, with
BM25 as the baseline.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bot.config import load_company
from bot.knowledge.embedders import get_embedder
from bot.knowledge.evaluate import build_index, load_beir, run
from bot.knowledge.ingest import parse_file, scan

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).with_name("data")
SETS = {"1": DATA / "northwind-questions.tsv", "2": DATA / "northwind-questions-2.tsv"}
CONFIGS = [
    ("bm25", "", None, "bm25 (baseline)"),
    ("dense", "", None, "dense"),
    ("hybrid", "rrf", None, "hybrid rrf k=60"),
    ("hybrid", "minmax", None, "hybrid minmax (default weight)"),
    ("hybrid", "minmax", 0.3, "hybrid minmax w=0.3"),
    ("hybrid", "minmax", 0.5, "hybrid minmax w=0.5"),
]


def make_beir(dest: Path, questions: Path = SETS["1"]) -> Path:
    company = load_company(ROOT / "departments")
    corpus = []
    for dept in company:
        for src in scan(dept):
            doc = parse_file(src, dept)
            text = "\n\n".join(c.text for c in doc.chunks)
            corpus.append({"_id": doc.doc_id, "title": doc.title, "text": text})
    queries, qrels = [], ["query-id\tcorpus-id\tscore"]
    lines = [line for line in questions.read_text().splitlines() if line and not line.startswith("#")]
    for i, line in enumerate(lines):
        question, doc_ids = line.split("\t")[:2]
        queries.append({"_id": f"q{i}", "text": question})
        qrels.extend(f"q{i}\t{doc_id}\t1" for doc_id in doc_ids.split("|"))
    known = {d["_id"] for d in corpus}
    missing = [q.split("\t")[1] for q in qrels[1:] if q.split("\t")[1] not in known]
    assert not missing, f"questions point at unknown documents: {missing}"
    (dest / "qrels").mkdir(parents=True)
    (dest / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus))
    (dest / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (dest / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--embedders", default="wordllama,minilm")
    ap.add_argument("--sets", default="1,2", help="question sets to score: 1, 2 or 1,2")
    ap.add_argument(
        "--all-terms",
        choices=("on", "off"),
        default="on",
        help="[retrieval] all_terms_first: off ranks the lexical list in plain BM25 order (old vs new)",
    )
    args = ap.parse_args()
    for which in args.sets.split(","):
        run_set(which, SETS[which], args.embedders.split(","), all_terms_first=args.all_terms == "on")


def run_set(which: str, questions: Path, embedders: list[str], *, all_terms_first: bool = True) -> None:
    with tempfile.TemporaryDirectory(prefix="deptbot-northwind-") as tmp:
        data = load_beir(make_beir(Path(tmp) / "beir", questions))
        print(f"northwind set {which}: {len(data.queries)} questions, {len(data.corpus)} documents")
        print(f"{'embedder':<10} {'config':<30} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'Δ bm25':>8}")
        for name in embedders:
            emb = get_embedder(name)
            index, seconds = build_index(
                data, emb, Path(tmp) / f"idx-{name}", all_terms_first=all_terms_first
            )
            base = None
            for mode, fusion, weight, label in CONFIGS:
                r = run(
                    data,
                    index,
                    emb,
                    mode=mode,
                    fusion=fusion or "minmax",
                    build_seconds=seconds,
                    dense_weight=weight or None,
                )
                base = r.ndcg_at_10 if base is None else base
                print(
                    f"{name:<10} {label:<30} {r.ndcg_at_10:>8.4f} {r.recall_at_100:>7.4f} "
                    f"{r.mrr_at_10:>7.4f} {r.ndcg_at_10 - base:>+8.4f}"
                )


if __name__ == "__main__":
    main()
