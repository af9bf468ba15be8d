"""``Probe``: one department's retrieval for a question, its best score now and its chunks
(text, metadata, the access check of every hit) only when asked for.

Routing compares every askable department by ``best`` and builds passages only for the
few that can still win (``bot/core/routing.py``). Split out of ``retrieve.py``; both the
per-department search and the one pass (``crosssearch.py``) return these.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from bot.core.types import AccessScope, Classification, SourceChunk
from bot.knowledge.fusion import Hit, calibrate

if TYPE_CHECKING:
    from bot.knowledge.retrieve import LoadedIndex

log = logging.getLogger(__name__)


class Probe:
    """One department's retrieval for a question before its chunks are built.

    ``best`` is the highest chunk score (``max(c.score for c in chunks())``, 0 without any):
    calibrated scores never rise down the list, so it is the first hit's, which needs the
    term coverage of that one chunk only. The other scores, the access check of every hit
    and the chunks themselves (text, metadata) are computed by :meth:`chunks`.

    ``best`` may be given when the caller already computed it the same way
    (``calibrate_one`` of the first hit, as the one pass does for every department at
    once); the first hit's access check is made either way.

    ``unavailable``: the department was not searched because the embedder its index was
    built with cannot load (``bot.knowledge.outages``); routing leaves it out.
    """

    __slots__ = ("_hits", "_index", "_kept", "_scope", "_terms", "_unseen", "best", "unavailable")

    def __init__(
        self,
        index: LoadedIndex | None,
        scope: AccessScope | None,
        hits: Sequence[Hit] = (),
        terms: dict[int, float] | None = None,
        unseen: float = 0.0,
        *,
        best: float | None = None,
    ) -> None:
        self._index, self._scope, self._hits = index, scope, list(hits)
        self._terms, self._unseen = terms or {}, unseen
        self._kept: list[tuple[int, float]] | None = None
        self.best = 0.0
        self.unavailable = False
        if index is None or scope is None or not self._hits:
            self._kept = []
        elif scope.admits(_audiences(index, self._hits[0].index)):
            self.best = self._scores(1)[0] if best is None else best
        else:  # cannot happen while the mask is right: score everything now
            self.best = max((s for _, s in self._scored()), default=0.0)

    @staticmethod
    def empty(*, unavailable: bool = False) -> Probe:
        probe = Probe(None, None)
        probe.unavailable = unavailable
        return probe

    def _scores(self, n: int) -> list[float]:
        """Calibrated scores of the first ``n`` hits, rounded as ``SourceChunk.score``."""
        assert self._index is not None
        index, hits = self._index, self._hits[:n]
        ids = np.array([h.index for h in hits], dtype=np.int64)
        scores = calibrate(
            np.array([h.cosine for h in hits]), index.coverage(ids, self._terms, self._unseen), index.embedder
        )
        return [round(float(x), 4) for x in scores]

    def _scored(self) -> list[tuple[int, float]]:
        """The hits the scope admits, with their scores (a dropped one is logged)."""
        if self._kept is None:
            assert self._index is not None and self._scope is not None
            index, scope = self._index, self._scope
            kept: list[tuple[int, float]] = []
            dropped: list[str] = []
            for hit, score in zip(self._hits, self._scores(len(self._hits)), strict=True):
                if scope.admits(_audiences(index, hit.index)):
                    kept.append((hit.index, score))
                else:  # cannot happen while the mask is right; never log text
                    dropped.append(build_chunk(index, scope.department, hit.index, score).chunk_id)
            if dropped:
                log.warning("retrieval returned chunks outside the scope; dropped %s", ", ".join(dropped))
            self._kept = kept
        return self._kept

    def chunks(self) -> list[SourceChunk]:
        kept = self._scored()
        if not kept:
            return []
        assert self._index is not None and self._scope is not None
        index, department = self._index, self._scope.department
        return [build_chunk(index, department, i, s) for i, s in kept]


def _audiences(index: LoadedIndex, i: int) -> tuple[tuple[str, ...], ...]:
    """Chunk ``i``'s audience lists, as ``SourceChunk.audiences``."""
    return tuple(tuple(a) for a in index.docs[int(index.chunk_doc[i])]["audiences"])


def build_chunk(index: LoadedIndex, department: str, i: int, score: float) -> SourceChunk:
    doc = index.docs[int(index.chunk_doc[i])]
    return SourceChunk(
        chunk_id=f"{doc['doc_id']}#{i - doc['start']}",
        doc_id=doc["doc_id"],
        department=department,
        title=doc["title"],
        path=doc["path"],
        text=index.text(i),
        score=round(score, 4),
        anchor=index.anchor(i),
        modified=datetime.fromtimestamp(doc["modified"], UTC),
        classification=Classification(doc["classification"]),
        audiences=tuple(tuple(a) for a in doc["audiences"]),
        date_kind=doc.get("date_kind", "updated"),
    )
