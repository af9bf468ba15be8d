"""Slack user id → e-mail via ``users.info`` (scope ``users:read.email``), cached with a TTL.

Only the e-mail crosses into the core; groups and roles come from the core's directory.
Concurrent lookups for the same person share one API call. The user object's ``team_id``,
``enterprise_user.enterprise_id``, ``is_stranger``, ``is_bot``/``is_workflow_bot`` and
``deleted`` are kept too: the channel member check (``members.py``) needs them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Person:
    user_id: str
    email: str | None
    is_bot: bool = False
    team_id: str | None = None
    enterprise_id: str | None = None
    is_stranger: bool = False  # a Slack Connect user from another organization
    deleted: bool = False  # deactivated: cannot sign in


class SlackPeople:
    def __init__(
        self, *, ttl: float = 600.0, miss_ttl: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._miss_ttl = miss_ttl  # failed lookups are retried sooner
        self._clock = clock
        self._cache: dict[str, tuple[float, Person]] = {}
        self._pending: dict[str, asyncio.Future[Person]] = {}

    async def lookup(self, user_id: str, client: AsyncWebClient) -> Person:
        hit = self._cache.get(user_id)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        pending = self._pending.get(user_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Person] = asyncio.get_running_loop().create_future()
        self._pending[user_id] = future
        try:
            person, ttl = await self._fetch(user_id, client)
            self._cache[user_id] = (self._clock() + ttl, person)
            future.set_result(person)
            return person
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise, nobody logs "never retrieved"
            raise
        finally:
            self._pending.pop(user_id, None)

    async def email(self, user_id: str, client: AsyncWebClient) -> str | None:
        return (await self.lookup(user_id, client)).email

    async def _fetch(self, user_id: str, client: AsyncWebClient) -> tuple[Person, float]:
        try:
            resp = await client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("users.info failed for %s: %s", user_id, exc.response.get("error"))
            return Person(user_id, None), self._miss_ttl
        user = resp.get("user") or {}
        email = (user.get("profile") or {}).get("email")
        enterprise = user.get("enterprise_user") or {}
        person = Person(
            user_id=user_id,
            email=str(email).lower() if email else None,
            is_bot=bool(user.get("is_bot") or user.get("is_workflow_bot")),
            team_id=_text(user.get("team_id")),
            enterprise_id=_text(enterprise.get("enterprise_id") if isinstance(enterprise, dict) else None),
            is_stranger=bool(user.get("is_stranger")),
            deleted=user.get("deleted") is True,
        )
        return person, self._ttl if person.email else self._miss_ttl


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
