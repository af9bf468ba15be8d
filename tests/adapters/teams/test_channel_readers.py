"""Who may read a channel or group chat decides where an answer goes (issue 8, class 2).

End to end over HTTP against the fake Bot Connector, which serves the roster routes
botbuilder's ``TeamsInfo`` calls: ``/v3/conversations/{teamId}/pagedmembers`` for a team's
channels and ``/v3/conversations/{chatId}/pagedmembers`` for group chats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.adapters.teams.conftest import BOT, GROUP_CHAT, TEAM, TEAM_CHANNEL, TENANT, Harness, Posted, member
from tests.fakes import CANARIES

OTHER_TENANT = "0c6f7e8d-1111-4a2b-9c3d-4e5f6a7b8c9d"


def in_chat(posted: list[Posted], conversation: str) -> list[Posted]:
    return [p for p in posted if p.conversation.startswith(conversation) and p.body["type"] == "message"]


def texts(posted: list[Posted], conversation: str) -> list[str]:
    return [p.body.get("text", "") for p in in_chat(posted, conversation)]


def person(name: str, email: str | None, **extra: Any) -> dict[str, Any]:
    """A roster entry in the TeamsChannelAccount shape of ``/pagedmembers``."""
    entry: dict[str, Any] = {
        "id": f"29:{name}",
        "name": name.title(),
        "aadObjectId": f"aad-{name}",
        "givenName": name.title(),
        "surname": "Example",
        "tenantId": TENANT,
        "userRole": "user",
    }
    if email is not None:
        entry |= {"email": email, "userPrincipalName": email}
    entry.update(extra)
    return entry


def conversation_update(
    h: Harness, *, conversation: dict[str, Any], data: dict[str, Any], **change: Any
) -> dict[str, Any]:
    """A membership ``conversationUpdate`` as Teams sends it (docs: conversation events)."""
    body = h.activity("", mention=False)
    body.update(
        type="conversationUpdate",
        text=None,
        conversation={"isGroup": True, "tenantId": TENANT, **conversation},
        channelData={"tenant": {"id": TENANT}, **data},
        **change,
    )
    return body


def test_engineering_answer_with_a_non_engineer_in_the_channel_goes_one_to_one_with_the_reason(
    teams: Callable[..., None],
) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(
            h.activity("ask eng How do production deploys work?", user="bob", kind="channel")
        )
        (note,) = texts(posted, TEAM_CHANNEL)
        assert note.startswith("Bob,") and "private chat" in note
        assert "not everyone here may ask Engineering" in note
        for p in in_chat(posted, TEAM_CHANNEL):
            assert all(canary not in str(p.body) for canary in CANARIES.values())
        preface, answer = texts(posted, "a:private-29:bob")
        assert "How do production deploys work?" in preface
        assert "not everyone here may ask Engineering" in preface
        assert "Tuesday to Thursday" in answer
        assert h.connector.roster_calls[0] == (TEAM, None)  # the team's roster, not the thread

    teams(scenario)


def test_an_engineering_channel_of_engineers_gets_the_answer(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.rosters[TEAM] = [member("bob")]
        posted = await h.ask(
            h.activity("ask eng How do production deploys work?", user="bob", kind="channel")
        )
        (card,) = in_chat(posted, TEAM_CHANNEL)
        assert "Tuesday to Thursday" in str(card.body["attachments"][0]["content"])
        assert h.connector.created == []

    teams(scenario)


def test_a_group_chat_where_everyone_may_read_gets_the_answer(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.rosters[GROUP_CHAT].append(dict(BOT, tenantId=TENANT))  # the bot itself is listed too
        posted = await h.ask(h.activity("How many vacation days do I get?", kind="groupChat"))
        (reply,) = texts(posted, GROUP_CHAT)
        assert "25 days" in reply
        assert h.connector.created == []
        # four people and the bot, two per page: every page was read
        assert h.connector.roster_calls == [(GROUP_CHAT, None), (GROUP_CHAT, "2"), (GROUP_CHAT, "4")]

    teams(scenario)


@pytest.mark.parametrize(
    "stranger",
    [
        person("eve", "eve@example.com", tenantId=OTHER_TENANT),  # same domain, another tenant
        {"id": "29:anon", "name": "Anon1 (Guest)", "tenantId": TENANT, "userRole": "anonymous"},
    ],
    ids=["other-tenant", "anonymous"],
)
@pytest.mark.parametrize("kind", ["channel", "groupChat"])
def test_someone_from_outside_the_tenant_means_private(
    teams: Callable[..., None], stranger: dict[str, Any], kind: str
) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.rosters[TEAM if kind == "channel" else GROUP_CHAT].append(stranger)
        posted = await h.ask(h.activity("How many vacation days do I get?", kind=kind))
        where = TEAM_CHANNEL if kind == "channel" else GROUP_CHAT
        (note,) = texts(posted, where)
        assert "people from outside the organization are in this conversation" in note
        assert all("25 days" not in str(p.body) for p in in_chat(posted, where))
        assert any("25 days" in t for t in texts(posted, "a:private-29:alice"))

    teams(scenario)


@pytest.mark.parametrize("status", [500, 403, 429])
def test_a_roster_error_means_private(teams: Callable[..., None], status: int) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.roster_status = status
        posted = await h.ask(h.activity("How many vacation days do I get?", kind="channel"))
        (note,) = texts(posted, TEAM_CHANNEL)
        assert "I couldn't check who is in this conversation" in note
        assert "25 days" not in str([p.body for p in in_chat(posted, TEAM_CHANNEL)])
        assert any("25 days" in t for t in texts(posted, "a:private-29:alice"))

    teams(scenario)


def test_a_member_added_to_the_team_invalidates_the_cached_roster(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        first = await h.ask(h.activity("How many vacation days do I get?", kind="channel"))
        assert (
            len(in_chat(first, TEAM_CHANNEL)) == 1 and "attachments" in in_chat(first, TEAM_CHANNEL)[0].body
        )
        calls = len(h.connector.roster_calls)
        h.connector.rosters[TEAM].append(member("mallory"))  # may not ask HR (not @example.com)
        cached = await h.ask(h.activity("How many sick days?", kind="channel"))
        assert "attachments" in in_chat(cached, TEAM_CHANNEL)[0].body, "served from the cached roster"
        assert len(h.connector.roster_calls) == calls
        # Teams: after installation, membership events name the team as the conversation
        event = conversation_update(
            h,
            conversation={"conversationType": "channel", "id": TEAM},
            data={"team": {"id": TEAM}, "eventType": "teamMemberAdded"},
            membersAdded=[{"id": "29:mallory", "aadObjectId": "aad-mallory"}],
        )
        assert await h.ask(event) == []  # nothing is posted for someone else joining
        after = await h.ask(h.activity("How many vacation days do I get?", kind="channel"))
        (note,) = texts(after, TEAM_CHANNEL)
        assert "not everyone here may ask Human Resources" in note
        assert len(h.connector.roster_calls) > calls

    teams(scenario)


def test_a_member_removed_from_a_group_chat_invalidates_the_cached_roster(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.rosters[GROUP_CHAT].append(member("mallory"))
        first = await h.ask(h.activity("How many vacation days do I get?", kind="groupChat"))
        assert "not everyone here may ask Human Resources" in texts(first, GROUP_CHAT)[0]
        h.connector.rosters[GROUP_CHAT].pop()
        event = conversation_update(
            h,
            conversation={"conversationType": "groupChat", "id": GROUP_CHAT},
            data={},
            membersRemoved=[{"id": "29:mallory", "aadObjectId": "aad-mallory"}],
        )
        await h.ask(event)
        after = await h.ask(h.activity("How many vacation days do I get?", kind="groupChat"))
        assert "25 days" in texts(after, GROUP_CHAT)[0]

    teams(scenario)


def test_too_many_members_means_private_without_reading_the_whole_roster(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.rosters[TEAM] += [person(f"p{i}", f"p{i}@example.com") for i in range(8)]  # 12 people
        posted = await h.ask(h.activity("How many vacation days do I get?", kind="channel"))
        (note,) = texts(posted, TEAM_CHANNEL)
        assert "this conversation has too many members for me to check" in note
        # two per page: 4 people > 3 after the second page, so the other four pages are never read
        assert h.connector.roster_calls == [(TEAM, None), (TEAM, "2")]

    teams(scenario, access={"max_channel_members": 3})


@pytest.mark.parametrize("channel_type", ["private", "shared"])
def test_private_and_shared_channels_are_not_read_as_the_team(
    teams: Callable[..., None], channel_type: str
) -> None:
    """Their readers are a subset of the team (private) or people outside it (shared)."""

    async def scenario(h: Harness) -> None:
        body = h.activity("How many vacation days do I get?", kind="channel")
        body["channelData"]["channel"]["type"] = channel_type
        posted = await h.ask(body)
        (note,) = texts(posted, TEAM_CHANNEL)
        assert "I couldn't check who is in this conversation" in note
        assert h.connector.roster_calls == []

    teams(scenario)


@pytest.mark.parametrize(
    ("entry", "public"),
    [
        (person("gus", "dave@example.com", userRole="guest"), True),  # a guest keeps their e-mail
        (person("gina", "gina@gmail.test", userRole="guest"), False),  # … and the core says no
        (person("upn", None, userPrincipalName="dave@example.com"), True),  # no mail: the UPN
        (person("ext", None, userPrincipalName="gina_gmail.test#EXT#@contoso.onmicrosoft.com"), False),
        ({"id": "28:other-bot", "name": "Polly", "tenantId": TENANT}, False),  # another bot
    ],
    ids=["guest-allowed", "guest-not-allowed", "upn", "guest-upn", "other-bot"],
)
def test_each_member_needs_a_usable_email(
    teams: Callable[..., None], entry: dict[str, Any], public: bool
) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.rosters[GROUP_CHAT].append(entry)
        posted = await h.ask(h.activity("How many vacation days do I get?", kind="groupChat"))
        (reply,) = texts(posted, GROUP_CHAT)
        assert ("25 days" in reply) is public

    teams(scenario)


def test_other_bots_can_be_ignored_by_setting(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.rosters[GROUP_CHAT].append({"id": "28:other-bot", "name": "Polly", "tenantId": TENANT})
        posted = await h.ask(h.activity("How many vacation days do I get?", kind="groupChat"))
        assert "25 days" in texts(posted, GROUP_CHAT)[0]

    teams(scenario, access={"ignore_bot_members": True})


def test_questions_asked_together_share_one_roster_fetch(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        before = len(h.connector.posted)
        statuses = await asyncio.gather(
            *(
                h.post(h.activity(q, kind="groupChat"))
                for q in ("How many vacation days?", "How many sick days?")
            )
        )
        assert [s for s, _ in statuses] == [202, 202]
        await h.settle()
        assert len(texts(h.connector.posted[before:], GROUP_CHAT)) == 2
        assert h.connector.roster_calls == [(GROUP_CHAT, None), (GROUP_CHAT, "2")]

    teams(scenario)


def test_the_askers_address_follows_the_same_rule(teams: Callable[..., None], audit: Any) -> None:
    """A guest without a mailbox has only a #EXT# sign-in name, which is nobody's address."""

    async def scenario(h: Harness) -> None:
        h.connector.members["29:gina"] = person(
            "gina", None, userRole="guest", userPrincipalName="hank_example.com#EXT#@example.com"
        )
        posted = await h.ask(h.activity("How many vacation days do I get?", user="gina"))
        assert "25 days" not in posted[-1].body["text"]
        assert (
            audit.entries[-1].decision == "denied"
            and audit.entries[-1].user != "hank_example.com#ext#@example.com"
        )

    teams(scenario)


def test_when_the_asker_cannot_be_reached_the_chat_still_learns_why_and_nothing_else(
    teams: Callable[..., None],
) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.fail_create = True
        h.connector.rosters[GROUP_CHAT].append(member("mallory"))
        posted = await h.ask(h.activity("How many vacation days do I get?", kind="groupChat"))
        (line,) = texts(posted, GROUP_CHAT)
        assert "not everyone here may ask Human Resources" in line and "couldn't reach you privately" in line
        assert "25 days" not in str([p.body for p in posted])

    teams(scenario)
