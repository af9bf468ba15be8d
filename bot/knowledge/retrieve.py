"""Hybrid, access-filtered retrieval with a calibrated 0..1 relevance.

Pipeline per query: tokenise (bm25s + Snowball) → BM25 over the query terms' postings,
visible chunks only (chunks that hold every query term ranked first,
``lexical.all_terms_rank``) → dense cosine over the float16 matrix, masked to -inf → top
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

Segments (``bot/knowledge/index.py``): a version lists several immutable segments, each
with its own vocabulary and postings. Chunks are numbered globally, segment after
segment; a query term's postings are gathered from every segment that knows the word, so
document frequencies, N and average length are summed over the live visible chunks of
all segments — a department reads the same whether it is one segment or ten, with or
without tombstones (tests/knowledge/test_segments.py). Tombstoned chunks are invisible to
every scope. Loaded segments are shared between versions, so a reload after a refresh
loads only the new segment.

ANN (``bot/knowledge/ann.py``): from ``knowledge.ann_threshold`` live chunks on, the dense
candidates come from each segment's faiss IVF index, searched with the scope's mask as
a filter (a segment without one, or whose filtered search comes back short, is scored
exactly over its visible chunks); the candidates, and BM25's, then get their exact
cosine, so fusion and calibration see the same numbers as exact search.

Several departments at once (auto-routing, ``IndexReader.probe_many``): exact-search
departments are searched in one pass laid side by side (``bot/knowledge/crosssearch.py``),
with each department's own mask, statistics and fusion, so each gets exactly the numbers
this module's ``LoadedIndex.search`` gives it alone; ANN departments are searched here.
A department whose index's embedder cannot load sits the question out (``outages.py``).
The fusion functions and the calibration live in ``fusion.py``, ``Probe`` in ``probe.py``.

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

(Both tables predate ranking the chunks that hold every query term first,
``lexical.all_terms_rank``: with it the handbook's default hybrid is 0.831 (W) and 0.846
(M), BM25 alone 0.839 (W); the northwind sets are unchanged or better. Weights unchanged.)

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

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.core.types import AccessScope, SourceChunk
from bot.errors import IndexMissing, KnowledgeError, UsageError
from bot.knowledge import ann, lexical
from bot.knowledge.crosssearch import Layouts, probe_across
from bot.knowledge.embedders import Embedder
from bot.knowledge.fusion import DENSE_WEIGHT, Hit, minmax, query_tokens, rrf, top_ids
from bot.knowledge.index import DEFAULT_ANN_THRESHOLD, current_version, dept_dir, read_meta, segment_dirs
from bot.knowledge.outages import EmbedderOutages
from bot.knowledge.probe import Probe
from bot.knowledge.segments import Segment

log = logging.getLogger(__name__)

FUSIONS = ("minmax", "rrf")
DEFAULT_FUSION = "minmax"
MODES = ("hybrid", "bm25", "dense")
CANDIDATES = 100
# float32 copy in RAM up to this many values (128 MB: ~125k chunks at 256-d); above it the
# float16 file stays memory-mapped and is scored blockwise (half the memory, slower).
DENSE_IN_RAM_MAX = 32_000_000


class DenseSource(Protocol):
    """Proposes a version's dense candidates from outside the process (``[knowledge] dense``:
    ``bot.knowledge.pg_dense.PgDense``); never a chunk outside ``mask``."""

    def candidates(self, index: LoadedIndex, qvec: np.ndarray, mask: np.ndarray, pool: int) -> np.ndarray: ...


class LoadedIndex:
    """One version of a department's index, loaded read-only: its segments side by side.

    Chunks are numbered globally, segment after segment; tombstoned chunks are never
    visible (their signature admits nobody). ``reuse`` maps segment folders to segments a
    previous version already loaded: segments are immutable, so switching versions loads
    only new ones. Above ``ann_threshold`` live chunks, segments that carry an ANN index
    propose the dense candidates instead of a full scan (``bot/knowledge/ann.py``).
    """

    def __init__(
        self,
        vdir: Path,
        *,
        reuse: Mapping[Path, Segment] | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        dense: DenseSource | None = None,
        all_terms_first: bool = True,
    ) -> None:
        """``all_terms_first``: chunks that hold every query term lead the lexical list
        (``[retrieval] all_terms_first``; off only to compare with plain BM25 order)."""
        self.meta = read_meta(vdir)
        self.all_terms_first = all_terms_first
        self.version: str = self.meta["version"]
        self.embedder: str = self.meta["embedder"]
        specs = segment_dirs(vdir.parent.parent, vdir, self.meta)
        sizes = [int(read_meta(folder)["chunks"]) for folder, _ in specs]
        # With an ANN index on every segment only candidates get a cosine: the float16
        # file can stay mapped and the float32 copy (~100 MB per 100k chunks) is not needed.
        by_ann = sum(sizes) >= ann_threshold and all((f / ann.FILE).is_file() for f, _ in specs)
        in_ram = sum(sizes) * int(self.meta["dim"]) <= DENSE_IN_RAM_MAX and not by_ann
        reuse = reuse or {}
        self.segments: list[Segment] = [
            reuse.get(folder) or Segment(folder, dense_in_ram=in_ram) for folder, _ in specs
        ]
        for seg in self.segments:  # an ANN index added to a segment loaded before it existed
            if seg.ann is None and seg.n and (seg.path / ann.FILE).is_file():
                seg.ann = ann.load(seg.path)
        # Where the data lives: a one-segment version without tombstones is that segment's
        # folder (it loads on its own, as a version written before segments does).
        self.path = self.segments[0].path if len(specs) == 1 and not specs[0][1] else vdir
        self.bases = np.concatenate([[0], np.cumsum([s.n for s in self.segments])]).astype(np.int64)
        self.n = int(self.bases[-1])
        self.docs: list[dict[str, Any]] = []
        chunk_doc: list[np.ndarray] = []
        live_docs: list[bool] = []
        for s, (seg, (_, dead)) in enumerate(zip(self.segments, specs, strict=True)):
            base, first = int(self.bases[s]), len(self.docs)
            gone = set(dead)
            self.docs.extend(d if not base else {**d, "start": d["start"] + base} for d in seg.docs)
            live_docs.extend(i not in gone for i in range(len(seg.docs)))
            chunk_doc.append(seg.chunk_doc.astype(np.int32) + first)
        self.chunk_doc = np.concatenate(chunk_doc) if chunk_doc else np.zeros(0, np.int32)
        self.lengths = (
            np.concatenate([s.lengths for s in self.segments]) if self.segments else np.zeros(0, np.float32)
        )
        sigs: dict[tuple[tuple[str, ...], ...], int] = {}
        doc_sig = [
            sigs.setdefault(tuple(tuple(a) for a in d["audiences"]), len(sigs)) if alive else -1
            for d, alive in zip(self.docs, live_docs, strict=True)
        ]
        self.signatures = list(sigs)
        # -1 (a tombstoned document) indexes the trailing False that ``mask`` appends.
        self.chunk_sig = (
            np.asarray(doc_sig, dtype=np.int32)[self.chunk_doc] if self.n else np.zeros(0, np.int32)
        )
        self.live = int(np.count_nonzero(self.chunk_sig >= 0))
        # ``dense`` (pgvector) replaces the segments' faiss indexes above the threshold
        self.dense = dense
        self.use_ann = self.live >= ann_threshold and (
            dense is not None or any(s.ann is not None for s in self.segments)
        )
        self._terms: dict[str, int] = {}  # query terms outside segment 0's vocabulary → ids
        self._term_names: dict[int, str] = {}
        self._names0: dict[int, str] | None = None  # segment 0's id → term, built on first use
        self._masks: OrderedDict[frozenset[str], np.ndarray] = OrderedDict()
        # id(mask) → (mask, visible chunks, their mean length); holding the mask keeps
        # the id from being reused while the entry lives.
        self._stats: dict[int, tuple[np.ndarray, int, float]] = {}
        self._lock = threading.Lock()

    @property
    def segment_map(self) -> dict[Path, Segment]:
        return {s.path: s for s in self.segments}

    @property
    def bm25(self) -> Any:
        """The bm25s model of a one-segment version (tests compare against its scores)."""
        return self._only().bm25

    @property
    def tf(self) -> np.ndarray:
        return self._only().tf

    def _only(self) -> Segment:
        if len(self.segments) != 1:
            raise KnowledgeError("this version has several segments")
        return self.segments[0]

    def _locate(self, i: int) -> tuple[Segment, int]:
        if len(self.segments) == 1:
            return self.segments[0], i
        s = int(np.searchsorted(self.bases, i, side="right")) - 1
        return self.segments[s], i - int(self.bases[s])

    def text(self, i: int) -> str:
        seg, local = self._locate(i)
        return seg.text(local)

    def anchor(self, i: int) -> str:
        seg, local = self._locate(i)
        return seg.anchors[local]

    def mask(self, scope: AccessScope) -> np.ndarray:
        """Boolean visibility of every chunk for ``scope`` (cached per distinct keys)."""
        with self._lock:
            cached = self._masks.get(scope.keys)
            if cached is not None:
                self._masks.move_to_end(scope.keys)
                return cached
        admitted = np.array([scope.admits(sig) for sig in self.signatures] + [False], dtype=bool)
        mask = admitted[self.chunk_sig] if self.n else np.zeros(0, dtype=bool)
        mask.setflags(write=False)
        stats = (mask, *self.visible_stats(mask))
        with self._lock:
            self._masks[scope.keys] = mask
            self._stats[id(mask)] = stats
            while len(self._masks) > 256:
                _, old = self._masks.popitem(last=False)
                self._stats.pop(id(old), None)
        return mask

    def visible_stats(self, mask: np.ndarray) -> tuple[int, float]:
        """Visible chunk count and mean visible length (BM25's N and avgdl for this scope)."""
        cached = self._stats.get(id(mask))
        if cached is not None and cached[0] is mask:
            return cached[1], cached[2]
        lengths = self.lengths[mask]
        n_vis = len(lengths)
        total = float(lengths.sum(dtype=np.float64))
        return n_vis, (total / n_vis if n_vis and total else 1.0)

    # ── scoring ──────────────────────────────────────────────────────────────────

    def term_id(self, token: str) -> int | None:
        """One id per term across segments: segment 0's own id, else one given on first use."""
        if not self.segments:
            return None
        own = self.segments[0].vocab.get(token)
        if own is not None:
            return int(own)
        if len(self.segments) == 1:  # ``_terms`` holds only words of later segments
            return None  # (the one pass looks up every query word in ten departments)
        with self._lock:
            tid = self._terms.get(token)
            if tid is None:
                if not any(token in s.vocab for s in self.segments[1:]):
                    return None
                tid = self._terms[token] = len(self.segments[0].vocab) + len(self._terms)
                self._term_names[tid] = token
            return tid

    def _term_name(self, tid: int) -> str | None:
        if tid >= len(self.segments[0].vocab):
            return self._term_names.get(tid)
        with self._lock:
            if self._names0 is None:
                self._names0 = {int(i): t for t, i in self.segments[0].vocab.items()}
            return self._names0.get(tid)

    def query_terms(self, query: str, tokens: list[str] | None = None) -> tuple[list[int], int]:
        """Ids of the query's distinct terms any segment knows, and how many none knows.

        ``tokens`` are :func:`query_tokens` of ``query`` when the caller already has them
        (one tokenisation shared by every department a question is routed across).
        """
        if tokens is None:
            tokens = query_tokens(query)
        ids = [tid for t in tokens if (tid := self.term_id(t)) is not None]
        return ids, len(tokens) - len(ids)

    def visible_terms(
        self, query: str, mask: np.ndarray, tokens: list[str] | None = None
    ) -> tuple[dict[int, float], float, np.ndarray]:
        """The query's terms as this scope sees them, and their BM25 over visible chunks.

        Returns the visible terms' Lucene idf (df and N counted over visible chunks only,
        summed over every segment), the idf mass of terms no visible chunk contains (they
        count as if the department had never seen them, so a word only a restricted
        document holds is indistinguishable from a made-up one), and BM25 per chunk (0
        where not visible).
        """
        weights, unseen, bm25, _ = self.lexical_scores(query, mask, tokens)
        return weights, unseen, bm25

    def lexical_scores(
        self, query: str, mask: np.ndarray, tokens: list[str] | None = None
    ) -> tuple[dict[int, float], float, np.ndarray, np.ndarray]:
        """:meth:`visible_terms` and the lexical list's ranking score
        (``lexical.all_terms_rank``: chunks that hold every query term first)."""
        if tokens is None:
            tokens = query_tokens(query)
        known = lexical.query_term_ids(tokens, self.term_id)
        words = [t for t, _ in known]
        ids = [tid for _, tid in known]
        n_vis, avgdl = self.visible_stats(mask)
        row_parts: list[np.ndarray] = []
        tf_parts: list[np.ndarray] = []
        term_parts: list[np.ndarray] = []
        for s, seg in enumerate(self.segments):
            base = int(self.bases[s])
            for j, word in enumerate(words):
                lid = seg.vocab.get(word)
                if lid is None:
                    continue
                rows, tf = seg.postings(int(lid))
                row_parts.append(rows.astype(np.int64) + base if base else rows)
                tf_parts.append(tf)
                term_parts.append(np.full(len(rows), j, dtype=np.int64))
        rows = np.concatenate(row_parts) if row_parts else np.zeros(0, np.int64)
        tf_all = np.concatenate(tf_parts) if tf_parts else np.zeros(0, np.int32)
        term = np.concatenate(term_parts) if term_parts else np.zeros(0, np.int64)
        seen = mask[rows]
        rows, tf_f, term = rows[seen], tf_all[seen].astype(np.float32), term[seen]
        df = np.bincount(term, minlength=len(ids))
        idf = lexical.idf(df.astype(np.float64), n_vis)
        weights = {ids[j]: float(idf[j]) for j in np.flatnonzero(df)}
        unseen = lexical.unseen_mass(tokens, known, weights, lexical.idf(np.array([0.0]), n_vis)[0])
        if len(rows) == 0:
            zeros = np.zeros(self.n, dtype=np.float32)
            return weights, unseen, zeros, zeros
        part = lexical.bm25_part(idf[term], tf_f, self.lengths[rows], np.float32(avgdl))
        bm25 = np.bincount(rows, weights=part, minlength=self.n).astype(np.float32)
        if not self.all_terms_first:
            return weights, unseen, bm25, bm25
        own_words = set(tokens)
        own = np.array([w in own_words for w in words], dtype=bool)  # not the compound forms
        held = np.bincount(rows[own[term]], minlength=self.n)
        rank = lexical.all_terms_rank(bm25, held, int(np.count_nonzero(df[own])), bm25.max())
        return weights, unseen, bm25, rank

    def cosines(self, qvec: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Exact cosine of every chunk (-inf where not visible)."""
        cos = np.empty(self.n, dtype=np.float32)
        for s, seg in enumerate(self.segments):
            seg.cosines(qvec, cos[int(self.bases[s]) : int(self.bases[s + 1])])
        return np.where(mask, cos, -np.inf)

    def cosines_of(self, qvec: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact cosine of the chunks ``ids`` only."""
        out = np.empty(len(ids), dtype=np.float32)
        seg_of = np.searchsorted(self.bases, ids, side="right") - 1
        for s in np.unique(seg_of):
            pick = seg_of == s
            out[pick] = self.segments[int(s)].cosines_of(qvec, ids[pick] - self.bases[s])
        return out

    def ann_candidates(self, qvec: np.ndarray, mask: np.ndarray, pool: int) -> np.ndarray:
        """The ``pool`` visible chunks nearest ``qvec``: ANN per segment where there is one.

        ``ann.plan`` sizes the probes to the share of the segment the mask shows, or sends a
        narrow mask to exact scoring of its visible chunks; a segment whose filtered ANN
        search still finds fewer than it could (fewer than ``pool`` while more are visible)
        is scored exactly too, as is a segment without an ANN index. Never returns a chunk
        outside ``mask``. With a ``dense`` source (pgvector) it proposes them instead
        (``bot/knowledge/pg_dense.py``: filtered in the SQL, checked against ``mask``).
        """
        if self.dense is not None:
            return self.dense.candidates(self, qvec, mask, pool)
        found: list[np.ndarray] = []
        for s, seg in enumerate(self.segments):
            a, b = int(self.bases[s]), int(self.bases[s + 1])
            local = mask[a:b]
            n_vis = int(np.count_nonzero(local))
            if n_vis == 0:
                continue
            probes = ann.plan(seg.ann, n_vis, b - a) if seg.ann is not None else 0
            ids = ann.search(seg.ann, qvec, pool, local, nprobe=probes) if probes else None
            if ids is None or len(ids) < min(pool, n_vis):
                visible = np.flatnonzero(local)
                ids = top_ids(visible, seg.cosines_of(qvec, visible), pool, positive=False)
            found.append(ids + a)
        cands = np.concatenate(found) if found else np.zeros(0, np.int64)
        if len(cands) and not mask[cands].all():  # cannot happen: the selector and fallback filter
            log.error("ANN candidates outside the visibility mask were dropped")
            cands = cands[mask[cands]]
        return cands

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
        same as without them. Above the ANN threshold, the dense candidates come from
        :meth:`ann_candidates` and only candidates get a (exact) cosine.
        """
        if dense_weight is None:
            dense_weight = float(getattr(embedder, "dense_weight", DENSE_WEIGHT))
        if self.n == 0 or not mask.any():
            return [], {}, 0.0
        terms, unseen, bm25, rank = self.lexical_scores(query, mask, tokens)
        if mode == "dense":
            bm25 = rank = np.zeros(self.n, dtype=np.float32)
        pool = max(candidates, k)
        scored = np.flatnonzero(bm25 > 0)  # visible only: BM25 is 0 elsewhere
        lex = top_ids(scored, rank[scored], pool, positive=True)
        if mode == "bm25":
            cos = np.full(self.n, -np.inf, dtype=np.float32)
            sem = np.zeros(0, np.int64)
        else:
            qvec = embedder.embed([query])[0] if vector is None else vector
            if self.use_ann:
                near = self.ann_candidates(qvec, mask, pool)
                cos = np.full(self.n, -np.inf, dtype=np.float32)
                both = np.union1d(near, lex)
                cos[both] = self.cosines_of(qvec, both)
                sem = top_ids(near, cos[near], pool, positive=False)
            else:
                cos = self.cosines(qvec, mask)
                visible = np.flatnonzero(mask)
                sem = top_ids(visible, cos[visible], pool, positive=False)
        if mode == "bm25":
            order, fused = lex, rank[lex]
        elif mode == "dense":
            order, fused = sem, cos[sem]
        elif fusion == "rrf":
            order, fused = rrf(lex, sem)
        elif fusion == "minmax":
            order, fused = minmax(lex, sem, rank, cos, dense_weight)
        else:
            raise UsageError(f"Unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}.")
        top = order[:k]
        if len(top) and not mask[top].all():  # never: both scorers filter inside
            raise KnowledgeError("retrieval selected a chunk outside the asker's visibility")
        cos_sel = np.full(len(top), np.nan) if mode == "bm25" else cos[top]
        hits = [
            Hit(int(i), float(f), float(c), float(bm25[i]))
            for i, f, c in zip(top, fused[:k], cos_sel, strict=True)
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
        seg_of = np.searchsorted(self.bases, chunk_ids, side="right") - 1
        groups = [
            (self.segments[int(s)], pick, chunk_ids[pick] - self.bases[s])
            for s in np.unique(seg_of)
            for pick in [seg_of == s]
        ]
        for tid, w in terms.items():
            word = self._term_name(tid)
            if word is None:
                continue
            for seg, pick, local in groups:
                lid = seg.vocab.get(word)
                if lid is not None:
                    got[pick] += w * seg.contains(int(lid), local)
        return got / (sum(terms.values()) + unseen)


def _no_index(department: str) -> str:
    return f"{department} has no index yet; run: deptbot index {department}"


class IndexReader:
    """The ``Retriever`` port over persisted indexes; reloads when ``CURRENT`` changes."""

    def __init__(
        self,
        *,
        state_dir: Path,
        embedder_named: Callable[[str], Embedder],
        fusion: str = DEFAULT_FUSION,
        candidates: int = CANDIDATES,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        all_terms_first: bool = True,
    ) -> None:
        """``all_terms_first`` (``[retrieval] all_terms_first``) goes to every index loaded
        and to the one pass alike, so both rank the same way."""
        if fusion not in FUSIONS:
            raise UsageError(f"Unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}.")
        self._state_dir = Path(state_dir)
        self._embedder_named = embedder_named
        self.fusion = fusion
        self.candidates = candidates
        self.ann_threshold = ann_threshold
        self.all_terms_first = all_terms_first
        # dense candidates from pgvector instead of faiss (``use_dense``; wiring, [knowledge] dense)
        self.dense: DenseSource | None = None
        self._loaded: dict[str, tuple[tuple[int, int, int], LoadedIndex | None]] = {}
        self._paths: dict[str, tuple[Path, str]] = {}  # department → (its folder, its CURRENT)
        self._layouts = Layouts()  # departments side by side for one-pass routing
        self._lock = threading.Lock()
        # embedders that cannot load: their departments leave auto-routed questions (``outages``)
        self.outages = EmbedderOutages()

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
                # Segments are immutable: the new version shares every one the old had.
                reuse = index.segment_map if index is not None else None
                index = LoadedIndex(
                    root / "versions" / version,
                    reuse=reuse,
                    ann_threshold=self.ann_threshold,
                    dense=self.dense,
                    all_terms_first=self.all_terms_first,
                )
            self._loaded[department] = (key, index)
            return index

    def use_dense(self, source: DenseSource | None) -> None:
        """Propose dense candidates through ``source`` (None: faiss/exact in process) from the
        next load on; versions already loaded are loaded again."""
        with self._lock:
            self.dense = source
            self._loaded.clear()

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
        return [probe.chunks() for probe in self.probe_many(query, scopes, top_k=top_k)]

    def probe_many(self, query: str, scopes: Sequence[AccessScope], *, top_k: int = 8) -> list[Probe]:
        """``retrieve_many`` without building the chunks: per scope, the best score now and
        the chunks (text, metadata) on demand. Routing compares every department by its
        scores and builds passages only for the few that can still win.

        A department whose index was built with an embedder that cannot load here gets an
        ``unavailable`` empty probe (routing leaves it out) and its admins one notice; when
        no department with chunks is left, that embedder's ``ProviderUnavailable`` is raised.
        A department with no index at all sits out the same way (``index-missing`` notice);
        with nobody left, its ``IndexMissing`` is raised."""
        # No index (first refresh failed, folder gone): sits out, never another version of it.
        loaded: list[LoadedIndex | None] = [self.loaded(scope.department) for scope in scopes]
        missing = [IndexMissing(_no_index(scopes[i].department)) for i, ix in enumerate(loaded) if ix is None]
        if missing and len(missing) == len(scopes):
            raise missing[0]
        for scope, ix in zip(scopes, loaded, strict=True):
            if ix is None:
                self.outages.missing(scope.department)
        self.outages.indexed(
            scope.department for scope, ix in zip(scopes, loaded, strict=True) if ix is not None
        )
        if not query.strip() or top_k <= 0:
            return [Probe.empty(unavailable=ix is None) for ix in loaded]
        tokens = query_tokens(query)
        vectors, failed = self.outages.embed(
            query, (ix.embedder for ix in loaded if ix is not None and ix.n), self._embedder_named
        )
        # A department whose embedder cannot load sits this question out (never searched with
        # another embedder's vectors); its admins hear once. Nobody left: the refusal itself.
        probes: list[Probe | None] = [None] * len(scopes)
        for i, ix in enumerate(loaded):
            if ix is None:
                probes[i] = Probe.empty(unavailable=True)
            elif ix.embedder in failed:
                self.outages.left_out(scopes[i].department, ix.embedder, failed[ix.embedder])
                probes[i] = Probe.empty(unavailable=True)
        if (failed or missing) and not any(
            ix is not None and ix.n and ix.embedder not in failed for ix in loaded
        ):
            raise next(iter(failed.values())) if failed else missing[0]
        # Exact-search departments go through one pass together (``crosssearch``); ANN
        # departments, and other fusions, are searched on their own; results keep the order.
        indexes = {i: ix for i, ix in enumerate(loaded) if ix is not None and probes[i] is None}
        together = [i for i, ix in indexes.items() if self.fusion == "minmax" and ix.n and not ix.use_ann]
        if together:
            embedders = [self._embedder_named(indexes[i].embedder) for i in together]
            members = [indexes[i] for i in together]
            found = probe_across(
                self._layouts.get(members),
                members,
                [scopes[i] for i in together],
                [vectors[indexes[i].embedder] for i in together],
                tokens,
                top_k,
                candidates=self.candidates,
                dense_weights=[float(getattr(e, "dense_weight", DENSE_WEIGHT)) for e in embedders],
                all_terms_first=self.all_terms_first,
            )
            for i, probe in zip(together, found, strict=True):
                probes[i] = probe
        for i, ix in indexes.items():
            if probes[i] is None:
                probes[i] = self._probe_in(
                    ix, scopes[i], query, top_k, tokens=tokens, vector=vectors.get(ix.embedder)
                )
        return [probe if probe is not None else Probe.empty() for probe in probes]

    def _index_for(self, scope: AccessScope) -> LoadedIndex:
        index = self.loaded(scope.department)
        if index is None:
            raise IndexMissing(_no_index(scope.department))
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
        return self._probe_in(index, scope, query, top_k, tokens=tokens, vector=vector).chunks()

    def _probe_in(
        self,
        index: LoadedIndex,
        scope: AccessScope,
        query: str,
        top_k: int,
        *,
        tokens: list[str] | None = None,
        vector: np.ndarray | None = None,
    ) -> Probe:
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
        return Probe(index, scope, hits, term_ids, unseen)
