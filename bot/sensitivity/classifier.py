"""``PatternClassifier``: the ``SensitivityClassifier`` port, library detectors + stemmed keywords."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from bot.core.sensitivity import DEFAULT_LEVELS, DETECTORS, keyword_pattern, label_for
from bot.core.types import Classification
from bot.sensitivity import credentials, identifiers
from bot.sensitivity.identifiers import DEFAULT_PHONE_REGIONS
from bot.sensitivity.keywords import DEFAULT_TOPICS, PhraseMatcher, stems

if TYPE_CHECKING:
    from bot.config import Department


class PatternClassifier:
    """Labels a request's own text; reasons are detector names, never the matched text.

    ``levels`` overrides the level of any detector (see ``bot.core.sensitivity``).
    ``topics`` are always-sensitive phrases for every department ("sensitive-topic");
    ``()`` turns them off. ``phone_regions`` are the countries whose national phone formats
    count. ``libraries=False`` is the old regex-only classifier (exact whole-word keywords,
    no topics) — kept as the baseline for ``bench/sensitivity.py``.

    Safe to share between threads; each call costs well under a millisecond for a
    typical question (``python -m bench.sensitivity``).
    """

    def __init__(
        self,
        *,
        levels: Mapping[str, Classification] | None = None,
        topics: Iterable[str] = DEFAULT_TOPICS,
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        libraries: bool = True,
    ) -> None:
        self._levels = {**DEFAULT_LEVELS, **(levels or {})}
        self._libraries = libraries
        self._topics = PhraseMatcher(topics) if libraries else PhraseMatcher(())
        self._regions = tuple(phone_regions)
        self._stemmed: dict[tuple[str, ...], PhraseMatcher] = {}
        self._exact: dict[tuple[str, ...], re.Pattern[str] | None] = {}

    def classify(self, text: str, department: Department) -> tuple[Classification, tuple[str, ...]]:
        found = self._found(text, tuple(department.sensitive_keywords))
        reasons = tuple(dict.fromkeys(found))
        return label_for(reasons, self._levels), reasons

    def _found(self, text: str, keywords: tuple[str, ...]) -> list[str]:
        if not self._libraries:
            found = [name for name, detect in DETECTORS if detect(text)]
            if keywords not in self._exact:
                self._exact[keywords] = keyword_pattern(keywords)
            pattern = self._exact[keywords]
            if pattern is not None and pattern.search(text):
                found.append("department-keyword")
            return found
        found = [*credentials.findings(text), *identifiers.findings(text, self._regions)]
        words = stems(text)
        if keywords not in self._stemmed:
            self._stemmed[keywords] = PhraseMatcher(keywords)
        if self._stemmed[keywords].search(words):
            found.append("department-keyword")
        if self._topics.search(words):
            found.append("sensitive-topic")
        return found
