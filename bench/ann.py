"""Retrieval past brute force: exact vs ANN (faiss IVF-SQ8) at 1M chunks.

    nice -n 10 python -m bench.ann [--chunks 1000000] [--queries 100] [--segments 1] [--nprobe N]

Synthetic, as the issue allows: 256-d unit vectors (wordllama's size) shaped like real
chunk embeddings — 4,000 topic centres, each document a point near its topic (0.5
noise), each chunk a point near its document (0.35 noise); uniform random vectors would
be the one case no ANN handles — short texts, 12 tokens per chunk from a Zipf vocabulary of
50k words, one document per 100 chunks, every tenth document restricted to a group. The
department is written as one segment (``--segments N``: N, as a streamed build of that
size leaves it before merges) in the layout the indexer uses
(``write_segment`` semantics, streamed so the generator never holds float32 copies), and
read through ``IndexReader`` — the full hybrid path: BM25 with per-scope statistics,
dense candidates, fusion, coverage and calibration.

Prints p50/p95 of ``retrieve`` for exact search (ANN threshold above the size) and for
ANN (threshold below), recall@10 of the dense top 10 (ANN vs exact) and the overlap of
the hybrid top 10, and the ANN build time. Queries: a document's vector plus chunk-sized
noise (a question about one document), asked by a scope that sees 90 % of the chunks.
Target: p95 ≤ 50 ms and recall@10 within 1 % of exact. Default run: about 4 minutes on a
2-core machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.types import AccessScope
from bot.knowledge import ann, lexical
from bot.knowledge.index import Manifest, SegmentRef, dept_dir, write_version
from bot.knowledge.retrieve import IndexReader
from bot.knowledge.segments import SEGMENTS, fsync_path

DIM = 256
CLUSTERS = 4000
VOCAB = 50_000
TOKENS_PER_CHUNK = 12
CHUNKS_PER_DOC = 100
BLOCK = 100_000


class SyntheticEmbedder:
    """Stands in for the embedder named in the synthetic index; queries come as vectors."""

    name = "synthetic"
    dim = DIM
    is_cloud = False
    dense_weight = 0.3

    def embed(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError("the bench passes query vectors")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_synthetic(root: Path, n: int, rng: np.random.Generator, segments: int) -> tuple[np.ndarray, float]:
    """``n`` chunks in ``segments`` segments plus a manifest; (document vectors, ANN build s)."""
    centres = _unit(rng.normal(size=(CLUSTERS, DIM)))
    n_docs = -(-n // CHUNKS_PER_DOC)
    topics = rng.integers(0, CLUSTERS, n_docs)
    doc_vecs = _unit(centres[topics] + 0.5 * _unit(rng.normal(size=(n_docs, DIM))))
    ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
    zipf = (1 / ranks) / (1 / ranks).sum()
    vocab = [f"w{i}" for i in range(VOCAB)]
    per = -(-n_docs // segments)  # documents per segment
    refs: list[SegmentRef] = []
    built = 0.0
    for s in range(segments):
        d0, d1 = s * per, min(n_docs, (s + 1) * per)
        if d0 >= d1:
            break
        c0, c1 = d0 * CHUNKS_PER_DOC, min(n, d1 * CHUNKS_PER_DOC)
        m = c1 - c0
        name = f"synthetic-{s:03d}"
        folder = root / SEGMENTS / name
        (folder / "bm25").mkdir(parents=True)
        dense = np.lib.format.open_memmap(folder / "dense.npy", mode="w+", dtype=np.float16, shape=(m, DIM))
        for a in range(0, m, BLOCK):
            b = min(m, a + BLOCK)
            owner = (c0 + np.arange(a, b)) // CHUNKS_PER_DOC
            dense[a:b] = _unit(doc_vecs[owner] + 0.35 * _unit(rng.normal(size=(b - a, DIM))))
        dense.flush()
        del dense
        (folder / "texts.bin").write_bytes(b"".join(f"chunk {i} ".encode() for i in range(c0, c1)))
        lengths = np.array([len(f"chunk {i} ") for i in range(c0, c1)], dtype=np.int64)
        np.save(folder / "text_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]))
        docs = [
            {
                "doc_id": f"big/d{d}.md",
                "rel": f"d{d}.md",
                "path": f"d{d}.md",
                "title": f"Doc {d}",
                "modified": 0.0,
                "classification": 1,  # internal
                "audiences": [["group:finance"]] if d % 10 == 0 else [["*"]],
                "start": d * CHUNKS_PER_DOC - c0,
                "count": min(CHUNKS_PER_DOC, n - d * CHUNKS_PER_DOC),
            }
            for d in range(d0, d1)
        ]
        np.save(folder / "chunk_doc.npy", (np.arange(m) // CHUNKS_PER_DOC).astype(np.int32))
        tokens = rng.choice(VOCAB, size=m * TOKENS_PER_CHUNK, p=zipf).astype(np.int32)
        offsets = np.arange(0, m * TOKENS_PER_CHUNK + 1, TOKENS_PER_CHUNK, dtype=np.int64)
        np.save(folder / "tokens.npy", tokens)
        np.save(folder / "token_offsets.npy", offsets)
        bm25 = lexical.build_bm25(tokens, offsets, VOCAB, {t: i for i, t in enumerate(vocab)})
        lexical.save_bm25(bm25, folder / "bm25")
        del bm25, tokens
        for key, obj in (("docs", docs), ("anchors", [""] * m), ("vocab", vocab)):
            (folder / f"{key}.json").write_text(json.dumps(obj), encoding="utf-8")
        t0 = time.perf_counter()
        ann.save(ann.build(np.load(folder / "dense.npy", mmap_mode="r")), folder)
        built += time.perf_counter() - t0
        meta = {
            "format": 1,
            "version": name,
            "department": "big",
            "segment": True,
            "built_at": "",
            "embedder": "synthetic",
            "dim": DIM,
            "documents": len(docs),
            "chunks": m,
            "failed": [],
        }
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        fsync_path(folder)
        refs.append(SegmentRef(name, [d["rel"] for d in docs], [d["count"] for d in docs]))
    write_version(root, "big", Manifest("synthetic", DIM, refs))
    return doc_vecs, built


def timed(
    reader: IndexReader, scope: AccessScope, asks: list[tuple[str, list[str], np.ndarray]]
) -> list[float]:
    index = reader.loaded("big")
    assert index is not None
    out = []
    for text, tokens, vec in asks:
        t0 = time.perf_counter()
        chunks = reader._retrieve_in(index, scope, text, 10, tokens=tokens, vector=vec)
        out.append(time.perf_counter() - t0)
        assert all(scope.admits(c.audiences) for c in chunks)
    return out


def top10(
    reader: IndexReader, scope: AccessScope, ask: tuple[str, list[str], np.ndarray], mode: str
) -> set[int]:
    index = reader.loaded("big")
    assert index is not None
    text, tokens, vec = ask
    hits, _, _ = index.search(
        text, index.mask(scope), 10, embedder=SyntheticEmbedder(), mode=mode, tokens=tokens, vector=vec
    )
    return {h.index for h in hits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--nprobe", type=int, default=None, help="lists probed (default: ann.nprobe_for)")
    ap.add_argument(
        "--segments", type=int, default=1, help="split into N segments, each with its own ANN (default 1)"
    )
    ap.add_argument(
        "--scope",
        choices=("broad", "narrow"),
        default="broad",
        help="broad: the asker sees the 90 %% public chunks; narrow: only the 10 %% restricted ones",
    )
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    keys = {"*"} if args.scope == "broad" else {"group:finance"}
    scope = AccessScope(department="big", keys=frozenset(keys))
    with tempfile.TemporaryDirectory(prefix="deptbot-ann-bench-") as tmp:
        state = Path(tmp)
        t0 = time.perf_counter()
        centres, ann_s = write_synthetic(dept_dir(state, "big"), args.chunks, rng, args.segments)
        write_s = time.perf_counter() - t0
        embedder = SyntheticEmbedder()

        def named(_: str) -> Any:
            return embedder

        exact = IndexReader(state_dir=state, embedder_named=named, ann_threshold=args.chunks + 1)
        fast = IndexReader(state_dir=state, embedder_named=named, ann_threshold=1)
        loaded = fast.loaded("big")
        assert loaded is not None and loaded.use_ann
        if args.nprobe:
            for seg in loaded.segments:
                seg.ann.nprobe = args.nprobe
        asks = []
        for i in range(args.queries):
            doc = centres[rng.integers(0, len(centres))][None]  # a question about one document
            vec = _unit(doc + 0.35 * _unit(rng.normal(size=(1, DIM))))[0]
            words = [f"w{int(w)}" for w in rng.integers(20, 5000, 3)]
            asks.append((" ".join(words) + f" q{i}", words, vec))
        timed(exact, scope, asks[:3])
        timed(fast, scope, asks[:3])  # warm both (first mask, page cache)
        t_exact = timed(exact, scope, asks)
        t_ann = timed(fast, scope, asks)
        recall_dense = np.mean(
            [len(top10(exact, scope, a, "dense") & top10(fast, scope, a, "dense")) / 10 for a in asks]
        )
        overlap = np.mean(
            [len(top10(exact, scope, a, "hybrid") & top10(fast, scope, a, "hybrid")) / 10 for a in asks]
        )
        nprobe = loaded.segments[0].ann.nprobe
        nlist = loaded.segments[0].ann.nlist

    def ms(xs: list[float], q: float) -> str:
        return f"{1000 * float(np.percentile(xs, q)):.1f} ms"

    print(
        f"\n{args.chunks:,} chunks × {DIM}-d in {len(loaded.segments)} segment(s), {args.queries} queries, "
        f"scope sees {'90' if args.scope == 'broad' else '10'} %; per segment IVF{nlist},SQ8 nprobe={nprobe}"
    )
    print(f"{'measure':<44} {'exact':>10} {'ANN':>10}  target")
    print(f"{'retrieve p50':<44} {ms(t_exact, 50):>10} {ms(t_ann, 50):>10}")
    print(f"{'retrieve p95':<44} {ms(t_exact, 95):>10} {ms(t_ann, 95):>10}  ANN ≤ 50 ms")
    print(f"{'recall@10, dense top 10 (vs exact)':<44} {'1.000':>10} {recall_dense:>10.3f}  ≥ 0.99")
    print(f"{'overlap@10, hybrid top 10 (vs exact)':<44} {'1.000':>10} {overlap:>10.3f}")
    print(
        f"{'ANN build (train + add)':<44} {'':>10} {ann_s:>8.1f} s  (whole synthetic write {write_s:.0f} s)"
    )


if __name__ == "__main__":
    main()
