"""Two defaults that leaned open (reviewer R2, finding 8), now closed:

- a channel member whose ``users.info`` has no ``team_id`` cannot be compared with our
  workspace, so the list is "external" (unless our known Enterprise org vouches for them);
- a thread message with a ``bot_id`` and no ``user`` (an incoming webhook, a legacy
  integration) is not our own post unless the ``bot_id`` is ours: it can neither make a
  taken-over event look answered nor pass as one of our labelled answers in history.
Through the real ``AsyncWebClient`` against ``SlackStub``."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack import translate
from bot.adapters.slack.members import ChannelMembers, Home
from bot.adapters.slack.people import SlackPeople
from bot.adapters.slack.stub import BOT_ID, BOT_USER_ID, SlackStub, StubChannel
from bot.core.types import Classification
from tests.adapters.slack.conftest import USERS


def readers_with(profiles: dict[str, dict[str, Any]], home: Home) -> tuple[str, frozenset[str]]:
    async def main() -> tuple[str, frozenset[str]]:
        channels = {"CHR": StubChannel(members=["UALICE", "UGRACE", BOT_USER_ID])}
        stub = await SlackStub(users=USERS, channels=channels, profiles=profiles).start()
        try:
            client = AsyncWebClient(token="xoxb-test", base_url=stub.api_url)
            found = await ChannelMembers(people=SlackPeople()).readers("CHR", client, home)
            return found.unknown, found.emails
        finally:
            await stub.stop()

    return asyncio.run(main())


def test_a_member_without_a_team_id_is_external() -> None:
    home = Home(team_id="T1", bot_user_id=BOT_USER_ID)
    assert readers_with({}, home) == ("", frozenset({"alice@example.com", "grace@example.com"}))
    assert readers_with({"UGRACE": {"team_id": None}}, home) == ("external", frozenset())
    assert readers_with({"UGRACE": {"team_id": ""}}, home) == ("external", frozenset())
    # our own workspace unknown: nobody can be compared with it
    assert readers_with({}, Home(bot_user_id=BOT_USER_ID)) == ("external", frozenset())


def test_our_enterprise_vouches_for_a_member_without_a_team_id() -> None:
    grid = {"team_id": None, "enterprise_user": {"enterprise_id": "E1"}}
    home = Home(team_id="T1", enterprise_id="E1", bot_user_id=BOT_USER_ID)
    unknown, emails = readers_with({"UGRACE": grid}, home)
    assert unknown == "" and "grace@example.com" in emails
    other = {"team_id": None, "enterprise_user": {"enterprise_id": "E2"}}
    assert readers_with({"UGRACE": other}, home)[0] == "external"


def test_a_bot_message_without_a_user_is_ours_only_with_our_bot_id() -> None:
    meta = translate.answer_metadata(Classification.PUBLIC, "r1", "EvX")
    hook = {"ts": "2.0", "bot_id": "BHOOK", "subtype": "bot_message", "text": "x", "metadata": meta}
    legacy_ours = {**hook, "bot_id": BOT_ID}

    def answered(*messages: dict[str, Any]) -> bool:
        return translate.answers_event(messages, "EvX", bot_user_id=BOT_USER_ID, bot_id=BOT_ID)

    assert not answered(hook), "a webhook post with our event type made the event look answered"
    assert answered(legacy_ours)
    assert not translate.answers_event([legacy_ours], "EvX", bot_user_id=BOT_USER_ID)  # our id unknown
    assert not answered({**hook, "user": "UOTHER"})

    question = {"ts": "1.0", "user": "UALICE", "text": "q"}
    turns = translate.history([question, hook], bot_user_id=BOT_USER_ID, before_ts="9.0", bot_id=BOT_ID)
    assert [t.role for t in turns] == ["user"], "a webhook post passed as our (public) answer"
    turns = translate.history(
        [question, legacy_ours], bot_user_id=BOT_USER_ID, before_ts="9.0", bot_id=BOT_ID
    )
    assert [(t.role, t.label) for t in turns] == [("user", None), ("assistant", Classification.PUBLIC)]


def test_home_carries_our_bot_id_from_bolts_context() -> None:
    class Context:
        team_id, enterprise_id, bot_user_id, bot_id = "T1", None, BOT_USER_ID, BOT_ID

    assert Home.of(Context()) == Home(team_id="T1", bot_user_id=BOT_USER_ID, bot_id=BOT_ID)
