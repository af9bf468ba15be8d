"""One search pass over several departments: how an auto-routed question is retrieved.

An auto-routed question is searched in every department the asker may ask. Searched one
department after another (``LoadedIndex.search`` each), a department of 2-3k chunks costs
~0.28 ms, most of it the call overhead of a dozen small numpy steps, ten times over.
Here the departments are laid side by side (``Layout``: chunk numbers offset department
after department, a department field per chunk, a (departments, width) grid) and every
step runs once for all of them:

- visibility: each department's own mask for its own scope (``LoadedIndex.mask``),
  concatenated — a chunk is visible in the pass exactly when its department's scope
  admits it;
- BM25: the query terms' postings of every department's segments gathered into one array
  and scored with one ``bincount``; document frequencies, N and average length stay per
  department *and* per scope (counted over that department's visible chunks only), so
  neither a department's restricted chunks nor another department's chunks move a
  visible chunk's score; the words looked up (tokens, then compound forms) are made once
  per question (``query_words``), not once per department; the lexical ranking score
  (``lexical.all_terms_rank``) takes each department's own required terms and top BM25;
- cosines: one buffer, filled segment by segment with the same ``Segment.cosines`` call
  a named question makes (the vectors are not copied; see below);
- candidates: each department's best ``candidates`` by BM25 and by cosine from one
  ``np.partition`` of the grid (``group_top``), ties to the lower chunk number;
- fusion: min-max over each department's own candidates (``_fuse``: per-department
  bounds by ``reduceat``, numpy's float32/float64 precisions reproduced), one sort;
- the first hit's calibrated score (``Probe.best``) of every department in plain floats.

Every number a department gets — BM25, cosine, candidates, fused order, calibrated score,
idf weights — is bit-identical to searching it alone (``top_ids`` breaks ties the same
way; tests/knowledge/test_crosssearch.py compares them on random grids with ties and on
a real index, ``python -m bench.routing_pass`` on 200 questions x 10 departments), so
routing decides exactly as before. A candidate is chosen within its own department's
slice only and must be visible there (checked after the pass, as ``search`` does; every
hit's audiences are checked again by ``Probe``).

The cosine pass is the floor: it reads every visible vector (28 MB of float32 for 28k
chunks at 256-d) and is bound by memory bandwidth, ~0.07-0.09 ms per 2.8k-chunk department
single-threaded whatever the kernel (einsum, one-thread BLAS, faiss's flat kernel all
measured within 10 %), so one product over a concatenated copy would gain nothing and
double the vectors' memory. Multi-threaded BLAS is 3-4x faster when its threads are
awake, but OpenBLAS wakes a second thread for any product above ~9k values: with 2 ms
gaps between questions on this busy 2-core machine, ten 2.8k x 256 products took p50
0.45 ms but p95 6 ms and p99 22 ms (einsum: 0.84 / 0.92 / 1.3 ms) — the reason
``Segment.cosines`` uses einsum, kept here.

Departments that search through ANN indexes (``knowledge.ann_threshold``), and fusion
modes other than min-max, keep their own path (``LoadedIndex.search``); the reader
merges both kinds of result in the scopes' order.

A layout is used only for the ``LoadedIndex`` objects it was built from (weak
references, checked on every pass): a refresh publishes a new version,
``IndexReader.loaded`` returns a new object, and the pass lays out the new one — it reads
one consistent version of every department, never a mix, and a missing index fails the
whole call (``IndexMissing``) rather than being skipped.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bot.core.types import AccessScope
from bot.errors import KnowledgeError
from bot.knowledge import lexical
from bot.knowledge.fusion import Hit, calibrate_one
from bot.knowledge.probe import Probe

if TYPE_CHECKING:
    from bot.knowledge.retrieve import LoadedIndex

LAYOUTS_KEPT = 8  # distinct sets of departments (askers' askable sets) kept side by side


@dataclass(frozen=True)
class Layout:
    """Departments' chunks numbered side by side: department ``d`` owns ``starts[d]:starts[d+1]``.

    Only weak references to the ``LoadedIndex`` objects it lays out: a cached layout must
    not keep a replaced version (and its vectors) alive after a refresh.
    """

    refs: tuple[weakref.ref[LoadedIndex], ...]
    starts: np.ndarray  # int64, one more than departments
    lengths: np.ndarray  # float32 tokens per chunk (BM25 dl), all departments
    segments: tuple[tuple[int, int, int], ...]  # (department, segment number, first global chunk)
    group_of: np.ndarray  # int64 department of every chunk (the "department field")
    width: int  # the largest department: per-department selections run on a (departments, width) grid
    grid_pos: np.ndarray  # int64 place of every chunk in that grid, department * width + its number

    @staticmethod
    def of(indexes: Sequence[LoadedIndex]) -> Layout:
        sizes = [index.n for index in indexes]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        lengths = np.concatenate([index.lengths for index in indexes]) if indexes else np.zeros(0, np.float32)
        segments = tuple(
            (d, s, int(starts[d] + index.bases[s]))
            for d, index in enumerate(indexes)
            for s in range(len(index.segments))
        )
        group_of = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        width = max(sizes, default=0)
        grid_pos = group_of * width + (np.arange(int(starts[-1]), dtype=np.int64) - starts[group_of])
        for array in (lengths, group_of, grid_pos):
            array.setflags(write=False)
        refs = tuple(weakref.ref(index) for index in indexes)
        return Layout(refs, starts, lengths, segments, group_of, width, grid_pos)

    def lays_out(self, indexes: Sequence[LoadedIndex]) -> bool:
        """Whether this layout was built from exactly these objects (these versions)."""
        return len(indexes) == len(self.refs) and all(
            r() is i for r, i in zip(self.refs, indexes, strict=True)
        )

    @property
    def n(self) -> int:
        return int(self.starts[-1])

    def nbytes(self) -> int:
        """What the layout adds to memory (the vectors and postings are the segments' own)."""
        return int(self.starts.nbytes + self.lengths.nbytes + self.group_of.nbytes + self.grid_pos.nbytes)


class Layouts:
    """A few layouts, keyed by the identity of the ``LoadedIndex`` objects they lay out.

    A layout is used only for the very objects it was built from (``Layout.lays_out``,
    weak references, so an id reused by a new object does not match); a refreshed
    department yields a new object and so a new layout, and the stale one ages out of the
    small LRU without holding the old version in memory.
    """

    def __init__(self, kept: int = LAYOUTS_KEPT) -> None:
        self._kept = kept
        self._layouts: OrderedDict[tuple[int, ...], Layout] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, indexes: Sequence[LoadedIndex]) -> Layout:
        key = tuple(id(index) for index in indexes)
        with self._lock:
            layout = self._layouts.get(key)
            if layout is not None and layout.lays_out(indexes):
                self._layouts.move_to_end(key)
                return layout
        layout = Layout.of(indexes)
        with self._lock:
            self._layouts[key] = layout
            while len(self._layouts) > self._kept:
                self._layouts.popitem(last=False)
        return layout

    def nbytes(self) -> int:
        with self._lock:
            return sum(layout.nbytes() for layout in self._layouts.values())


def probe_across(
    layout: Layout,
    indexes: Sequence[LoadedIndex],
    scopes: Sequence[AccessScope],
    vectors: Sequence[np.ndarray],
    tokens: list[str],
    top_k: int,
    *,
    candidates: int,
    dense_weights: Sequence[float],
    all_terms_first: bool = True,
) -> list[Probe]:
    """``Probe`` per department of ``layout`` (hybrid retrieval, min-max fusion, exact cosine).

    ``indexes`` are the versions ``layout`` lays out (checked), ``scopes[d]`` is the
    asker's scope in department ``d`` and ``vectors[d]`` the question
    embedded by that department's embedder; ``dense_weights[d]`` its embedder's fusion
    weight. Each result equals ``Probe`` of ``LoadedIndex.search`` for that scope alone
    (``all_terms_first`` as the indexes were loaded with: the reader passes its own).
    """
    if not layout.lays_out(indexes):  # never: the reader asks ``Layouts`` for these very objects
        raise KnowledgeError("the one-pass layout does not match the loaded indexes")
    starts, n = layout.starts, layout.n
    masks = [index.mask(scope) for index, scope in zip(indexes, scopes, strict=True)]
    mask = np.concatenate(masks) if masks else np.zeros(0, dtype=bool)
    stats = [index.visible_stats(m) for index, m in zip(indexes, masks, strict=True)]

    # ── BM25, every department in one pass ───────────────────────────────────────────
    # Per department, the query's known terms in token order (as ``visible_terms``); a
    # "slot" is one (department, term) pair, so df and idf stay per department.
    words = query_words(tokens)
    known = [known_terms(words, index) for index in indexes]
    slot0 = np.concatenate([[0], np.cumsum([len(k) for k in known])]).astype(np.int64)
    first_slot = slot0.tolist()
    row_parts: list[np.ndarray] = []
    tf_parts: list[np.ndarray] = []
    piece_base: list[int] = []
    piece_slot: list[int] = []
    for d, s, base in layout.segments:  # department-major, then segment, then term
        seg = indexes[d].segments[s]
        own = len(seg.vocab) if s == 0 else 0  # segment 0's own ids are the term ids
        for j, (word, tid) in enumerate(known[d]):
            lid = (tid if tid < own else None) if s == 0 else seg.vocab.get(word)
            if lid is None:
                continue
            rows_j, tf_j = seg.postings(int(lid))
            row_parts.append(rows_j)
            tf_parts.append(tf_j)
            piece_base.append(base)
            piece_slot.append(first_slot[d] + j)
    sizes = np.fromiter((len(r) for r in row_parts), dtype=np.int64, count=len(row_parts))
    if row_parts:
        rows = np.concatenate(row_parts).astype(np.int64) + np.repeat(np.asarray(piece_base, np.int64), sizes)
        tf_all = np.concatenate(tf_parts)
        slot = np.repeat(np.asarray(piece_slot, np.int64), sizes)
    else:
        rows, tf_all, slot = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
    seen = mask[rows]
    rows, tf_f, slot = rows[seen], tf_all[seen].astype(np.float32), slot[seen]
    n_slots = int(slot0[-1])
    slot_dept = np.repeat(np.arange(len(indexes), dtype=np.int64), np.diff(slot0))
    n_vis = np.array([st[0] for st in stats], dtype=np.int64)
    avgdl = np.array([st[1] for st in stats], dtype=np.float32)  # np.float32(avgdl) per department
    df = np.bincount(slot, minlength=n_slots)
    # ``lexical.idf`` is elementwise: an array of N (one per slot's department) works as one N
    n_per_slot: Any = n_vis[slot_dept]
    idf = lexical.idf(df.astype(np.float64), n_per_slot) if n_slots else np.zeros(0, np.float32)
    idf0 = lexical.idf(np.zeros(len(indexes)), cast(Any, n_vis))  # the idf of a term no visible chunk has
    if len(rows):
        row_dept = layout.group_of[rows]
        part = lexical.bm25_part(idf[slot], tf_f, layout.lengths[rows], avgdl[row_dept])
        bm25 = np.bincount(rows, weights=part, minlength=n).astype(np.float32)
    else:
        bm25 = np.zeros(n, dtype=np.float32)
    # the lexical list's ranking score, as ``LoadedIndex.lexical_scores``: per department,
    # its own required terms and its own largest BM25
    rank = bm25
    if len(rows) and all_terms_first:
        own_words = set(tokens)
        own_slot = np.array([w in own_words for k in known for w, _ in k], dtype=bool)
        held = np.bincount(rows[own_slot[slot]], minlength=n)
        required = np.bincount(slot_dept[own_slot & (df > 0)], minlength=len(indexes))
        top = np.zeros(len(indexes), dtype=np.float32)
        filled = np.flatnonzero(np.diff(starts) > 0)
        top[filled] = np.maximum.reduceat(bm25, starts[:-1][filled])
        rank = lexical.all_terms_rank(bm25, held, required[layout.group_of], top[layout.group_of])

    # ── cosines: the segments' own arrays, one buffer ───────────────────────────────────
    cos = np.empty(n, dtype=np.float32)
    for d, s, base in layout.segments:
        seg = indexes[d].segments[s]
        seg.cosines(vectors[d], cos[base : base + seg.n])
    if not mask.all():
        cos[~mask] = -np.inf

    # ── candidates of every department at once: its best ``pool`` by BM25 and by cosine ──
    pool = max(candidates, top_k)
    union = np.flatnonzero(
        group_top(rank, layout, pool, positive=True) | group_top(cos, layout, pool, positive=False)
    )
    group = layout.group_of[union]
    cu, bu, ru = cos[union], bm25[union], rank[union]
    if not (mask[union].all() and np.isfinite(cu).all()):  # never: both scorers filter inside
        raise KnowledgeError("retrieval selected a chunk outside the asker's visibility")
    bounds = np.searchsorted(union, starts)  # department d's candidates: bounds[d]:bounds[d+1]
    weight = np.asarray(dense_weights, dtype=np.float64)
    fused = _fuse(cu, ru, group, bounds, weight)
    order = fused_order(fused, group)
    # each department's first ``top_k`` of that order, and only those become Python values
    kept = np.minimum(np.diff(bounds), top_k)
    take = order[np.repeat(bounds[:-1] - np.cumsum(kept) + kept, kept) + np.arange(int(kept.sum()))]
    ids_l, fused_l, cos_l, bm_l = (
        union[take].tolist(),
        fused[take].tolist(),
        cu[take].tolist(),
        bu[take].tolist(),
    )
    hit_at = np.concatenate([[0], np.cumsum(kept)]).tolist()
    df_l, idf_l, starts_l, slot0_l = df.tolist(), idf.tolist(), starts.tolist(), slot0.tolist()
    found: list[tuple[list[Hit], dict[int, float], float]] = []
    for d, index in enumerate(indexes):
        if index.n == 0 or stats[d][0] == 0:  # as ``search``: nothing visible, nothing to weigh
            found.append(([], {}, 0.0))
            continue
        lo = slot0_l[d]
        # as ``visible_terms``: the weights of the terms some visible chunk holds, and the
        # idf mass of the others (unknown to the department, or held by no visible chunk)
        terms = {tid: idf_l[lo + j] for j, (_, tid) in enumerate(known[d]) if df_l[lo + j]}
        unseen = lexical.unseen_mass(tokens, known[d], terms, idf0[d])
        a = starts_l[d]
        hits = [Hit(ids_l[i] - a, fused_l[i], cos_l[i], bm_l[i]) for i in range(hit_at[d], hit_at[d + 1])]
        found.append((hits, terms, unseen))

    # ── every department's first hit: term coverage and calibrated score at once ──────
    firsts = np.array([starts_l[d] + h[0].index for d, (h, _, _) in enumerate(found) if h], dtype=np.int64)
    is_first = np.zeros(n, dtype=bool)
    is_first[firsts] = True
    on_first = is_first[rows]
    present = set(zip(rows[on_first].tolist(), slot[on_first].tolist(), strict=True))
    probes: list[Probe] = []
    for d, (index, scope) in enumerate(zip(indexes, scopes, strict=True)):
        hits, terms, unseen = found[d]
        best = None
        if hits:
            first, lo = starts_l[d] + hits[0].index, slot0_l[d]
            # ``LoadedIndex.coverage`` of one chunk: the weights of the terms it holds,
            # added in the same order, over all the visible terms' weights and the unseen mass
            got = 0.0
            for j, (_, tid) in enumerate(known[d]):
                if tid in terms and (first, lo + j) in present:
                    got += terms[tid]
            coverage = got / (sum(terms.values()) + unseen) if terms or unseen != 0 else float("nan")
            best = calibrate_one(hits[0].cosine, coverage, index.embedder)
        probes.append(Probe(index, scope, hits, terms, unseen, best=best))
    return probes


def query_words(tokens: Sequence[str]) -> list[str]:
    """The words ``lexical.query_term_ids`` looks up, in its order: the tokens, then the
    compound forms that are not tokens. Made once per question, not once per department
    (compound forms cost ~0.01 ms a department)."""
    taken = set(tokens)
    return [*tokens, *(form for form in lexical.compound_forms(tokens) if form not in taken)]


def known_terms(words: Sequence[str], index: LoadedIndex) -> list[tuple[str, int]]:
    """``lexical.query_term_ids(tokens, index.term_id)`` from ``query_words(tokens)``:
    compound forms are distinct and never tokens, so each is looked up once either way.
    A one-segment index's term ids are its vocabulary's, read without ``term_id``'s call."""
    if len(index.segments) == 1:
        vocab = index.segments[0].vocab
        return [(w, int(tid)) for w in words if (tid := vocab.get(w)) is not None]
    return [(w, tid) for w in words if (tid := index.term_id(w)) is not None]


def fused_order(fused: np.ndarray, group: np.ndarray) -> np.ndarray:
    """The candidates (ascending chunk numbers, so grouped by department) in each
    department's order: fused score descending, then the lower chunk number, as ``minmax``'s
    stable sort. The sort is stable and the input ascending, so the chunk number needs no
    key of its own (a third lexsort key cost ~10 µs a question)."""
    return np.lexsort((-fused, group))


def group_top(values: np.ndarray, layout: Layout, k: int, *, positive: bool) -> np.ndarray:
    """Which entries are among their department's ``k`` best ``values`` (positive ones, or
    finite ones): ``top_ids`` of every department's slice at once (value desc, ties to the
    lower chunk number).

    Each department's k-th largest candidate value comes from one ``np.partition`` of a
    (departments, width) grid padded with -inf. Candidates at or above it are chosen, and
    ties at that value keep the lower chunk numbers, as ``top_ids`` does, so the set is the
    one the department alone would pick. Sparse candidates (BM25's) are packed into a small
    grid first: a grid mostly of equal values makes ``np.partition`` several times slower.
    """
    keep = values > 0 if positive else np.isfinite(values)
    starts, groups = layout.starts, len(layout.refs)
    if len(values) == 0:
        return keep
    if 2 * int(np.count_nonzero(keep)) >= len(values):  # dense: the layout's own grid
        sizes, width = np.diff(starts), layout.width
        if width <= k:
            return keep
        grid = np.full(groups * width, -np.inf, dtype=values.dtype)
        grid[layout.grid_pos] = values if not positive else np.where(keep, values, -np.inf)
        kth = np.partition(grid.reshape(groups, width), width - k, axis=1)[:, width - k]
        chosen = keep & (values >= np.repeat(kth, sizes))
    else:  # sparse: candidates packed per department
        cand = np.flatnonzero(keep)  # ascending, so grouped by department
        bounds = np.searchsorted(cand, starts)
        sizes = np.diff(bounds)
        width = int(sizes.max())
        if width <= k:
            return keep
        value = values[cand]
        rank = np.arange(len(cand), dtype=np.int64) - np.repeat(bounds[:-1], sizes)
        grid = np.full(groups * width, -np.inf, dtype=values.dtype)
        grid[np.repeat(np.arange(groups, dtype=np.int64) * width, sizes) + rank] = value
        kth = np.partition(grid.reshape(groups, width), width - k, axis=1)[:, width - k]
        chosen = value >= np.repeat(kth, sizes)
        _keep_lower_ties(chosen, value, bounds, kth, k)
        out = np.zeros(len(values), dtype=bool)
        out[cand[chosen]] = True
        return out
    _keep_lower_ties(chosen, values, starts, kth, k)
    return chosen


def _keep_lower_ties(
    chosen: np.ndarray, value: np.ndarray, offset: np.ndarray, kth: np.ndarray, k: int
) -> None:
    """Where a department chose more than ``k`` (ties at its k-th value), unchoose the tied
    entries with the higher chunk numbers. Fewer than ``k`` candidates: kth is the -inf
    padding and every candidate stays chosen."""
    picked = np.diff(np.searchsorted(np.flatnonzero(chosen), offset))
    for d in np.flatnonzero(picked > k):
        a, b = int(offset[d]), int(offset[d + 1])
        tied = a + np.flatnonzero(chosen[a:b] & (value[a:b] == kth[d]))
        chosen[tied[len(tied) - int(picked[d] - k) :]] = False


def _fuse(
    cos: np.ndarray, bm25: np.ndarray, group: np.ndarray, bounds: np.ndarray, weight: np.ndarray
) -> np.ndarray:
    """``minmax``'s fused score of every department's candidates at once, in float64.

    The per-department ``minmax`` normalises each list over the department's candidates in
    float32 (numpy casts the Python bounds and weight to the array's float32) — or, when a
    list is constant, to exact 1.0/0.0 in float64, and the sum is then float64. Those
    precisions are reproduced per department here; a float32 sum is the double sum
    rounded to float32 (double rounding is harmless for one addition of two float32), so
    every fused value is bit-identical to the department's own ``minmax``.
    """
    terms: list[tuple[np.ndarray, np.ndarray]] = []
    nonempty = bounds[:-1][np.diff(bounds) > 0]
    groups = len(bounds) - 1
    for values, w in ((cos, weight), (bm25, 1 - weight)):
        lo = np.zeros(groups, dtype=values.dtype)
        hi = np.zeros(groups, dtype=values.dtype)
        if len(values):
            has = np.flatnonzero(np.diff(bounds) > 0)
            lo[has] = np.minimum.reduceat(values, nonempty)
            hi[has] = np.maximum.reduceat(values, nonempty)
        flat = ~(hi > lo)
        span = (hi.astype(np.float64) - lo.astype(np.float64)).astype(values.dtype)
        span[flat] = 1
        scaled = ((values - lo[group]) / span[group] * w.astype(values.dtype)[group]).astype(np.float64)
        constant = w * np.where(hi > 0, 1.0, 0.0)  # float64, as ``np.full`` of 1.0 / 0.0
        terms.append((np.where(flat[group], constant[group], scaled), flat[group]))
    (c, c_flat), (b, b_flat) = terms
    total = c + b
    both32 = ~c_flat & ~b_flat
    return np.where(both32, total.astype(np.float32).astype(np.float64), total)
