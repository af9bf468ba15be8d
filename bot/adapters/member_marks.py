"""What a replica does with the shared membership marks (``bot.store.member_marks``).

A ``MembershipWatch`` remembers, per conversation, the mark's version this replica's cached
member list was built under. Before an answer trusts a cached list, ``moved`` reads the
mark (one primary-key select, on a worker thread, never on the event loop): a higher version
means another replica saw a membership event, so the caller drops its cache and fetches the
list again. A membership event seen here is ``announce``d (the mark is bumped) so every
other replica does the same before its next channel answer.

Fail closed: when the mark cannot be read, ``moved`` raises ``MarksUnreadable`` and the
caller must not use a cached list (it answers the asker privately, as for any unknown
list). An announcement that fails is logged: this replica's own cache is already dropped,
and the others keep their list at most ``members_ttl_seconds`` (the single-replica case).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from bot.store.conversations import BoundedMap

log = logging.getLogger(__name__)

Run = Callable[..., Awaitable[Any]]
"""``run(fn, *args)``: call a blocking function off the event loop (``Runtime.quick``)."""


class Marks(Protocol):
    def bump(self, keys: Iterable[str]) -> dict[str, int]: ...
    def version(self, key: str) -> int: ...


class MarksUnreadable(Exception):
    """The shared mark could not be read: no cached member list may be trusted."""


class MembershipWatch:
    """Per replica: the mark versions its caches were built under (see the module text)."""

    def __init__(self, marks: Marks, *, run: Run | None = None, limit: int = 20000) -> None:
        self._marks = marks
        self._run: Run = run or asyncio.to_thread
        self._seen: BoundedMap[str, int] = BoundedMap(limit=limit)

    async def moved(self, key: str) -> bool:
        """True when the cached list for ``key`` may predate a membership change (another
        replica reported one, or this replica never looked); raises ``MarksUnreadable``."""
        try:
            version = int(await self._run(self._marks.version, key))
        except Exception as exc:  # anything: fail closed
            log.warning("membership mark unreadable (%s): member lists not trusted", type(exc).__name__)
            raise MarksUnreadable() from exc
        seen = self._seen.get(key)
        if seen is not None and version <= seen:
            return False
        self._seen.put(key, version)
        return True

    async def announce(self, keys: Iterable[str]) -> None:
        """Membership of ``keys`` changed here (the caller already dropped its own cache)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return
        try:
            found = await self._run(self._marks.bump, wanted)
        except Exception as exc:  # logged; never raised into the event listener
            log.warning(
                "could not share a membership change (%s): other replicas keep their member "
                "lists up to members_ttl_seconds",
                type(exc).__name__,
            )
            return
        for key, version in found.items():
            if self._seen.get(key) == version - 1:  # only our own bump since we last looked
                self._seen.put(key, version)


def watch_for(state: object, *, run: Run | None = None) -> MembershipWatch | None:
    """A watch when ``state`` (an adapter's chat state store) is shared PostgreSQL, else None."""
    from bot.store.member_marks import marks_for

    marks = marks_for(state)
    return MembershipWatch(marks, run=run) if marks is not None else None
