"""A vote counts only on a reply the bot posted in that conversation (reviewer R2, finding 9).

Request ids are shown in answer footers, so knowing one proves nothing. A card's
Action.Submit names a request id and the message it is on (``replyToId``); Teams' own 👍/👎
invoke names the message. Either must find, in the reply→request map, a reply the bot posted
*in the conversation the vote comes from*, for that very request; otherwise it is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.adapters.teams.conftest import Harness
from tests.fakes import MemoryAudit

QUESTION = "How many vacation days do I get?"


def card_vote(h: Harness, vote: dict[str, Any], reply_to: str, **kw: Any) -> dict[str, Any]:
    submit = h.activity("", mention=False, value=vote, replyToId=reply_to, **kw)
    submit["text"] = None
    return submit


def invoke_vote(h: Harness, reply_to: str, **kw: Any) -> dict[str, Any]:
    invoke = h.activity("", **kw)
    invoke.update(
        type="invoke",
        name="message/submitAction",
        text=None,
        replyToId=reply_to,
        value={"actionName": "feedback", "actionValue": {"reaction": "dislike", "feedback": "{}"}},
    )
    return invoke


def test_a_card_vote_needs_a_reply_the_bot_posted(teams: Callable[..., None], audit: MemoryAudit) -> None:
    """bob knows a request id from a footer; his card submit names a message that is not ours."""

    async def scenario(h: Harness) -> None:
        posted = await h.ask(h.activity(QUESTION, kind="channel"))
        vote = posted[-1].body["attachments"][0]["content"]["actions"][1]["data"]
        after = await h.ask(card_vote(h, vote, "1234567890", user="bob", kind="channel"))
        assert audit.feedback == [] and after == []

    teams(scenario)


def test_a_card_vote_from_another_conversation_is_ignored(
    teams: Callable[..., None], audit: MemoryAudit
) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(h.activity(QUESTION, kind="channel"))
        card = posted[-1]
        vote = card.body["attachments"][0]["content"]["actions"][1]["data"]
        after = await h.ask(card_vote(h, vote, card.id, user="bob", kind="groupChat"))
        assert audit.feedback == [] and after == []  # nothing counted, no card updated
        await h.ask(card_vote(h, vote, card.id, user="bob", kind="channel"))  # where it was posted
        assert [f[1:3] for f in audit.feedback] == [("bob@example.com", "down")]

    teams(scenario)


def test_a_teams_vote_from_another_conversation_is_ignored(
    teams: Callable[..., None], audit: MemoryAudit
) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(h.activity(QUESTION))  # alice's 1:1 answer
        answer = posted[-1]
        status, text = await h.post(invoke_vote(h, answer.id, user="bob", kind="groupChat"))
        assert (status, text) == (200, "{}")  # the documented reply, whatever happened
        assert audit.feedback == []
        assert (await h.post(invoke_vote(h, answer.id)))[0] == 200  # in alice's chat: counted
        assert [f[1:3] for f in audit.feedback] == [("alice@example.com", "down")]

    teams(scenario)


def test_a_vote_on_a_private_answer_counts_in_the_private_chat(
    teams: Callable[..., None], audit: MemoryAudit
) -> None:
    """An answer sent 1:1 from a channel is remembered under the 1:1 chat it went to."""

    async def scenario(h: Harness) -> None:
        posted = await h.ask(
            h.activity("ask finance What is the payroll salary band L3?", user="carol", kind="channel")
        )
        private = [p for p in posted if p.conversation == "a:private-29:carol"][-1]
        channel_vote = invoke_vote(h, private.id, user="carol", kind="channel")
        assert (await h.post(channel_vote))[0] == 200
        assert audit.feedback == []
        chat_vote = invoke_vote(h, private.id, user="carol")
        chat_vote["conversation"]["id"] = "a:private-29:carol"
        assert (await h.post(chat_vote))[0] == 200
        assert [f[1:3] for f in audit.feedback] == [("carol@example.com", "down")]

    teams(scenario)
