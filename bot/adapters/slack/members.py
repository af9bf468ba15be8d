"""Who can read a Slack conversation: ``conversations.info`` + paged ``conversations.members``
→ a ``ChannelReaders`` for the core's channel-safe rule. Never guessed: anything unknown
says why (``ChannelReaders.unknown``) and the answer goes to the asker only.

Per conversation:

1. ``conversations.info`` with ``include_num_members``. Slack Connect is refused here:
   ``is_ext_shared`` (shared with another organization), ``is_pending_ext_shared`` or
   ``pending_connected_team_ids`` (an invitation is out), and ``is_shared`` without
   ``is_org_shared`` (shared, but not within our own Enterprise organization) → "external".
   ``is_org_shared`` alone (an Enterprise Grid channel across workspaces of our own org)
   is not refused: its members are checked one by one like any other.
   ``is_private`` false (and not a group DM) → ``public``: the whole workspace can read it.
   ``num_members`` above ``max_channel_members`` (+1 for the bot) → "too-large" before a
   single member is paged.
2. ``conversations.members``, ``limit`` 200 per page (Slack recommends at most 200),
   following ``response_metadata.next_cursor`` until it is empty, and stopping as soon as
   the count passes the limit ("too-large") — a 10,000-member channel is never paged.
3. Each member id → ``SlackPeople.lookup`` (``users.info``, cached). The bot itself is
   skipped; deactivated accounts (``deleted``) cannot read and are skipped; other bots and
   apps make the list "unresolved" unless ``ignore_bot_members``; ``is_stranger``, or a
   ``team_id`` other than ours or none at all (unless the same Enterprise org) → "external";
   no e-mail → "unresolved".

Any Web API error (``channel_not_found``/``not_in_channel``, ``missing_scope``,
``fetch_members_failed``, ``ratelimited`` after the client's retries, ...) or network error
→ "unavailable". Results are cached per conversation for ``members_ttl_seconds`` (errors
are not cached); concurrent lookups share one fetch; ``member_joined_channel``,
``member_left_channel``, ``channel_shared``/``channel_unshared`` and ``channel_left``/
``group_left`` drop the entry. "Share in channel" asks with ``fresh=True`` (no cache).

Several replicas (``DEPTBOT_DATABASE_URL``): Slack sends each event to one replica, so the
one that gets it also bumps a shared mark (``bot.adapters.member_marks``), and every replica
reads the mark before trusting its cached list; an unreadable mark → "unavailable".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.member_marks import MarksUnreadable, MembershipWatch
from bot.adapters.slack.people import Person, SlackPeople
from bot.core.types import ChannelReaders
from bot.settings_schema import Access, parse_section

log = logging.getLogger(__name__)

PAGE = 200  # conversations.members page size: Slack recommends no more than 200
LOOKUPS = 8  # users.info calls in flight per conversation (Tier 4 method; the client retries 429s)
MEMBER_EVENTS = (
    "member_joined_channel",
    "member_left_channel",
    "channel_shared",
    "channel_unshared",
    "channel_left",
    "group_left",
)


@dataclass(frozen=True)
class MembersConfig:
    """The ``[access]`` settings that govern member checks (see ``bot/settings.toml``)."""

    max_members: int = 500
    ttl: float = 120.0
    ignore_bots: bool = False
    workspace_audience: tuple[str, ...] = ()  # who can browse public channels (access entries)

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> MembersConfig:
        """``settings.section("access")`` checked by the settings schema; ConfigError names the key."""
        a = parse_section(Access, section, "access")
        return cls(
            max_members=a.max_channel_members,
            ttl=a.members_ttl_seconds,
            ignore_bots=a.ignore_bot_members,
            workspace_audience=tuple(a.slack_workspace_audience),
        )


@dataclass(frozen=True)
class Home:
    """Where deptbot is installed, as bolt's context reports it for each request."""

    team_id: str | None = None
    enterprise_id: str | None = None
    bot_user_id: str | None = None
    bot_id: str | None = None  # our "B…" id (auth.test): tells our posts from webhooks' and other apps'

    @classmethod
    def of(cls, context: Any) -> Home:
        def text(name: str) -> str | None:
            value = getattr(context, name, None) if context is not None else None
            return value if isinstance(value, str) and value else None

        return cls(text("team_id"), text("enterprise_id"), text("bot_user_id"), text("bot_id"))


class _Unknown(Exception):
    """The member list cannot be trusted; ``why`` is a ``ChannelReaders.unknown`` reason."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class ChannelMembers:
    """``readers(channel, client, home)`` → ``ChannelReaders``, cached per conversation."""

    def __init__(
        self,
        *,
        people: SlackPeople,
        config: MembersConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        watch: MembershipWatch | None = None,
    ) -> None:
        """``watch``: the shared membership marks when replicas share PostgreSQL, else None."""
        self.config = config or MembersConfig()
        self._watch = watch
        self._people = people
        self._clock = clock
        self._cache: dict[str, tuple[float, ChannelReaders]] = {}
        self._pending: dict[str, asyncio.Future[ChannelReaders]] = {}
        self._generation: dict[str, int] = {}  # bumped by forget(): late results are not cached

    async def readers(
        self, channel: str, client: AsyncWebClient, home: Home, *, fresh: bool = False
    ) -> ChannelReaders:
        """Who can read ``channel`` now; ``fresh`` skips the cache (and any fetch in flight)."""
        if not fresh:
            if self._watch is not None:
                try:
                    if await self._watch.moved(_mark(channel)):  # another replica saw an event
                        self.forget(channel)
                except MarksUnreadable:
                    return ChannelReaders.unavailable("unavailable")
            hit = self._cache.get(channel)
            if hit is not None and hit[0] > self._clock():
                return hit[1]
            pending = self._pending.get(channel)
            if pending is not None:
                return await asyncio.shield(pending)
        generation = self._generation.get(channel, 0)
        future: asyncio.Future[ChannelReaders] = asyncio.get_running_loop().create_future()
        if not fresh:
            self._pending[channel] = future
        try:
            result = await self._fetch(channel, client, home)
            if result.unknown != "unavailable" and self._generation.get(channel, 0) == generation:
                self._cache[channel] = (self._clock() + self.config.ttl, result)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise, nobody logs "never retrieved"
            raise
        finally:
            if self._pending.get(channel) is future:
                del self._pending[channel]

    def forget(self, channel: str) -> None:
        """Membership changed: the next question fetches the list again."""
        self._generation[channel] = self._generation.get(channel, 0) + 1
        self._cache.pop(channel, None)
        self._pending.pop(channel, None)  # a fetch in flight may predate the change

    async def on_change(self, event: dict[str, Any]) -> None:
        """Bolt listener for ``MEMBER_EVENTS``."""
        channel = event.get("channel")
        if isinstance(channel, dict):  # some legacy events carry the conversation object
            channel = channel.get("id")
        if isinstance(channel, str) and channel:
            log.debug("%s in %s: member list dropped", event.get("type"), channel)
            self.forget(channel)
            if self._watch is not None:  # the other replicas did not get this event
                await self._watch.announce([_mark(channel)])

    # ── fetching ─────────────────────────────────────────────────────────────────────

    async def _fetch(self, channel: str, client: AsyncWebClient, home: Home) -> ChannelReaders:
        try:
            public = await self._conversation(channel, client)
            ids = await self._member_ids(channel, client, home)
            emails = await self._emails(ids, client, home)
        except _Unknown as unknown:
            log.info("members of %s not usable: %s", channel, unknown.why)
            return ChannelReaders.unavailable(unknown.why)
        except SlackApiError as exc:
            log.warning("members of %s unavailable: %s", channel, exc.response.get("error"))
            return ChannelReaders.unavailable("unavailable")
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("members of %s unavailable: %s", channel, type(exc).__name__)
            return ChannelReaders.unavailable("unavailable")
        stand_in = self.config.workspace_audience if public else ()
        return ChannelReaders(emails=frozenset(emails), public=public, stand_in=stand_in)

    async def _conversation(self, channel: str, client: AsyncWebClient) -> bool:
        """Check ``conversations.info``; True when the whole workspace can read it."""
        resp = await client.conversations_info(channel=channel, include_num_members=True)
        conv = resp.get("channel")
        if not isinstance(conv, Mapping):
            raise _Unknown("unavailable")
        pending = conv.get("is_pending_ext_shared") or conv.get("pending_connected_team_ids")
        if conv.get("is_ext_shared") or pending or (conv.get("is_shared") and not conv.get("is_org_shared")):
            raise _Unknown("external")
        count = conv.get("num_members")
        if isinstance(count, int) and not isinstance(count, bool) and count > self.config.max_members + 1:
            raise _Unknown("too-large")
        # Missing or odd flags count as public: then only a declared audience can stand for readers.
        private = conv.get("is_private") is True or conv.get("is_mpim") is True or conv.get("is_im") is True
        return not private

    async def _member_ids(self, channel: str, client: AsyncWebClient, home: Home) -> list[str]:
        ids: list[str] = []
        seen_cursors: set[str] = set()
        cursor: str | None = None
        while True:
            resp = await client.conversations_members(channel=channel, cursor=cursor, limit=PAGE)
            page = resp.get("members")
            if not isinstance(page, list):
                raise _Unknown("unavailable")
            ids += [m for m in page if isinstance(m, str) and m != home.bot_user_id]
            if len(set(ids)) > self.config.max_members:
                raise _Unknown("too-large")
            meta = resp.get("response_metadata")
            cursor = meta.get("next_cursor") if isinstance(meta, Mapping) else None
            if not cursor:
                return list(dict.fromkeys(ids))
            if not isinstance(cursor, str) or cursor in seen_cursors:  # a cursor that loops
                raise _Unknown("unavailable")
            seen_cursors.add(cursor)

    async def _emails(self, ids: list[str], client: AsyncWebClient, home: Home) -> set[str]:
        slots = asyncio.Semaphore(LOOKUPS)

        async def one(user_id: str) -> Person:
            async with slots:
                return await self._people.lookup(user_id, client)

        people = await asyncio.gather(*(one(u) for u in ids))
        emails: set[str] = set()
        problems: set[str] = set()
        for person in people:
            if person.deleted:
                continue  # a deactivated account cannot sign in to read anything
            if person.is_bot:
                if not self.config.ignore_bots:
                    problems.add("unresolved")
                continue
            if not _ours(person, home):
                problems.add("external")
            elif not person.email:
                problems.add("unresolved")
            else:
                emails.add(person.email)
        if problems:
            raise _Unknown("external" if "external" in problems else "unresolved")
        return emails


def _mark(channel: str) -> str:
    return f"slack:{channel}"


def _ours(person: Person, home: Home) -> bool:
    """A member of our organization: not a Slack Connect stranger, and from our workspace or,
    on Enterprise Grid, from our enterprise. Fail closed: the user object's ``team_id`` is not
    promised (Slack: "the composition of user objects can vary greatly", Slack Connect users
    differ), so a member whose workspace cannot be compared with ours counts as external,
    unless the same known enterprise vouches for them."""
    if person.is_stranger:
        return False
    if home.enterprise_id and person.enterprise_id == home.enterprise_id:
        return True
    return bool(person.team_id) and bool(home.team_id) and person.team_id == home.team_id
