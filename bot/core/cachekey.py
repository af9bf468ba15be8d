"""The answer-cache key: what must match for a cached answer to be reusable.

The asker's access keys are part of the key, so two people whose access differs never
share an entry; the index version is part of it, so a refresh invalidates by itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable

_SOFT = re.compile(r"[?!.,;:'\"“”‘’()\[\]{}]+")


def normalize_question(text: str) -> str:
    """Case, width, sentence punctuation and spacing do not make a different question.

    Only punctuation that never changes meaning is dropped: "meal > 50 EUR" and
    "meal < 50 EUR", "-5 %" and "5 %", "€50" and "$50" stay different questions.
    Decimal points and commas inside numbers stay too ("1.5" is not "15").
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"(?<=\d)[.,](?=\d)", lambda m: "\0" if m.group() == "." else "\1", text)
    text = _SOFT.sub(" ", text)
    text = text.replace("\0", ".").replace("\1", ",")
    return " ".join(text.split())


def access_fingerprint(keys: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]


def cache_key(
    *,
    question: str,
    department: str,
    access_keys: Iterable[str],
    index_version: str,
    template: str = "",
    history: tuple[str, ...] = (),
    history_labels: tuple[str, ...] = (),
) -> str:
    """``history_labels`` (one per history turn, "" when unlabelled) decide the answer's
    label, so an answer is not reused under a lower one; they join the key only when set."""
    parts: list[object] = [
        normalize_question(question),
        department,
        access_fingerprint(access_keys),
        index_version,
        template,
        [normalize_question(h) for h in history],
    ]
    if any(history_labels):
        parts.append(list(history_labels))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
