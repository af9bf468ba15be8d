"""``ChannelMembers`` on its own against the stub Web API: one fetch for concurrent askers,
the TTL, ``fresh`` for share clicks, events that drop an entry, settings validation, and
the manifests asking for exactly the scopes and events it needs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.http import build_app
from bot.adapters.slack.members import MEMBER_EVENTS, ChannelMembers, Home, MembersConfig
from bot.adapters.slack.people import SlackPeople
from bot.adapters.slack.stub import BOT_USER_ID, SlackStub, StubChannel
from bot.core.pipeline import Assistant
from bot.core.types import ChannelReaders
from bot.errors import ConfigError
from bot.settings import Settings
from tests.adapters.slack.conftest import USERS

HOME = Home(team_id="T1", bot_user_id=BOT_USER_ID)
MANIFESTS = Path(__file__).resolve().parents[3] / "manifest" / "slack"


def with_stub(scenario: Callable[[SlackStub, AsyncWebClient], Awaitable[None]], **stub_kwargs: Any) -> None:
    async def main() -> None:
        channels = {"C1": StubChannel(members=["UALICE", "UHANK", BOT_USER_ID])}
        stub = await SlackStub(users=USERS, channels=channels, **stub_kwargs).start()
        client = AsyncWebClient(token="xoxb-test", base_url=stub.api_url)
        try:
            await scenario(stub, client)
        finally:
            await stub.stop()

    asyncio.run(main())


def test_concurrent_questions_share_one_fetch_and_the_ttl_holds() -> None:
    now = [0.0]

    async def scenario(stub: SlackStub, client: AsyncWebClient) -> None:
        members = ChannelMembers(people=SlackPeople(), config=MembersConfig(ttl=120), clock=lambda: now[0])
        results = await asyncio.gather(*(members.readers("C1", client, HOME) for _ in range(5)))
        expected = ChannelReaders(emails=frozenset({"alice@example.com", "hank@example.com"}))
        assert set(results) == {expected}
        assert len(stub.to("conversations.info")) == 1 and len(stub.to("conversations.members")) == 1
        now[0] = 119.0
        await members.readers("C1", client, HOME)
        assert len(stub.to("conversations.members")) == 1
        now[0] = 121.0
        await members.readers("C1", client, HOME)
        assert len(stub.to("conversations.members")) == 2
        await members.readers("C1", client, HOME, fresh=True)  # a share click: never the cache
        assert len(stub.to("conversations.members")) == 3

    with_stub(scenario)


def test_events_drop_the_entry_and_a_fetch_in_flight_is_not_cached() -> None:
    async def scenario(stub: SlackStub, client: AsyncWebClient) -> None:
        members = ChannelMembers(people=SlackPeople())
        first = asyncio.create_task(members.readers("C1", client, HOME))
        await asyncio.sleep(0)  # the fetch has started
        stub.channels["C1"].members.append("UGRACE")
        await members.on_change({"type": "member_joined_channel", "channel": "C1", "user": "UGRACE"})
        await first  # it may or may not have seen grace; it must not be cached either way
        after = await members.readers("C1", client, HOME)
        assert "grace@example.com" in after.emails
        await members.on_change({"type": "group_left", "channel": "C1"})
        await members.on_change({"type": "channel_left", "channel": {"id": "C1"}})  # object form
        await members.on_change({"type": "member_left_channel"})  # no channel: ignored
        await members.readers("C1", client, HOME)
        assert len(stub.to("conversations.members")) == 3

    with_stub(scenario)


def test_api_errors_are_not_cached() -> None:
    async def scenario(stub: SlackStub, client: AsyncWebClient) -> None:
        members = ChannelMembers(people=SlackPeople())
        assert (await members.readers("C1", client, HOME)).unknown == "unavailable"
        stub.errors.clear()
        assert (await members.readers("C1", client, HOME)).emails  # asked again, and it worked

    with_stub(scenario, errors={"conversations.members": "fetch_members_failed"})


def test_unknown_channel_and_an_org_shared_channel() -> None:
    async def scenario(stub: SlackStub, client: AsyncWebClient) -> None:
        members = ChannelMembers(people=SlackPeople())
        assert (await members.readers("C404", client, HOME)).unknown == "unavailable"
        # Shared between workspaces of our own Enterprise org: checked member by member.
        stub.users["UOTHERWS"] = "olga@example.com"
        stub.profiles["UOTHERWS"] = {"team_id": "T2", "enterprise_user": {"enterprise_id": "E1"}}
        stub.channels["CORG"] = StubChannel(members=["UALICE", "UOTHERWS", BOT_USER_ID], is_org_shared=True)
        grid = Home(team_id="T1", enterprise_id="E1", bot_user_id=BOT_USER_ID)
        readers = await members.readers("CORG", client, grid)
        assert readers.unknown == "" and readers.emails == {"alice@example.com", "olga@example.com"}
        members.forget("CORG")
        assert (await members.readers("CORG", client, HOME)).unknown == "external"  # no enterprise known
        # A deactivated member cannot read: skipped rather than unresolved.
        stub.profiles["UGONE"] = {"deleted": True}
        stub.channels["CGONE"] = StubChannel(members=["UALICE", "UGONE", BOT_USER_ID])
        gone = await members.readers("CGONE", client, HOME)
        assert gone.unknown == "" and gone.emails == {"alice@example.com"}

    with_stub(scenario)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"max_channel_members": 0}, "max_channel_members"),
        ({"max_channel_members": "500"}, "max_channel_members"),
        ({"members_ttl_seconds": -1}, "members_ttl_seconds"),
        ({"ignore_bot_members": "no"}, "ignore_bot_members"),
    ],
)
def test_access_settings_are_validated(
    section: dict[str, Any], field: str, assistant: Assistant, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=field):
        MembersConfig.from_section(section)
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    with pytest.raises(ConfigError, match=field):
        build_app(
            assistant=assistant, settings=Settings(tmp_path, tmp_path, env=env, file={"access": section})
        )


def test_packaged_settings_reach_the_adapter(assistant: Assistant, tmp_path: Path) -> None:
    from bot.adapters.http import SLACK

    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    settings = Settings.load(departments=tmp_path, state=tmp_path / "state", env=env)
    app = build_app(assistant=assistant, settings=settings)
    assert app[SLACK].members.config == MembersConfig(max_members=500, ttl=120.0, ignore_bots=False)
    custom = Settings(tmp_path, tmp_path / "s2", env=env, file={"access": {"max_channel_members": 7}})
    assert build_app(assistant=assistant, settings=custom)[SLACK].members.config.max_members == 7


@pytest.mark.parametrize("name", ["manifest.yaml", "manifest.socket-mode.yaml"])
def test_manifests_subscribe_to_member_events_with_their_scopes(name: str) -> None:
    data = yaml.safe_load((MANIFESTS / name).read_text())
    scopes = set(data["oauth_config"]["scopes"]["bot"])
    assert {"channels:read", "groups:read", "mpim:read"} <= scopes
    assert "im:read" not in scopes  # DM members are never fetched
    events = set(data["settings"]["event_subscriptions"]["bot_events"])
    assert set(MEMBER_EVENTS) <= events


def test_a_network_failure_is_unavailable_not_an_exception() -> None:
    import socket

    async def main() -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there
        client = AsyncWebClient(token="xoxb-test", base_url=f"http://127.0.0.1:{port}/api/", timeout=2)
        readers = await ChannelMembers(people=SlackPeople()).readers("C1", client, HOME)
        assert readers == ChannelReaders.unavailable("unavailable")

    asyncio.run(main())


def test_workspace_audience_stands_in_for_public_channel_readers() -> None:
    config = MembersConfig.from_section({"slack_workspace_audience": ["*@example.com"]})
    assert config.workspace_audience == ("*@example.com",)
    with pytest.raises(ConfigError, match="slack_workspace_audience"):
        MembersConfig.from_section({"slack_workspace_audience": ["not an entry"]})

    async def scenario(stub: SlackStub, client: AsyncWebClient) -> None:
        members = ChannelMembers(people=SlackPeople(), config=config)
        stub.channels["CPUB"] = StubChannel(members=["UALICE", BOT_USER_ID], is_private=False)
        stub.channels["CPRIV"] = StubChannel(members=["UALICE", BOT_USER_ID], is_private=True)
        public = await members.readers("CPUB", client, HOME)
        assert public.public and public.stand_in == ("*@example.com",)
        private = await members.readers("CPRIV", client, HOME)
        assert not private.public and private.stand_in == ()

    with_stub(scenario)
