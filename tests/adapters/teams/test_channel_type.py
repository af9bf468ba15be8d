"""A channel message without ``channelData.channel.type`` (reviewer R2, finding 6).

``type`` is optional in the Bot Framework's ``ChannelInfo`` (id, name, type), and Microsoft
tells apps not to assume that team membership equals channel membership: a private channel
is a subset of the team, a shared one holds people from other teams and tenants. So a
missing type proves nothing, except for the General channel, whose id is the team's id.
Anywhere else the readers are "unavailable" and the answer goes to the asker alone.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.adapters.teams.roster import Scope, scope
from tests.adapters.teams.conftest import TEAM, TEAM_CHANNEL, TENANT, Harness, activity

URL = "http://127.0.0.1:1/"


def untyped(body: dict, channel: str = TEAM_CHANNEL) -> dict:
    body["channelData"]["channel"] = {"id": channel}  # as some payloads arrive: no "type"
    return body


def test_an_untyped_channel_other_than_general_has_no_trusted_roster() -> None:
    assert scope(untyped(activity("hi", kind="channel", service_url=URL))) is None


def test_the_untyped_general_channel_is_read_as_its_team() -> None:
    body = untyped(activity("hi", kind="channel", service_url=URL), channel=TEAM)
    assert scope(body) == Scope(tenant=TENANT, conversation=TEAM, team=True)


@pytest.mark.parametrize("value", [{"x": 1}, 3, ["standard"]], ids=["object", "number", "list"])
def test_a_malformed_type_is_not_standard(value: object) -> None:
    body = activity("hi", kind="channel", service_url=URL)
    body["channelData"]["channel"]["type"] = value
    assert scope(body) is None


def test_an_untyped_channel_gets_the_answer_privately(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(untyped(h.activity("How many vacation days do I get?", kind="channel")))
        channel = [
            p.body.get("text", "")
            for p in posted
            if p.conversation.startswith(TEAM_CHANNEL) and p.body.get("type") == "message"
        ]
        assert len(channel) == 1 and "I couldn't check who is in this conversation" in channel[0]
        assert h.connector.roster_calls == []
        assert any("25 days" in str(p.body) for p in posted if p.conversation.startswith("a:private-"))

    teams(scenario)


def test_the_untyped_general_channel_still_gets_the_answer(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        body = untyped(h.activity("How many vacation days do I get?", kind="channel"), channel=TEAM)
        posted = await h.ask(body)
        assert any("25 days" in str(p.body) for p in posted if p.conversation.startswith(TEAM_CHANNEL))
        assert h.connector.roster_calls and h.connector.roster_calls[0][0] == TEAM

    teams(scenario)
