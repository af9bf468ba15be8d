"""Stemmed keyword and topic matching: "salaries" matches the keyword "salary".

Words are lower-cased, split on anything that is not a letter or digit, and reduced with
the Snowball English stemmer (PyStemmer, the same stemmer retrieval uses in
``bot/knowledge/lexical.py``). A keyword of several words matches when its stemmed words
appear next to each other, in order: "harassment complaint" matches "Harassment
complaints" but not "a complaint about harassment".

Snowball does not always give a singular and its plural the same stem ("diagnosis" →
"diagnosi", "diagnoses" → "diagnos"); list both forms when that matters, as
:data:`DEFAULT_TOPICS` does.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

# Always-sensitive topics, for every department (level: the "sensitive-topic" detector,
# confidential by default). Asking *how* to reset a password is not here on purpose: a
# pasted password is caught by the credential detectors instead (see credentials.py).
DEFAULT_TOPICS: tuple[str, ...] = (
    # pay
    "salary",
    "compensation",
    "bonus",
    "payroll",
    "payslip",
    "pay slip",
    # HR cases
    "investigation",
    "harassment",  # also "harassed"; covers "harassment complaint" and "complaint about harassment"
    "disciplinary",
    "misconduct",
    "grievance",
    # health
    "medical condition",
    "health condition",
    "medical record",
    "diagnosis",
    "diagnosed",
    # secrets and money, when mentioned without pasting one
    "private key",
    "bank account",
    "bank details",
)

WORD_RE = re.compile(r"[^\W_]+")
_local = threading.local()


def _stemmer() -> Any:
    """One Snowball stemmer per thread (PyStemmer objects keep a cache and are not shared)."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def stems(text: str) -> list[str]:
    """The stemmed, lower-cased words of ``text``, in order."""
    words = WORD_RE.findall(text.lower())
    return list(_stemmer().stemWords(words)) if words else []


class PhraseMatcher:
    """Does any of the phrases occur, as consecutive stemmed words, in a stemmed text?"""

    def __init__(self, phrases: Iterable[str]) -> None:
        self._by_first: dict[str, list[tuple[str, ...]]] = {}
        for phrase in phrases:
            key = tuple(stems(phrase))
            if key and key not in self._by_first.get(key[0], []):
                self._by_first.setdefault(key[0], []).append(key)

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def search(self, text_stems: Sequence[str]) -> bool:
        for i, stem in enumerate(text_stems):
            for phrase in self._by_first.get(stem, ()):
                if tuple(text_stems[i : i + len(phrase)]) == phrase:
                    return True
        return False
