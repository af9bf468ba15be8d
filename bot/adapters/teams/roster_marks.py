"""Rosters shared across replicas: ``roster.Rosters`` plus the membership marks.

Teams sends each ``conversationUpdate`` to one replica, while every replica caches rosters
for ``members_ttl_seconds``. With ``DEPTBOT_DATABASE_URL`` the replica that gets the event
also bumps the conversation's shared mark, and every replica reads the mark before trusting
a cached roster (``bot.adapters.member_marks``; an unreadable mark → "unavailable", so the
answer goes to the asker only). Kept apart from ``roster`` so its rules stay free of storage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from bot.adapters.member_marks import MarksUnreadable, MembershipWatch, watch_for
from bot.adapters.teams.roster import FetchPage, Rosters, RosterSettings, Scope
from bot.core.types import ChannelReaders

log = logging.getLogger(__name__)


def mark(tenant: str | None, conversation: str) -> str:
    return f"teams:{tenant or ''}:{conversation}"


class SharedRosters(Rosters):
    """``Rosters`` whose invalidations reach every replica (see the module text)."""

    def __init__(self, *, watch: MembershipWatch, settings: RosterSettings | None = None) -> None:
        super().__init__(settings=settings or RosterSettings())
        self._watch = watch
        self._announcing: set[asyncio.Task[None]] = set()

    async def readers(self, where: Scope, fetch: FetchPage, *, bot_id: str) -> ChannelReaders:
        try:
            if await self._watch.moved(mark(where.tenant, where.conversation)):
                super().invalidate(where.tenant, [where.conversation])
        except MarksUnreadable:
            return ChannelReaders.unavailable()
        return await super().readers(where, fetch, bot_id=bot_id)

    def invalidate(self, tenant: str | None, ids: Iterable[str]) -> None:
        """Drop here at once; tell the other replicas (the shared write runs off the loop)."""
        wanted = list(ids)
        super().invalidate(tenant, wanted)
        try:
            task = asyncio.get_running_loop().create_task(
                self._watch.announce([mark(tenant, c) for c in wanted])
            )
        except RuntimeError:  # no loop (never in the server): nobody else to tell from here
            log.warning("a roster change could not be shared with the other replicas")
            return
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def settled(self) -> None:
        """Wait for announcements in flight (tests; a clean shutdown)."""
        while self._announcing:
            await asyncio.gather(*list(self._announcing))


def rosters_for(settings: RosterSettings, state: Any) -> Rosters:
    """Shared rosters when the Teams state is in PostgreSQL (several replicas), else plain ones."""
    watch = watch_for(state)
    return Rosters(settings=settings) if watch is None else SharedRosters(watch=watch, settings=settings)
