"""Fusion of the lexical and dense candidate lists, and the calibrated 0..1 score.

Split out of ``bot/knowledge/retrieve.py`` so that the per-department search
(``LoadedIndex.search``) and the one pass over several departments
(``bot/knowledge/crosssearch.py``) call the very same functions on the same arrays: that
is what keeps routing's scores bit-identical to a named question's. The choice of
min-max fusion, its weights and the calibration are explained in ``retrieve.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bot.knowledge import lexical

RRF_K = 60
DENSE_WEIGHT = 0.3
# Cosine → 0..1 ramps per embedder (cosines of unrelated text sit near ``lo``).
RAMPS: dict[str, tuple[float, float]] = {"wordllama": (0.20, 0.60), "minilm": (0.15, 0.70)}
# Share of the dense signal in the calibrated score (the rest is query-term coverage).
# Paraphrased questions ("stay home after my baby is born" → parental leave) share few
# words with the answer, so meaning weighs a little more than wording.
CONFIDENCE_DENSE_WEIGHT = 0.6
DEFAULT_RAMP = (0.2, 0.8)


class Hit(NamedTuple):
    """One retrieved chunk before its text is read (a tuple: the one pass builds ten lists)."""

    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing calls on a Hit
    fused: float
    cosine: float
    bm25: float


def query_tokens(query: str) -> list[str]:
    """The query's distinct index terms, in order (the tokenizer the index was built with)."""
    return list(dict.fromkeys(lexical.tokenize([query])[0]))


def top_ids(ids: np.ndarray, scores: np.ndarray, k: int, *, positive: bool) -> np.ndarray:
    """The ``k`` best of ``ids`` by score (positive, or finite), best first.

    Equal scores are broken by the lower id, at the k-th place too: the choice then does
    not depend on how the candidates were laid out, so a department searched alone and the
    same department inside the one pass over several (``crosssearch.group_top``) pick the
    same candidates even among exact ties (copies of one page have equal scores).
    """
    keep = scores > 0 if positive else np.isfinite(scores)
    ids, scores = ids[keep], scores[keep]
    if len(ids) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th largest
        chosen = scores > kth
        tied = np.flatnonzero(scores == kth)
        need = k - int(np.count_nonzero(chosen))
        chosen[tied[np.argsort(ids[tied], kind="stable")[:need]]] = True
        ids, scores = ids[chosen], scores[chosen]
    return ids[np.lexsort((ids, -scores))]


def rrf(lex: np.ndarray, sem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fused: dict[int, float] = {}
    for ranked in (lex, sem):
        for rank, i in enumerate(ranked.tolist()):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
    items = sorted(fused.items(), key=lambda kv: -kv[1])
    return np.array([i for i, _ in items], dtype=np.int64), np.array([s for _, s in items])


def minmax(
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


def calibrate_one(cosine: float, coverage: float, embedder: str) -> float:
    """``calibrate`` of a single hit, in plain floats (IEEE doubles, the same arithmetic as
    numpy's float64), rounded as ``SourceChunk.score``: the one pass scores the first hit
    of every department without building ten one-element arrays."""
    lo, hi = RAMPS.get(embedder, DEFAULT_RAMP)
    dense = (cosine - lo) / (hi - lo)
    if dense != dense:  # NaN: no cosine (bm25-only mode), the score is the coverage alone
        score = coverage
    else:
        w = CONFIDENCE_DENSE_WEIGHT
        score = w * min(max(dense, 0.0), 1.0) + (1 - w) * coverage
    if score != score:
        score = 0.0
    return round(min(max(score, 0.0), 1.0), 4)
