"""Teams member id → e-mail, with a time-limited cache.

Teams activities carry an opaque user id and an Entra object id, never an e-mail, so the
adapter asks the Bot Connector for the member record (``GET /v3/conversations/{id}/members/
{userId}``, what ``TeamsInfo.get_member`` calls; see ``turns._email``) and caches the answer:
people ask several questions in a row, and a lookup costs a round trip.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from bot.store.conversations import BoundedMap

Lookup = Callable[[], Awaitable[str | None]]


class MemberEmails:
    """(tenant, user) → e-mail (lower case), cached for ``ttl`` seconds; misses are cached briefly."""

    def __init__(self, *, ttl: float = 3600.0, miss_ttl: float = 60.0, limit: int = 20000) -> None:
        self._ttl = ttl
        self._miss_ttl = miss_ttl
        self._cache: BoundedMap[tuple[str, str], tuple[float, str | None]] = BoundedMap(limit=limit)

    async def email(self, tenant: str | None, user: str, lookup: Lookup) -> str | None:
        key = (tenant or "", user)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await lookup()
        email = found.strip().lower() if found and "@" in found else None
        self._cache.put(key, (now + (self._ttl if email else self._miss_ttl), email))
        return email
