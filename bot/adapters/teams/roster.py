"""Who can read a Teams channel or group chat: the readers behind ``Message.channel_readers``.

The core posts an answer where it was asked only when it knows every reader; this module
finds them, and says why when it cannot (a ``ChannelReaders.unknown`` reason). No botbuilder
import: the roster arrives as plain ``TeamsChannelAccount`` dicts from a page function the
caller supplies (``turns`` pages the Bot Connector), so the rules here are tested on their own.

Whose roster (``scope``):

- a **standard channel** is readable by the whole team, so its readers are the team's
  members (``TeamsInfo.get_paged_team_members``: ``GET /v3/conversations/{teamId}/pagedmembers``);
- a channel whose ``channelData.channel.type`` is missing counts as standard only when it is
  the General channel (channel id = team id); any other is treated like the next item;
- a **private or shared channel** (``channelData.channel.type``) is not: a private channel is
  a subset of the team, a shared channel can hold people from other teams and tenants, and
  Microsoft documents partial (owners-only) rosters when the app is not added to the
  channel. We cannot list those readers exactly, so nothing is posted there ("unavailable");
- a **group chat** is its members (``TeamsInfo.get_paged_members``: the chat's ``/pagedmembers``).

Who counts (``readers_from``): everyone listed except the bot itself. A member of another
tenant (``tenantId``; federated chats and shared channels have them) or an anonymous user
(``userRole`` "anonymous") makes the conversation "external"; a member without a usable
e-mail, or another bot (ids "28:…", unless ``ignore_bot_members``), makes it "unresolved".
Guests (``userRole`` "guest") keep their e-mail: the core then decides what they may read.
More than ``max_channel_members`` makes it "too-large", and paging stops there.

Rosters are cached per team or chat for ``members_ttl_seconds``; questions asked at the same
time share one fetch; any ``conversationUpdate`` (membersAdded/membersRemoved, with eventType
teamMemberAdded/Removed, channelMemberAdded/Removed, channelShared/Unshared, …) drops the
cached roster of every team, channel and chat it names. A failed fetch is "unavailable" and
is not cached, so the next question tries again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.adapters.teams import inbound
from bot.core.types import ChannelReaders
from bot.settings_schema import Access, parse_section
from bot.store.conversations import BoundedMap

log = logging.getLogger(__name__)

Member = Mapping[str, Any]
Page = tuple[Sequence[Member], str | None]
"""One roster page: the members and the continuation token (None on the last page)."""
FetchPage = Callable[[str | None, int], Awaitable[Page]]
"""``(continuation_token, page_size) -> Page`` for the conversation being checked."""

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
ROLES = {"user", "guest"}  # plus "anonymous" (external); anything else is not understood
MIN_PAGE, MAX_PAGE = 50, 500  # Teams treats smaller page sizes as 50 and caps at 500


@dataclass(frozen=True)
class RosterSettings:
    """The ``[access]`` settings that concern rosters."""

    max_members: int = 500
    ttl_seconds: float = 120.0
    ignore_bots: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> RosterSettings:
        """From ``bot.settings.Settings``, checked by the settings schema; a missing key
        keeps its packaged default."""
        a = parse_section(Access, settings.section("access"), "access")
        return cls(
            max_members=a.max_channel_members,
            ttl_seconds=a.members_ttl_seconds,
            ignore_bots=a.ignore_bot_members,
        )

    @property
    def page_size(self) -> int:
        return max(MIN_PAGE, min(MAX_PAGE, self.max_members + 1))


@dataclass(frozen=True)
class Scope:
    """The roster that lists a conversation's readers: a team's, or a group chat's."""

    tenant: str
    conversation: str  # the id to page: the team id for channels, the chat id for group chats
    team: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.conversation)


def scope(activity: Mapping[str, Any]) -> Scope | None:
    """Whose roster says who reads where ``activity`` was posted; None when none can say."""
    tenant = inbound.tenant_id(activity)
    if not tenant:
        return None  # we compare every member's tenant with this one
    kind = inbound.conversation_kind(activity)
    data = _channel_data(activity)
    if kind == inbound.CHANNEL:
        team = _field(data, "team", "id")
        if not team or _channel_type(data, str(team)) != "standard":
            return None
        return Scope(tenant=tenant, conversation=str(team), team=True)
    if kind == inbound.GROUP:
        chat = str(_field(activity, "conversation", "id") or "").split(";", 1)[0]
        return Scope(tenant=tenant, conversation=chat, team=False) if chat else None
    return None


def _channel_type(data: Mapping[str, Any], team: str) -> str:
    """``channelData.channel.type`` in lower case. Without it, only the General channel is
    known to be standard: its id is the team's id. Any other channel might be private or
    shared (``type`` is optional in the Bot Framework's ``ChannelInfo``, and Microsoft warns
    apps not to assume that team membership equals channel membership), so it is "unknown"
    and its readers are unavailable: the answer goes to the asker privately."""
    declared = _field(data, "channel", "type")
    if declared is None or declared == "":
        return "standard" if _field(data, "channel", "id") == team else "unknown"
    return declared.strip().lower() if isinstance(declared, str) else "unknown"


def member_email(member: Member) -> str | None:
    """``email`` (the mailbox), else ``userPrincipalName`` when it is a plain address.

    The UPN is the sign-in name; in most tenants it is also the primary address, and it is
    all Teams gives for accounts without a mailbox. A guest's UPN
    (``name_domain#EXT#@tenant.onmicrosoft.com``) is nobody's address, so it does not count.
    """
    for field in ("email", "userPrincipalName"):
        value = str(member.get(field) or "").strip().lower()
        if EMAIL_RE.fullmatch(value) and "#ext#" not in value:
            return value
    return None


class _Tally:
    """Readers found so far while paging; ``unknown`` is set as soon as the answer is no."""

    def __init__(self, *, tenant: str, bot_id: str, settings: RosterSettings) -> None:
        self.tenant = tenant.lower()
        self.bot_id = bot_id
        self.settings = settings
        self.emails: set[str] = set()
        self.unknown = ""

    def add(self, members: Iterable[Member]) -> None:
        for member in members:
            self.unknown = self._reason(member)
            if self.unknown:
                return

    def _reason(self, member: Member) -> str:
        member_id = str(member.get("id") or "")
        if self.bot_id and member_id == self.bot_id:
            return ""  # the bot itself
        if member_id.startswith("28:"):  # another bot or app: reads what is posted, has no e-mail
            return "" if self.settings.ignore_bots else "unresolved"
        role = str(member.get("userRole") or "user").lower()
        if role == "anonymous":
            return "external"
        if role not in ROLES:
            return "unresolved"
        if str(member.get("tenantId") or "").lower() != self.tenant:
            return "external"
        email = member_email(member)
        if email is None:
            return "unresolved"
        self.emails.add(email)
        return "too-large" if len(self.emails) > self.settings.max_members else ""

    def readers(self) -> ChannelReaders:
        if self.unknown:
            return ChannelReaders.unavailable(self.unknown)
        return ChannelReaders(emails=frozenset(self.emails))


def readers_from(
    members: Iterable[Member], *, tenant: str, bot_id: str, settings: RosterSettings = RosterSettings()
) -> ChannelReaders:
    """The readers a complete roster stands for (see the module docstring for the rules)."""
    tally = _Tally(tenant=tenant, bot_id=bot_id, settings=settings)
    tally.add(members)
    return tally.readers()


async def read_roster(
    fetch: FetchPage, *, tenant: str, bot_id: str, settings: RosterSettings
) -> ChannelReaders:
    """Page through a roster, stopping as soon as the answer is known to be no."""
    tally = _Tally(tenant=tenant, bot_id=bot_id, settings=settings)
    token: str | None = None
    while True:
        members, token = await fetch(token, settings.page_size)
        tally.add(members)
        if tally.unknown or not token:
            return tally.readers()


class Rosters:
    """Cached readers per team or chat, one fetch at a time per conversation."""

    def __init__(
        self,
        *,
        settings: RosterSettings = RosterSettings(),
        clock: Callable[[], float] = time.monotonic,
        limit: int = 5000,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._cache: BoundedMap[tuple[str, str], tuple[float, ChannelReaders]] = BoundedMap(limit=limit)
        self._loading: dict[tuple[str, str], asyncio.Task[ChannelReaders]] = {}

    async def readers(self, where: Scope, fetch: FetchPage, *, bot_id: str) -> ChannelReaders:
        hit = self._cache.get(where.key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        task = self._loading.get(where.key)
        if task is None:
            task = asyncio.create_task(self._load(where, fetch, bot_id))
            self._loading[where.key] = task
            task.add_done_callback(lambda done: self._loaded(where.key, done))
        return await asyncio.shield(task)

    def invalidate(self, tenant: str | None, ids: Iterable[str]) -> None:
        """Forget the rosters of these team/chat ids; a fetch in flight is not cached either."""
        for conversation in ids:
            key = (tenant or "", conversation)
            self._cache.pop(key)
            self._loading.pop(key, None)

    async def _load(self, where: Scope, fetch: FetchPage, bot_id: str) -> ChannelReaders:
        try:
            return await read_roster(fetch, tenant=where.tenant, bot_id=bot_id, settings=self.settings)
        except Exception:
            log.warning("could not read the roster of %s", where.conversation, exc_info=True)
            return ChannelReaders.unavailable()

    def _loaded(self, key: tuple[str, str], task: asyncio.Task[ChannelReaders]) -> None:
        if self._loading.get(key) is not task:
            return  # invalidated while loading: the result may predate the change
        del self._loading[key]
        if task.cancelled() or task.exception() is not None:
            return
        readers = task.result()
        if readers.unknown != "unavailable":  # a failure is retried by the next question
            self._cache.put(key, (self._clock() + self.settings.ttl_seconds, readers))


def named_conversations(activity: Mapping[str, Any]) -> set[str]:
    """Every team, channel and chat id a ``conversationUpdate`` names (what to invalidate).

    Teams sends membership events with the team as the conversation (channelData.team) once
    the bot is installed, and with the chat for group chats.
    """
    data = _channel_data(activity)
    ids = {
        str(_field(activity, "conversation", "id") or "").split(";", 1)[0],
        str(_field(data, "team", "id") or ""),
        str(_field(data, "channel", "id") or ""),
    }
    return ids - {""}


def _field(data: Mapping[str, Any], outer: str, inner: str) -> Any:
    """``data[outer][inner]`` when both are there, else None (activities are untrusted JSON)."""
    found = data.get(outer)
    return found.get(inner) if isinstance(found, Mapping) else None


def _channel_data(activity: Mapping[str, Any]) -> Mapping[str, Any]:
    data = activity.get("channelData")
    return data if isinstance(data, Mapping) else {}
