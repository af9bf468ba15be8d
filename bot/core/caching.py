"""When an answer may be served from, or stored in, the answer cache.

The key (``bot.core.cachekey``) fingerprints the asker by the access entries that some
document of the department actually names, so people who see exactly the same documents
share entries and nobody else does. Storing re-checks the key after generation: a refresh
during the request could otherwise file an answer under a key that no longer describes
what it was built from.

Who reads the conversation is *not* part of the key: a hit is re-checked against the
current conversation's members (``Assistant._verdict``) from the audiences stored with the
answer, so an entry made in a DM can serve a channel only if that channel may see it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import Department
from bot.core.cachekey import cache_key
from bot.core.ports import AnswerCache, Retriever
from bot.core.types import AccessScope, Answer, Message, SourceChunk


class CacheGate:
    """Wraps the ``AnswerCache`` port with the keying and storing rules."""

    def __init__(self, *, cache: AnswerCache | None, retriever: Retriever) -> None:
        self._cache = cache
        self._retriever = retriever

    def key(self, query: str, dept: Department, scope: AccessScope, message: Message) -> str | None:
        if self._cache is None:
            return None
        version = self._retriever.index_version(dept.name)
        if version is None:
            return None
        relevant = scope.keys & self._retriever.audience_entries(dept.name)
        return cache_key(
            question=query,
            department=dept.name,
            access_keys=relevant,
            index_version=version,
            template=message.template or "",
            history=tuple(t.text for t in message.history),
            history_labels=tuple(t.label.label if t.label is not None else "" for t in message.history),
        )

    def get(self, key: str | None) -> Answer | None:
        if self._cache is None or key is None:
            return None
        return self._cache.get(key)

    def put(
        self,
        key: str | None,
        answer: Answer,
        *,
        query: str,
        dept: Department,
        scope: AccessScope,
        message: Message,
        chunks: Sequence[SourceChunk],
    ) -> None:
        """Store only when the key still describes what the answer was built from."""
        if self._cache is None or key is None:
            return
        if self.key(query, dept, scope, message) != key:
            return
        known = self._retriever.audience_entries(dept.name)
        if all(entry in known for c in chunks for level in c.audiences for entry in level):
            self._cache.put(key, answer)
