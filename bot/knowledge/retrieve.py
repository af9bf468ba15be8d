"""Hybrid, access-filtered retrieval with a calibrated 0..1 relevance.

Pipeline per query: tokenise (bm25s + Snowball) → BM25 over the query terms' postings,
visible chunks only → dense cosine over the float16 matrix, masked to -inf → top
candidates of each → fusion → top_k → calibrated score → assert every chunk is admitted.

Filtering happens *inside* both scorers: a chunk the scope may not see has BM25 score 0
and cosine -inf and is never a candidate, so ``top_k`` larger than the number of visible
matches cannot surface it. The visibility mask is cached per distinct scope keys; a
document's audiences are grouped into signatures so building a mask costs one
``scope.admits`` per signature, not per chunk.

Statistics are per scope, too. BM25's document frequencies, N and average length, and
the idf weights of query-term coverage (so the calibrated confidence), are counted over
the chunks the asker may see, never over the whole department. Otherwise a word that only
a restricted document contains would change what an outsider sees — a known word gets
a lower idf than an unknown one, so asking for it would betray that it exists, and
restricted chunks' lengths and term counts would reorder visible ones. With per-scope
statistics an outsider's chunks and scores are the same as if the restricted documents
did not exist (tests/knowledge/test_kb_scoped_stats.py). The stored bm25s matrix holds
whole-department weights and is no longer read at query time; BM25 is recomputed from
per-posting term frequencies (``bm25/tf.csc.index.npy``, or derived from ``tokens.npy``
for versions written before it existed) for the few query terms only, which costs
about as much as bm25s's masked scoring. N and avgdl are cached with each mask.

Fusion, compared with ``python -m bench.quality`` (nDCG@10 / Recall@100; BEIR set built
at run time from the 18F handbook, 245 pages → 1,571 chunks, 300 rule-made queries from
page-specific headings and front-matter keywords; tests/fixtures/beir-tiny checks the
metric code by hand):

    =======================  ===============  ===============
    mode                     wordllama        minilm
    =======================  ===============  ===============
    bm25 only                0.827 / 0.977    0.827 / 0.977
    dense only               0.620 / 0.980    0.625 / 0.967
    hybrid rrf (k=60)        0.741 / 0.997    0.766 / 0.987
    hybrid minmax, w=0.3     0.830 / 0.997    0.834 / 0.987
    hybrid minmax, w=0.5     0.804 / 0.997    0.819 / 0.987
    =======================  ===============  ===============

A second set pulls the other way: ``python -m bench.northwind`` (43 natural employee
questions written for the sample company, phrased unlike the headings; 49 documents).
nDCG@10 by dense weight w of min-max fusion, both sets:

    ===========  =====  =====  =====  =====  =====  =====  ======  ======
    set          bm25   dense  rrf    w=0.2  w=0.3  w=0.4  w=0.5   w=0.6
    ===========  =====  =====  =====  =====  =====  =====  ======  ======
    handbook  W  0.827  0.620  0.741  0.836  0.830  0.820  0.804   0.771
    northwind W  0.766  0.803  0.856  0.808  0.821  0.841  0.852   0.863
    handbook  M  0.827  0.625  0.766  0.830  0.834  0.835  0.819   0.802
    northwind M  0.766  0.941  0.921  0.840  0.843  0.862  0.871   0.912
    ===========  =====  =====  =====  =====  =====  =====  ======  ======
    (W = wordllama, M = minilm)

Default: min-max score fusion (each list normalised over the candidate union, convex
combination) with the dense weight chosen per embedder (``Embedder.dense_weight``):
0.3 for wordllama — the only weight that beats both BM25 alone and dense alone on both
sets — and 0.4 for minilm — the best mean over the two sets while staying above BM25 on
the lexical one (MiniLM alone is best on natural questions; no fusion beat it there).
RRF gives a weak dense list the same vote as a strong lexical one and loses 6-9 points
on the lexical set; convex combination also beat RRF in- and out-of-domain in Bruch et
al. 2023 ("An Analysis of Fusion Functions for Hybrid Retrieval"). ``fusion="rrf"``
remains available. Neither set is a public BEIR set (none can be fetched offline);
``deptbot eval`` / ``bench.quality --beir DIR`` score any that you have.

Calibration: ``SourceChunk.score`` is not the fusion score (which only orders one
query's candidates) but an absolute relevance: a 0.6/0.4 weighted mean of (a) the chunk's cosine mapped
through an embedder-specific ramp and (b) query-term coverage — the idf-weighted
fraction of the query's terms present in the chunk, where terms no chunk visible to the
asker contains count as missing with maximal idf. Off-topic questions ("What is the cafeteria menu
on Tuesday?") miss most terms and score well below on-topic ones. Scores are made
non-increasing down the list so ``chunks[0].score`` is the confidence.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.types import AccessScope, Classification, SourceChunk
from bot.errors import IndexMissing, KnowledgeError, UsageError
from bot.knowledge import lexical
from bot.knowledge.embedders import Embedder
from bot.knowledge.index import current_version, dept_dir, read_meta

log = logging.getLogger(__name__)

FUSIONS = ("minmax", "rrf")
DEFAULT_FUSION = "minmax"
MODES = ("hybrid", "bm25", "dense")
RRF_K = 60
DENSE_WEIGHT = 0.3
CANDIDATES = 100
# float32 copy in RAM up to this many values (128 MB: ~125k chunks at 256-d); above it the
# float16 file stays memory-mapped and is scored blockwise (half the memory, slower).
DENSE_IN_RAM_MAX = 32_000_000
# Cosine → 0..1 ramps per embedder (cosines of unrelated text sit near ``lo``).
RAMPS: dict[str, tuple[float, float]] = {"wordllama": (0.20, 0.60), "minilm": (0.15, 0.70)}
# Share of the dense signal in the calibrated score (the rest is query-term coverage).
# Paraphrased questions ("stay home after my baby is born" → parental leave) share few
# words with the answer, so meaning weighs a little more than wording.
CONFIDENCE_DENSE_WEIGHT = 0.6
DEFAULT_RAMP = (0.2, 0.8)


@dataclass(frozen=True)
class Hit:
    index: int
    fused: float
    cosine: float
    bm25: float


class LoadedIndex:
    """One version of a department's index, loaded read-only (vectors and BM25 mmap'd)."""

    def __init__(self, vdir: Path) -> None:
        import bm25s

        self.path = vdir
        self.meta = read_meta(vdir)
        self.version: str = self.meta["version"]
        self.embedder: str = self.meta["embedder"]
        self.docs: list[dict[str, Any]] = json.loads((vdir / "docs.json").read_text(encoding="utf-8"))
        self.anchors: list[str] = json.loads((vdir / "anchors.json").read_text(encoding="utf-8"))
        self.offsets = np.load(vdir / "text_offsets.npy")
        self.n = len(self.offsets) - 1
        size = int(self.offsets[-1]) if self.n else 0
        self._texts: np.ndarray = (
            np.memmap(vdir / "texts.bin", dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        )
        self.chunk_doc = np.load(vdir / "chunk_doc.npy")
        dense = np.load(vdir / "dense.npy", mmap_mode="r")
        in_ram = dense.size <= DENSE_IN_RAM_MAX
        self.dense: np.ndarray = np.asarray(dense, dtype=np.float32) if in_ram else dense
        token_offsets = np.load(vdir / "token_offsets.npy")
        self.lengths = np.diff(token_offsets).astype(np.float32)  # tokens per chunk (BM25 dl)
        self.bm25: Any = None
        self.indptr = np.zeros(1, dtype=np.int64)
        self.rows: np.ndarray = np.zeros(0, dtype=np.int32)  # chunk of each posting (CSC)
        self.tf: np.ndarray = np.zeros(0, dtype=np.int32)  # term frequency of each posting
        if self.n:
            self.bm25 = bm25s.BM25.load(str(vdir / "bm25"), mmap=True, show_progress=False)
            self.indptr = np.asarray(self.bm25.scores["indptr"], dtype=np.int64)
            # Plain ndarray views of the memory maps: slicing a np.memmap costs microseconds.
            self.rows = np.asarray(self.bm25.scores["indices"])
            self.tf = np.asarray(
                lexical.load_term_freqs(vdir / "bm25", lambda: np.load(vdir / "tokens.npy"), token_offsets)
            )
            if len(self.tf) != len(self.rows) or len(self.lengths) != self.n:
                raise KnowledgeError(f"The index version {vdir.name} is inconsistent; rebuild it.")
        sigs: dict[tuple[tuple[str, ...], ...], int] = {}
        doc_sig = [sigs.setdefault(tuple(tuple(a) for a in d["audiences"]), len(sigs)) for d in self.docs]
        self.signatures = list(sigs)
        self.chunk_sig = (
            np.asarray(doc_sig, dtype=np.int32)[self.chunk_doc] if self.n else np.zeros(0, np.int32)
        )
        self._masks: OrderedDict[frozenset[str], np.ndarray] = OrderedDict()
        # id(mask) → (mask, visible chunks, their mean length); holding the mask keeps
        # the id from being reused while the entry lives.
        self._stats: dict[int, tuple[np.ndarray, int, float]] = {}
        self._lock = threading.Lock()

    def text(self, i: int) -> str:
        return bytes(self._texts[int(self.offsets[i]) : int(self.offsets[i + 1])]).decode("utf-8")

    def mask(self, scope: AccessScope) -> np.ndarray:
        """Boolean visibility of every chunk for ``scope`` (cached per distinct keys)."""
        with self._lock:
            cached = self._masks.get(scope.keys)
            if cached is not None:
                self._masks.move_to_end(scope.keys)
                return cached
        admitted = np.array([scope.admits(sig) for sig in self.signatures] or [False], dtype=bool)
        mask = admitted[self.chunk_sig] if self.n else np.zeros(0, dtype=bool)
        mask.setflags(write=False)
        stats = (mask, *self._visible_stats(mask))
        with self._lock:
            self._masks[scope.keys] = mask
            self._stats[id(mask)] = stats
            while len(self._masks) > 256:
                _, old = self._masks.popitem(last=False)
                self._stats.pop(id(old), None)
        return mask

    def _visible_stats(self, mask: np.ndarray) -> tuple[int, float]:
        """Visible chunk count and mean visible length (BM25's N and avgdl for this scope)."""
        cached = self._stats.get(id(mask))
        if cached is not None and cached[0] is mask:
            return cached[1], cached[2]
        lengths = self.lengths[mask]
        n_vis = len(lengths)
        total = float(lengths.sum(dtype=np.float64))
        return n_vis, (total / n_vis if n_vis and total else 1.0)

    # ── scoring ──────────────────────────────────────────────────────────────────

    def query_terms(self, query: str, tokens: list[str] | None = None) -> tuple[list[int], int]:
        """Vocabulary ids of the query's distinct terms, and how many are not in it.

        ``tokens`` are :func:`query_tokens` of ``query`` when the caller already has them
        (one tokenisation shared by every department a question is routed across).
        """
        if tokens is None:
            tokens = query_tokens(query)
        vocab = self.bm25.vocab_dict if self.bm25 is not None else {}
        ids = [int(vocab[t]) for t in tokens if t in vocab]
        return ids, len(tokens) - len(ids)

    def visible_terms(
        self, query: str, mask: np.ndarray, tokens: list[str] | None = None
    ) -> tuple[dict[int, float], float, np.ndarray]:
        """The query's terms as this scope sees them, and their BM25 over visible chunks.

        Returns the visible terms' Lucene idf (df and N counted over visible chunks only),
        the idf mass of terms no visible chunk contains (they count as if the department
        had never seen them, so a word only a restricted document holds is
        indistinguishable from a made-up one), and BM25 per chunk (0 where not visible).
        """
        ids, unknown = self.query_terms(query, tokens)
        n_vis, avgdl = self._visible_stats(mask)
        spans = [(int(self.indptr[t]), int(self.indptr[t + 1])) for t in ids]
        rows = np.concatenate([self.rows[a:b] for a, b in spans]) if spans else np.zeros(0, np.int32)
        tf = np.concatenate([self.tf[a:b] for a, b in spans]) if spans else np.zeros(0, np.int32)
        term = np.repeat(np.arange(len(ids)), [b - a for a, b in spans])
        seen = mask[rows]
        rows, tf, term = rows[seen], tf[seen].astype(np.float32), term[seen]
        df = np.bincount(term, minlength=len(ids))
        idf = lexical.idf(df.astype(np.float64), n_vis)
        weights = {ids[j]: float(idf[j]) for j in np.flatnonzero(df)}
        unknown += int(np.count_nonzero(df == 0))
        unseen = float(unknown * lexical.idf(np.array([0.0]), n_vis)[0])
        if len(rows) == 0:
            return weights, unseen, np.zeros(self.n, dtype=np.float32)
        norm = np.float32(lexical.K1) * (
            np.float32(1.0 - lexical.B) + np.float32(lexical.B) * self.lengths[rows] / np.float32(avgdl)
        )
        part = idf[term] * tf / (tf + norm)
        return weights, unseen, np.bincount(rows, weights=part, minlength=self.n).astype(np.float32)

    def cosines(self, qvec: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.dense.dtype == np.float32:
            cos = np.einsum("ij,j->i", self.dense, qvec)  # no BLAS threads: they cost ms to wake
        else:
            cos = np.empty(self.n, dtype=np.float32)
            for a in range(0, self.n, 16384):
                block = np.asarray(self.dense[a : a + 16384], dtype=np.float32)
                cos[a : a + 16384] = np.einsum("ij,j->i", block, qvec)
        return np.where(mask, cos, -np.inf)

    def search(
        self,
        query: str,
        mask: np.ndarray,
        k: int,
        *,
        embedder: Embedder,
        mode: str = "hybrid",
        fusion: str = DEFAULT_FUSION,
        candidates: int = CANDIDATES,
        dense_weight: float | None = None,
        tokens: list[str] | None = None,
        vector: np.ndarray | None = None,
    ) -> tuple[list[Hit], dict[int, float], float]:
        """Top ``k`` visible chunks; also the visible query terms' idf and the unseen idf mass.

        ``dense_weight`` defaults to the embedder's own (``Embedder.dense_weight``).
        ``tokens`` and ``vector`` are the query's tokens and its embedding by ``embedder``
        when the caller computed them once for several departments; the result is the
        same as without them.
        """
        if dense_weight is None:
            dense_weight = float(getattr(embedder, "dense_weight", DENSE_WEIGHT))
        visible = np.flatnonzero(mask)
        if self.n == 0 or len(visible) == 0:
            return [], {}, 0.0
        terms, unseen, bm25 = self.visible_terms(query, mask, tokens)
        if mode == "dense":
            bm25 = np.zeros(self.n, dtype=np.float32)
        pool = max(candidates, k)
        if mode == "bm25":
            cos = np.full(self.n, -np.inf)
        else:
            cos = self.cosines(embedder.embed([query])[0] if vector is None else vector, mask)
        lex = _top(visible, bm25[visible], pool, positive=True)
        sem = _top(visible, cos[visible], pool, positive=False) if mode != "bm25" else np.zeros(0, np.int64)
        if mode == "bm25":
            order, fused = lex, bm25[lex]
        elif mode == "dense":
            order, fused = sem, cos[sem]
        elif fusion == "rrf":
            order, fused = _rrf(lex, sem)
        elif fusion == "minmax":
            order, fused = _minmax(lex, sem, bm25, cos, dense_weight)
        else:
            raise UsageError(f"Unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}.")
        cos_sel = np.full(len(order[:k]), np.nan) if mode == "bm25" else cos[order[:k]]
        hits = [
            Hit(int(i), float(f), float(c), float(bm25[i]))
            for i, f, c in zip(order[:k], fused[:k], cos_sel, strict=True)
        ]
        return hits, terms, unseen

    def coverage(self, chunk_ids: np.ndarray, terms: dict[int, float], unseen: float) -> np.ndarray:
        """idf-weighted fraction of query terms present in each chunk (NaN: no terms).

        ``terms`` and ``unseen`` come from :meth:`search` for the same scope, so the
        weights are the scope's own; ``chunk_ids`` are visible chunks.
        """
        if not terms and unseen == 0:
            return np.full(len(chunk_ids), np.nan)
        got = np.zeros(len(chunk_ids), dtype=np.float64)
        for tid, w in terms.items():
            got += w * lexical.contains(self.bm25, tid, chunk_ids)
        return got / (sum(terms.values()) + unseen)


def query_tokens(query: str) -> list[str]:
    """The query's distinct index terms, in order (the tokenizer the index was built with)."""
    return list(dict.fromkeys(lexical.tokenize([query])[0]))


def _top(ids: np.ndarray, scores: np.ndarray, k: int, *, positive: bool) -> np.ndarray:
    keep = scores > 0 if positive else np.isfinite(scores)
    ids, scores = ids[keep], scores[keep]
    if len(ids) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[part], scores[part]
    return ids[np.argsort(-scores, kind="stable")]


def _rrf(lex: np.ndarray, sem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fused: dict[int, float] = {}
    for ranked in (lex, sem):
        for rank, i in enumerate(ranked.tolist()):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
    items = sorted(fused.items(), key=lambda kv: -kv[1])
    return np.array([i for i, _ in items], dtype=np.int64), np.array([s for _, s in items])


def _minmax(
    lex: np.ndarray, sem: np.ndarray, bm25: np.ndarray, cos: np.ndarray, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    union = np.union1d(lex, sem)
    if len(union) == 0:
        return union, np.zeros(0)

    def norm(values: np.ndarray) -> np.ndarray:
        finite = np.isfinite(values)
        if not finite.any():
            return np.zeros(len(values))
        lo, hi = float(values[finite].min()), float(values[finite].max())
        scaled = (values - lo) / (hi - lo) if hi > lo else np.full(len(values), 1.0 if hi > 0 else 0.0)
        return np.where(finite, scaled, 0.0)

    fused = weight * norm(cos[union]) + (1 - weight) * norm(bm25[union])
    order = np.argsort(-fused, kind="stable")
    return union[order], fused[order]


def calibrate(cosines: np.ndarray, coverage: np.ndarray, embedder: str) -> np.ndarray:
    """Absolute relevance in 0..1 from cosine (ramped per embedder) and term coverage."""
    lo, hi = RAMPS.get(embedder, DEFAULT_RAMP)
    dense = np.clip((cosines - lo) / (hi - lo), 0.0, 1.0)
    w = CONFIDENCE_DENSE_WEIGHT
    # Without a cosine (bm25-only mode) the score is the coverage alone.
    score = np.where(np.isnan(dense), coverage, w * np.nan_to_num(dense) + (1 - w) * coverage)
    score = np.nan_to_num(score, nan=0.0)
    return np.clip(np.minimum.accumulate(score) if len(score) else score, 0.0, 1.0)


class IndexReader:
    """The ``Retriever`` port over persisted indexes; reloads when ``CURRENT`` changes."""

    def __init__(
        self,
        *,
        state_dir: Path,
        embedder_named: Callable[[str], Embedder],
        fusion: str = DEFAULT_FUSION,
        candidates: int = CANDIDATES,
    ) -> None:
        if fusion not in FUSIONS:
            raise UsageError(f"Unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}.")
        self._state_dir = Path(state_dir)
        self._embedder_named = embedder_named
        self.fusion = fusion
        self.candidates = candidates
        self._loaded: dict[str, tuple[tuple[int, int, int], LoadedIndex | None]] = {}
        self._paths: dict[str, tuple[Path, str]] = {}  # department → (its folder, its CURRENT)
        self._lock = threading.Lock()

    def loaded(self, department: str) -> LoadedIndex | None:
        """The current version of ``department`` (cheap: one stat when unchanged)."""
        paths = self._paths.get(department)
        if paths is None:  # Path joins cost more than the stat; routing calls this per department
            root = dept_dir(self._state_dir, department)
            paths = self._paths[department] = (root, str(root / "CURRENT"))
        root = paths[0]
        try:
            st = os.stat(paths[1])
            key = (st.st_mtime_ns, st.st_ino, st.st_size)
        except OSError:
            return None
        cached = self._loaded.get(department)
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._lock:
            version = current_version(root)
            index = cached[1] if cached else None
            if version is None:
                index = None
            elif index is None or index.version != version:
                index = LoadedIndex(root / "versions" / version)
            self._loaded[department] = (key, index)
            return index

    def index_version(self, department: str) -> str | None:
        index = self.loaded(department)
        return index.version if index is not None else None

    def audience_entries(self, department: str) -> frozenset[str]:
        index = self.loaded(department)
        if index is None:
            return frozenset()
        return frozenset(entry for sig in index.signatures for level in sig for entry in level)

    def retrieve(self, query: str, scope: AccessScope, *, top_k: int = 8) -> list[SourceChunk]:
        index = self._index_for(scope)
        if not query.strip() or top_k <= 0:
            return []
        return self._retrieve_in(index, scope, query, top_k)

    def retrieve_many(
        self, query: str, scopes: Sequence[AccessScope], *, top_k: int = 8
    ) -> list[list[SourceChunk]]:
        """``retrieve`` in each scope's department, in order, for the price of about one.

        The question is tokenised once and embedded once per distinct embedder; each
        department is then searched with its own mask, per-scope statistics and
        calibration, so every list (chunks and scores) is exactly what ``retrieve`` gives
        for that scope alone. What remains per department is a few vectorised numpy
        passes over its own arrays.
        """
        indexes = [self._index_for(scope) for scope in scopes]
        if not query.strip() or top_k <= 0:
            return [[] for _ in scopes]
        tokens = query_tokens(query)
        vectors: dict[str, np.ndarray] = {}
        for index in indexes:
            if index.n and index.embedder not in vectors:
                vectors[index.embedder] = self._embedder_named(index.embedder).embed([query])[0]
        return [
            self._retrieve_in(index, scope, query, top_k, tokens=tokens, vector=vectors.get(index.embedder))
            for index, scope in zip(indexes, scopes, strict=True)
        ]

    def _index_for(self, scope: AccessScope) -> LoadedIndex:
        index = self.loaded(scope.department)
        if index is None:
            raise IndexMissing(f"{scope.department} has no index yet; run: deptbot index {scope.department}")
        return index

    def _retrieve_in(
        self,
        index: LoadedIndex,
        scope: AccessScope,
        query: str,
        top_k: int,
        *,
        tokens: list[str] | None = None,
        vector: np.ndarray | None = None,
    ) -> list[SourceChunk]:
        embedder = self._embedder_named(index.embedder)
        hits, term_ids, unseen = index.search(
            query,
            index.mask(scope),
            top_k,
            embedder=embedder,
            fusion=self.fusion,
            candidates=self.candidates,
            tokens=tokens,
            vector=vector,
        )
        ids = np.array([h.index for h in hits], dtype=np.int64)
        scores = calibrate(
            np.array([h.cosine for h in hits]), index.coverage(ids, term_ids, unseen), index.embedder
        )
        out: list[SourceChunk] = []
        dropped: list[str] = []
        for hit, score in zip(hits, scores, strict=True):
            chunk = self._chunk(index, scope.department, hit.index, float(score))
            if scope.admits(chunk.audiences):
                out.append(chunk)
            else:  # cannot happen while the mask is right; never log text
                dropped.append(chunk.chunk_id)
        if dropped:
            log.warning("retrieval returned chunks outside the scope; dropped %s", ", ".join(dropped))
        return out

    @staticmethod
    def _chunk(index: LoadedIndex, department: str, i: int, score: float) -> SourceChunk:
        doc = index.docs[int(index.chunk_doc[i])]
        return SourceChunk(
            chunk_id=f"{doc['doc_id']}#{i - doc['start']}",
            doc_id=doc["doc_id"],
            department=department,
            title=doc["title"],
            path=doc["path"],
            text=index.text(i),
            score=round(score, 4),
            anchor=index.anchors[i],
            modified=datetime.fromtimestamp(doc["modified"], UTC),
            classification=Classification(doc["classification"]),
            audiences=tuple(tuple(a) for a in doc["audiences"]),
        )
