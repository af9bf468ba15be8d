"""Retrieval quality: nDCG@10 of bm25 / dense / hybrid(RRF) / hybrid(min-max) per embedder.

    python -m bench.quality [--embedders wordllama,minilm] [--max-queries 300] [--beir DIR ...]

Datasets: a BEIR set derived at run time from the 18F handbook (queries = page-specific
section headings and front-matter keywords; see bench/handbook.py), plus any BEIR folder
given with --beir. No public BEIR set ships on PyPI (ir-datasets/beir download at run
time, which this machine cannot), so none is bundled. Baseline in the same run: BM25 only.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.handbook import DEFAULT_ROOT, make_beir
from bot.knowledge.embedders import get_embedder
from bot.knowledge.evaluate import EvalResult, build_index, load_beir, run

CONFIGS: list[tuple[str, str, float | None, str]] = [
    ("bm25", "minmax", 0.3, "bm25 (baseline)"),
    ("dense", "minmax", 0.3, "dense"),
    ("hybrid", "rrf", 0.3, "hybrid rrf k=60"),
    ("hybrid", "minmax", None, "hybrid minmax (default weight)"),
    ("hybrid", "minmax", 0.3, "hybrid minmax w=0.3"),
    ("hybrid", "minmax", 0.5, "hybrid minmax w=0.5"),
]


def row(dataset: str, embedder: str, label: str, r: EvalResult, base: EvalResult) -> str:
    delta = r.ndcg_at_10 - base.ndcg_at_10
    return (
        f"{dataset:<12} {embedder:<10} {label:<30} {r.ndcg_at_10:>8.4f} {r.recall_at_100:>7.4f} "
        f"{r.mrr_at_10:>7.4f} {delta:>+9.4f} {r.ms_per_query_p50:>7.2f} {r.ms_per_query_p95:>7.2f} "
        f"{r.build_seconds:>8.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--embedders", default="wordllama,minilm")
    ap.add_argument("--max-queries", type=int, default=300)
    ap.add_argument("--beir", type=Path, action="append", default=[])
    ap.add_argument("--handbook", type=Path, default=DEFAULT_ROOT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="deptbot-quality-") as tmp:
        sets = [
            make_beir(Path(tmp) / "handbook", max_queries=args.max_queries, root=args.handbook),
            *args.beir,
        ]
        print(
            f"{'dataset':<12} {'embedder':<10} {'config':<30} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} "
            f"{'Δ vs bm25':>9} {'ms p50':>7} {'ms p95':>7} {'build s':>8}"
        )
        for path in sets:
            data = load_beir(path)
            for name in args.embedders.split(","):
                emb = get_embedder(name)
                with tempfile.TemporaryDirectory(prefix="deptbot-idx-") as idx_dir:
                    index, seconds = build_index(data, emb, Path(idx_dir))
                    base: EvalResult | None = None
                    for mode, fusion, weight, label in CONFIGS:
                        r = run(
                            data,
                            index,
                            emb,
                            mode=mode,
                            fusion=fusion,
                            build_seconds=seconds,
                            dense_weight=weight,
                        )
                        base = base or r
                        print(row(data.name, name, label, r, base), flush=True)
        print(
            "(handbook: queries derived by rule from headings and keywords; "
            "no offline public BEIR set available on PyPI — pass one with --beir DIR)"
        )


if __name__ == "__main__":
    main()
