"""Embedders that cannot load: their departments leave an auto-routed question.

An auto-routed question is embedded once per embedder the askable departments' indexes
were built with (``IndexReader.probe_many``). When one of them cannot load here (the
``[minilm]`` extra is missing, a pinned model file differs: ``ProviderUnavailable``), the
departments built with it cannot be searched, and nothing may search them with another
embedder's vectors (an index searched with a different embedder answers wrongly without
any sign of it). Before, that one failure failed every auto-routed question, even those
only a wordllama department could answer. Now those departments drop out of the
question, as if they had nothing to say, the others answer, and the departments' admins
are told once (notice kind ``embedder-unavailable``, the embedder's own message, which
names no path). A question named to such a department still gets the refusal, and when
no department is left to search the question gets it too.

A department with no index at all (its first refresh failed, its knowledge folder is gone
and the refresh stopped serving it) is treated the same way: it sits the question out
(never answered from another or an older version of it), its admins are told once
(notice kind ``index-missing``), a question named to it keeps the refusal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import numpy as np

from bot.core.ports import AdminNotices
from bot.errors import ProviderUnavailable
from bot.knowledge.embedders import Embedder

log = logging.getLogger(__name__)

NOTICE_KIND = "embedder-unavailable"
MISSING_KIND = "index-missing"


class EmbedderOutages:
    """Embeds a question once per embedder, keeping the ones that fail apart, and tells
    each department's admins once while its embedder fails (again after it recovered
    and failed anew). ``notices`` is set by ``KnowledgeBase``; None: only the log hears."""

    def __init__(self) -> None:
        self.notices: AdminNotices | None = None
        self._told: dict[str, set[str]] = {}  # embedder → departments told while it fails
        self._missing: set[str] = set()  # departments told while they have no index
        self._lock = threading.Lock()

    def embed(
        self, query: str, names: Iterable[str], embedder_named: Callable[[str], Embedder]
    ) -> tuple[dict[str, np.ndarray], dict[str, ProviderUnavailable]]:
        """The question's vector per embedder name, and the embedders that cannot load."""
        vectors: dict[str, np.ndarray] = {}
        failed: dict[str, ProviderUnavailable] = {}
        for name in names:
            if name in vectors or name in failed:
                continue
            try:
                vectors[name] = embedder_named(name).embed([query])[0]
            except ProviderUnavailable as exc:
                failed[name] = exc
                continue
            if self._told:  # it works again: a later failure is news
                with self._lock:
                    self._told.pop(name, None)
        return vectors, failed

    def indexed(self, departments: Iterable[str]) -> None:
        """These departments have an index again: a later loss of it is news."""
        if self._missing:  # nearly always empty: no cost on the routing path
            with self._lock:
                self._missing.difference_update(departments)

    def missing(self, department: str) -> None:
        """``department`` has no index and sat out a question: tell its admins once."""
        with self._lock:
            if department in self._missing:
                return
            self._missing.add(department)
        log.warning("%s left out of auto-routed questions: it has no index", department)
        text = (
            f"{department}: it has no index here (its first refresh failed or has not finished, or "
            f"its knowledge folder is gone), so questions routed automatically leave {department} out "
            f"and questions asked to it are refused until a refresh succeeds: deptbot index {department}"
        )
        self._notify(department, MISSING_KIND, text)

    def left_out(self, department: str, embedder: str, error: ProviderUnavailable) -> None:
        """``department`` (index built with ``embedder``) sat out a question: tell once."""
        with self._lock:
            told = self._told.setdefault(embedder, set())
            if department in told:
                return
            told.add(department)
        log.warning(
            "%s left out of auto-routed questions: its embedder %s cannot load (%s)",
            department,
            embedder,
            type(error).__name__,
        )
        if self.notices is None:
            return
        text = (
            f"{department}: the {embedder} embedder its index was built with cannot load here, so "
            f"questions routed automatically leave {department} out and questions asked to it are "
            f"refused until it is fixed (or the department is re-indexed with another embedder). "
            f"{error.user_message}"
        )
        self._notify(department, NOTICE_KIND, text)

    def _notify(self, department: str, kind: str, text: str) -> None:
        if self.notices is None:
            return
        try:
            self.notices.notify(department, kind, text)
        except Exception as exc:  # a notice store failure never fails the question
            log.warning("could not record the %s notice for %s (%s)", kind, department, type(exc).__name__)
