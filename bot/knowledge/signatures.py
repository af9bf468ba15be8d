"""Audience signatures: one short key per distinct access rule, for filtering in SQL.

PostgreSQL stores, beside every document and chunk, the sha256 hex of the canonical JSON
of the document's ``audiences`` (a list of lists; ``AccessScope.admits`` needs every list
to share an entry with the asker's keys). Retrieval computes in Python which signatures
an asker's scope admits and filters with ``signature = ANY(...)`` in the query itself, so
the access filter never depends on a post-filter alone.

Canonical means meaning-preserving normal form: entries inside a list are sorted and
de-duplicated, and so are the lists (``admits`` is an all-of-any-of rule, so neither
order nor repetition changes who may read). Two documents readable by the same people
therefore share a signature, which keeps the ``ANY(...)`` array small.

Fail closed: anything that is not a list of lists of strings raises
:class:`AudienceError` — a document whose audiences are missing or unreadable must never
be taken for a public one (an empty list, which admits everyone).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["AudienceError", "canonical", "signature", "signature_of_entry"]


class AudienceError(ValueError):
    """A document's audiences are missing or not a list of lists of strings."""


def canonical(audiences: Any) -> list[list[str]]:
    """The normal form of ``audiences`` (raises :class:`AudienceError` when malformed)."""
    if isinstance(audiences, str | bytes) or not isinstance(audiences, Iterable):
        raise AudienceError("audiences must be a list of lists")
    lists: set[tuple[str, ...]] = set()
    for audience in audiences:
        if isinstance(audience, str | bytes) or not isinstance(audience, Iterable):
            raise AudienceError("each audience must be a list of strings")
        entries = list(audience)  # an empty list admits nobody: kept as such
        if not all(isinstance(e, str) and e for e in entries):
            raise AudienceError("audience entries must be non-empty strings")
        lists.add(tuple(sorted(set(entries))))
    return [list(a) for a in sorted(lists)]


def signature(audiences: Any) -> str:
    """sha256 hex of the canonical JSON of ``audiences`` (see the module doc)."""
    text = json.dumps(canonical(audiences), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def signature_of_entry(entry: dict[str, Any]) -> str:
    """The signature of a docs.json entry; a missing ``audiences`` key is refused, never public."""
    if not isinstance(entry, dict) or "audiences" not in entry:
        raise AudienceError("the document has no audiences")
    return signature(entry["audiences"])
