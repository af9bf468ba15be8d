"""The roster rules and cache on their own: plain roster dicts in, ``ChannelReaders`` out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.teams.roster import (
    Page,
    Rosters,
    RosterSettings,
    Scope,
    member_email,
    named_conversations,
    read_roster,
    readers_from,
    scope,
)
from bot.core.types import Answer, ChannelReaders, Classification
from bot.errors import ConfigError
from bot.settings import Settings
from bot.store.conversations import History
from tests.adapters.teams.conftest import BOT, GROUP_CHAT, TEAM, TEAM_CHANNEL, TENANT, activity, member

URL = "http://127.0.0.1:1/"
WHERE = Scope(tenant=TENANT, conversation=TEAM, team=True)


def people(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"29:p{i}", "email": f"p{i}@example.com", "tenantId": TENANT, "userRole": "user"}
        for i in range(n)
    ]


# ── whose roster ───────────────────────────────────────────────────────────────────────


def test_a_standard_channel_is_read_as_its_team() -> None:
    where = scope(activity("hi", kind="channel", service_url=URL))
    assert where == Scope(tenant=TENANT, conversation=TEAM, team=True)


@pytest.mark.parametrize("channel_type", ["private", "shared", "somethingNew"])
def test_other_channel_types_have_no_trusted_roster(channel_type: str) -> None:
    body = activity("hi", kind="channel", service_url=URL)
    body["channelData"]["channel"]["type"] = channel_type
    assert scope(body) is None


def test_an_explicit_standard_channel_and_a_group_chat() -> None:
    body = activity("hi", kind="channel", service_url=URL)
    body["channelData"]["channel"]["type"] = "standard"
    assert scope(body) == WHERE
    chat = scope(activity("hi", kind="groupChat", service_url=URL))
    assert chat == Scope(tenant=TENANT, conversation=GROUP_CHAT, team=False)


def test_no_roster_without_a_team_or_a_tenant() -> None:
    body = activity("hi", kind="channel", service_url=URL)
    del body["channelData"]["team"]
    assert scope(body) is None
    body = activity("hi", kind="groupChat", service_url=URL)
    body["conversation"].pop("tenantId")
    body["channelData"].pop("tenant")
    assert scope(body) is None
    assert scope(activity("hi", service_url=URL)) is None  # a personal chat


def test_membership_events_name_the_team_the_channel_and_the_chat() -> None:
    body = activity("", kind="channel", service_url=URL)
    assert named_conversations(body) == {TEAM, TEAM_CHANNEL}
    assert named_conversations(activity("", kind="groupChat", service_url=URL)) == {GROUP_CHAT}


# ── who counts ─────────────────────────────────────────────────────────────────────────


def test_readers_are_the_members_e_mails_without_the_bot() -> None:
    roster = [member("alice"), member("bob"), dict(BOT, tenantId=TENANT)]
    found = readers_from(roster, tenant=TENANT, bot_id=BOT["id"])
    assert found == ChannelReaders(emails=frozenset({"alice@example.com", "bob@example.com"}))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tenantId": "0c6f7e8d-1111-4a2b-9c3d-4e5f6a7b8c9d"}, "external"),
        ({"tenantId": None}, "external"),
        ({"userRole": "anonymous", "email": None, "userPrincipalName": None}, "external"),
        ({"userRole": "somethingNew"}, "unresolved"),
        ({"email": None, "userPrincipalName": None}, "unresolved"),
        ({"id": "28:another-bot"}, "unresolved"),
    ],
)
def test_one_member_that_cannot_be_trusted_makes_the_roster_unknown(
    change: dict[str, Any], reason: str
) -> None:
    stranger = {**member("alice"), **change}
    found = readers_from([member("bob"), stranger], tenant=TENANT, bot_id=BOT["id"])
    assert found == ChannelReaders.unavailable(reason)


def test_guests_keep_their_e_mail_and_other_bots_can_be_ignored() -> None:
    guest = {**member("alice"), "userRole": "guest"}
    bot = {"id": "28:another-bot", "name": "Polly", "tenantId": TENANT}
    found = readers_from(
        [guest, bot], tenant=TENANT, bot_id=BOT["id"], settings=RosterSettings(ignore_bots=True)
    )
    assert found.emails == frozenset({"alice@example.com"}) and not found.unknown


@pytest.mark.parametrize(
    ("entry", "email"),
    [
        (
            {"email": "Larry.Brown@fabrikam.com", "userPrincipalName": "labrown@fabrikam.com"},
            "larry.brown@fabrikam.com",
        ),
        ({"userPrincipalName": "labrown@fabrikam.com"}, "labrown@fabrikam.com"),
        ({"email": "not an address", "userPrincipalName": "labrown@fabrikam.com"}, "labrown@fabrikam.com"),
        ({"userPrincipalName": "gina_gmail.com#EXT#@fabrikam.onmicrosoft.com"}, None),
        ({"userPrincipalName": "labrown"}, None),
        ({}, None),
    ],
)
def test_member_email_prefers_the_mailbox_then_a_plain_upn(entry: dict[str, Any], email: str | None) -> None:
    assert member_email(entry) == email


# ── paging ─────────────────────────────────────────────────────────────────────────────


class Pages:
    """A roster served two members at a time, recording the tokens asked for."""

    def __init__(self, roster: list[dict[str, Any]], *, per_page: int = 2, fail: bool = False) -> None:
        self.roster, self.per_page, self.fail = roster, per_page, fail
        self.calls: list[tuple[str | None, int]] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, token: str | None, size: int) -> Page:
        self.calls.append((token, size))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise OSError("connector down")
        start = int(token or 0)
        end = start + self.per_page
        return self.roster[start:end], (str(end) if end < len(self.roster) else None)


def test_paging_reads_every_page_and_asks_for_a_page_that_fits_the_limit() -> None:
    pages = Pages(people(5))
    found = asyncio.run(read_roster(pages, tenant=TENANT, bot_id="", settings=RosterSettings(max_members=80)))
    assert len(found.emails) == 5
    assert pages.calls == [(None, 81), ("2", 81), ("4", 81)]


def test_paging_stops_once_the_limit_is_passed() -> None:
    pages = Pages(people(20))
    found = asyncio.run(read_roster(pages, tenant=TENANT, bot_id="", settings=RosterSettings(max_members=3)))
    assert found == ChannelReaders.unavailable("too-large")
    assert [token for token, _ in pages.calls] == [None, "2"]
    assert pages.calls[0][1] == 50  # Teams' smallest page


def test_paging_stops_at_the_first_member_that_cannot_be_trusted() -> None:
    roster = [*people(2), {"id": "29:anon", "userRole": "anonymous", "tenantId": TENANT}, *people(10)]
    pages = Pages(roster)
    found = asyncio.run(read_roster(pages, tenant=TENANT, bot_id="", settings=RosterSettings()))
    assert found.unknown == "external" and len(pages.calls) == 2


# ── the cache ──────────────────────────────────────────────────────────────────────────


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_questions_at_the_same_time_share_one_fetch() -> None:
    async def run() -> None:
        rosters = Rosters()
        pages = Pages(people(3))
        pages.gate = asyncio.Event()
        waiting = [asyncio.create_task(rosters.readers(WHERE, pages, bot_id="")) for _ in range(5)]
        await asyncio.sleep(0)
        pages.gate.set()
        results = await asyncio.gather(*waiting)
        assert len({r.emails for r in results}) == 1 and len(results[0].emails) == 3
        assert [token for token, _ in pages.calls] == [None, "2"]  # one roster read, two pages

    asyncio.run(run())


def test_the_roster_is_trusted_for_the_ttl_then_read_again() -> None:
    async def run() -> None:
        clock = Clock()
        rosters = Rosters(settings=RosterSettings(ttl_seconds=120), clock=clock)
        pages = Pages(people(1))
        await rosters.readers(WHERE, pages, bot_id="")
        clock.now += 119
        await rosters.readers(WHERE, pages, bot_id="")
        assert len(pages.calls) == 1
        clock.now += 2
        pages.roster = people(2)
        again = await rosters.readers(WHERE, pages, bot_id="")
        assert len(pages.calls) == 2 and len(again.emails) == 2

    asyncio.run(run())


def test_a_failed_fetch_is_unavailable_and_not_cached() -> None:
    async def run() -> None:
        rosters = Rosters()
        pages = Pages(people(2), fail=True)
        assert await rosters.readers(WHERE, pages, bot_id="") == ChannelReaders.unavailable()
        pages.fail = False
        assert len((await rosters.readers(WHERE, pages, bot_id="")).emails) == 2

    asyncio.run(run())


def test_invalidation_drops_the_cache_and_a_fetch_in_flight() -> None:
    async def run() -> None:
        rosters = Rosters()
        pages = Pages(people(1))
        await rosters.readers(WHERE, pages, bot_id="")
        rosters.invalidate(TENANT, {TEAM})
        pages.gate = asyncio.Event()
        in_flight = asyncio.create_task(rosters.readers(WHERE, pages, bot_id=""))
        await asyncio.sleep(0)
        rosters.invalidate(TENANT, {TEAM})  # someone joined while the roster was being read
        pages.gate.set()
        await in_flight
        pages.roster = people(2)
        assert len((await rosters.readers(WHERE, pages, bot_id="")).emails) == 2
        assert len(pages.calls) == 3
        rosters.invalidate("another-tenant", {TEAM})  # another tenant's event changes nothing here
        await rosters.readers(WHERE, pages, bot_id="")
        assert len(pages.calls) == 3

    asyncio.run(run())


# ── settings ───────────────────────────────────────────────────────────────────────────


def settings_with(tmp_path: Path, access: dict[str, Any]) -> Settings:
    return Settings(departments_dir=tmp_path, state_dir=tmp_path, file={"access": access})


def test_settings_come_from_the_access_table(tmp_path: Path) -> None:
    assert RosterSettings.from_settings(settings_with(tmp_path, {})) == RosterSettings()
    shipped = RosterSettings.from_settings(Settings.load(departments=tmp_path, state=tmp_path, env={}))
    assert shipped == RosterSettings(max_members=500, ttl_seconds=120.0, ignore_bots=False)
    custom = {"max_channel_members": 40, "members_ttl_seconds": 5, "ignore_bot_members": True}
    assert RosterSettings.from_settings(settings_with(tmp_path, custom)) == RosterSettings(40, 5.0, True)


@pytest.mark.parametrize(
    ("access", "field"),
    [
        ({"max_channel_members": 0}, "access.max_channel_members"),
        ({"max_channel_members": "500"}, "access.max_channel_members"),
        ({"members_ttl_seconds": -1}, "access.members_ttl_seconds"),
        ({"ignore_bot_members": "yes"}, "access.ignore_bot_members"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, access: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        RosterSettings.from_settings(settings_with(tmp_path, access))
    assert field in str(err.value)


# ── labelled history ───────────────────────────────────────────────────────────────────


def test_history_records_an_answer_with_its_label() -> None:
    history = History(turns=4)
    answer = Answer(
        text="The allowance is 7,500 dollars [1].",
        request_id="r1",
        classification=Classification.CONFIDENTIAL,
    )
    history.add_answer(("conv", "alice"), "What is the relocation allowance?", answer)
    user, assistant = history.get(("conv", "alice"))
    assert (user.role, user.label) == ("user", None)
    assert (assistant.text, assistant.label) == (answer.text, Classification.CONFIDENTIAL)
