"""End to end over HTTP: activities in, what the bot posts to the (fake) Bot Connector out.

Anonymous mode (no MicrosoftAppId), as with the Bot Framework Emulator on a laptop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.config import Company
from bot.core.types import Classification
from tests.adapters.teams.conftest import TEAM_CHANNEL, Harness
from tests.fakes import CONFIDENTIAL_DOC, FakeRetriever, MemoryAudit, RecordingGenerator, add_document

AI_TYPE = "https://schema.org/Message"


def ai_entity(body: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in body.get("entities", []) if e.get("type") == AI_TYPE)


def test_personal_question_gets_typing_then_a_cited_quoted_answer(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(h.activity("How many vacation days do I get?"))
        assert [p.body["type"] for p in posted] == ["typing", "message"]
        reply = posted[1]
        assert reply.conversation == "a:personal-alice"
        body = reply.body
        assert "25 days" in body["text"] and "[1]" in body["text"]
        assert body["channelData"]["feedbackLoopEnabled"] is True
        entity = ai_entity(body)
        # The offline generator quotes documents: citations, but no "AI generated" label.
        assert entity["@type"] == "Message" and "additionalType" not in entity
        assert "Quoted from Human Resources documents — no AI model wrote this." in body["text"]
        claim = entity["citation"][0]
        assert claim["@type"] == "Claim" and claim["position"] == 1
        assert claim["appearance"]["@type"] == "DigitalDocument"
        assert claim["appearance"]["name"].startswith("Time off policy")
        assert 0 < len(claim["appearance"]["abstract"]) <= 160

    teams(scenario)


def test_feedback_invoke_is_stored_with_the_request_id(
    teams: Callable[..., None], audit: MemoryAudit
) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(h.activity("How many vacation days do I get?"))
        answer = posted[-1]
        request_id = audit.entries[-1].request_id
        assert request_id in answer.body["text"]
        invoke = h.activity("")
        invoke.update(
            type="invoke",
            name="message/submitAction",
            text=None,
            replyToId=answer.id,
            value={
                "actionName": "feedback",
                "actionValue": {"reaction": "dislike", "feedback": '{"feedbackText":"Out of date"}'},
            },
        )
        status, text = await h.post(invoke)
        assert status == 200 and text == "{}"  # the documented reply: an empty JSON object
        assert audit.feedback == [(request_id, "alice@example.com", "down", "Out of date")]

    teams(scenario)


def test_unknown_person_is_told_they_cannot_ask(teams: Callable[..., None], audit: MemoryAudit) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(h.activity("How many vacation days do I get?", user="mallory"))
        reply = posted[-1].body
        assert "can't" in reply["text"]
        assert "entities" not in reply and "channelData" not in reply
        assert audit.entries[-1].decision == "denied"
        assert "25 days" not in reply["text"]

    teams(scenario)


def test_channel_mention_is_stripped_and_answer_is_a_threaded_card(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        body = h.activity("How many vacation days do I get?", kind="channel")
        posted = await h.ask(body)
        assert [p.body["type"] for p in posted] == ["typing", "message"]
        reply = posted[-1]
        assert reply.conversation == body["conversation"]["id"]  # the thread
        assert reply.reply_to == body["id"]
        card = reply.body["attachments"][0]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        content = card["content"]
        assert "25 days" in content["body"][0]["text"]
        facts = next(b for b in content["body"] if b["type"] == "FactSet")["facts"]
        assert facts[0]["title"] == "[1]" and "Time off policy" in facts[0]["value"]
        votes = [a["data"]["value"] for a in content["actions"]]
        assert votes == ["up", "down"]

    teams(scenario)


def test_mention_text_never_reaches_the_assistant(teams: Callable[..., None], audit: MemoryAudit) -> None:
    async def scenario(h: Harness) -> None:
        await h.ask(h.activity("How many vacation days do I get?", kind="groupChat"))
        assert audit.entries[-1].question == "How many vacation days do I get?"

    teams(scenario)


def test_card_feedback_in_a_channel_is_stored_and_the_card_updated(
    teams: Callable[..., None], audit: MemoryAudit
) -> None:
    async def scenario(h: Harness) -> None:
        body = h.activity("How many vacation days do I get?", kind="channel")
        posted = await h.ask(body)
        card = posted[-1].body["attachments"][0]["content"]
        up = card["actions"][0]["data"]
        submit = h.activity("", kind="channel", mention=False, value=up, replyToId=posted[-1].id)
        submit["text"] = None
        after = await h.ask(submit)
        rid = audit.entries[-1].request_id
        assert audit.feedback == [(rid, "alice@example.com", "up", "")]
        assert [p.method for p in after] == ["PUT"]
        assert "actions" not in after[0].body["attachments"][0]["content"]

    teams(scenario)


def test_restricted_answer_goes_one_to_one_and_the_channel_gets_a_note(
    teams: Callable[..., None], audit: MemoryAudit
) -> None:
    async def scenario(h: Harness) -> None:
        body = h.activity("ask finance What is the payroll salary band L3?", user="carol", kind="channel")
        posted = await h.ask(body)
        in_channel = [
            p for p in posted if p.conversation.startswith(TEAM_CHANNEL) and p.body["type"] == "message"
        ]
        private = [p for p in posted if p.conversation == "a:private-29:carol"]
        assert len(in_channel) == 1
        assert "private chat" in in_channel[0].body["text"]
        assert "95,000" not in str(in_channel[0].body)
        assert h.connector.created[0]["members"][0]["id"] == "29:carol"
        answer = private[-1].body
        assert "95,000" in answer["text"]
        assert answer["channelData"]["feedbackLoopEnabled"] is True
        assert audit.entries[-1].doc_ids == ("finance/payroll/salary-bands.md",)

    teams(scenario)


def test_restricted_answer_uses_the_stored_personal_chat(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        await h.ask(h.activity("help", user="carol"))  # carol has chatted 1:1 before
        body = h.activity("ask finance What is the payroll salary band L3?", user="carol", kind="channel")
        posted = await h.ask(body)
        assert h.connector.created == []
        private = [p for p in posted if p.conversation == "a:personal-carol"]
        assert any("95,000" in p.body.get("text", "") for p in private)

    teams(scenario)


def test_restricted_answer_that_cannot_be_sent_privately_is_not_posted(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.fail_create = True
        body = h.activity("ask finance What is the payroll salary band L3?", user="carol", kind="groupChat")
        posted = await h.ask(body)
        assert all("95,000" not in str(p.body) for p in posted)
        assert "couldn't reach you privately" in posted[-1].body["text"]

    teams(scenario)


def test_refresh_is_for_admins_only(teams: Callable[..., None], assistant: Any) -> None:
    indexer = assistant._indexer

    async def scenario(h: Harness) -> None:
        denied = await h.ask(h.activity("kb refresh hr", user="alice"))
        assert "admins" in denied[-1].body["text"].lower()
        assert indexer.refreshed == []
        done = await h.ask(h.activity("kb refresh hr", user="hank"))
        texts = [p.body.get("text", "") for p in done if p.body["type"] == "message"]
        assert texts[0].startswith("Refreshing Human Resources knowledge")
        assert "Human Resources knowledge refreshed" in texts[-1] and "1 unchanged" in texts[-1]
        assert indexer.refreshed == ["hr"]

    teams(scenario)


def test_commands_help_status_and_usage(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        help_reply = (await h.ask(h.activity("help")))[-1].body["text"]
        assert "Human Resources (`hr`)" in help_reply and "Engineering" not in help_reply
        assert "`hr offer-letter`" in help_reply
        status = (await h.ask(h.activity("kb status hr")))[-1].body["text"]
        assert "Human Resources" in status and "1 documents" in status
        usage = (await h.ask(h.activity("kb frobnicate")))[-1].body["text"]
        assert usage.startswith("Try: kb status")
        unknown = (await h.ask(h.activity("kb refresh nosuch", user="hank")))[-1].body["text"]
        assert "Unknown department" in unknown and "Traceback" not in unknown

    teams(scenario)


def test_follow_up_carries_bounded_history(teams: Callable[..., None], generator: Any) -> None:
    async def scenario(h: Harness) -> None:
        await h.ask(h.activity("How many vacation days do I get?"))
        await h.ask(h.activity("And how many sick days?"))
        history = generator.requests[-1].history
        assert [t.role for t in history] == ["user", "assistant"]
        assert history[0].text == "How many vacation days do I get?"
        for _ in range(5):
            await h.ask(h.activity("How many sick days?"))
        assert len(generator.requests[-1].history) <= 6

    teams(scenario)


def test_welcome_card_when_the_bot_is_added(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        body = h.activity("", kind="channel", mention=False)
        body.update(type="conversationUpdate", text=None, membersAdded=[{"id": body["recipient"]["id"]}])
        posted = await h.ask(body)
        content = posted[-1].body["attachments"][0]["content"]
        titles = [f["title"] for f in next(b for b in content["body"] if b["type"] == "FactSet")["facts"]]
        assert titles == ["help", "ask", "task", "kb status", "kb refresh"]

    teams(scenario)


def test_an_internal_error_shows_one_friendly_line(teams: Callable[..., None], assistant: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret stack detail")

    assistant.status = broken

    async def scenario(h: Harness) -> None:
        text = (await h.ask(h.activity("kb status")))[-1].body["text"]
        assert text.startswith("Sorry, I couldn't answer that just now (request ")
        assert "secret" not in text

    teams(scenario)


def test_model_links_and_mentions_are_neutralized(teams: Callable[..., None], assistant: Any) -> None:
    from dataclasses import replace

    real_ask = assistant.ask

    def ask(message: Any, **kw: Any) -> Any:
        answer = real_ask(message, **kw)
        return replace(answer, text=answer.text + " <at>Everyone</at> see [here](https://evil.example/x) [1]")

    assistant.ask = ask

    async def scenario(h: Harness) -> None:
        text = (await h.ask(h.activity("How many vacation days do I get?")))[-1].body["text"]
        assert "<at>" not in text and "&lt;at&gt;" in text
        assert "](https://evil" not in text and "`https://evil.example/x`" in text

    teams(scenario)


def test_member_email_is_looked_up_once_and_cached(teams: Callable[..., None], audit: MemoryAudit) -> None:
    async def scenario(h: Harness) -> None:
        await h.ask(h.activity("How many vacation days do I get?", user="carol"))
        await h.ask(h.activity("How many sick days?", user="carol"))
        assert h.connector.lookups == ["29:carol"]
        assert {e.user for e in audit.entries} == {"carol@example.com"}

    teams(scenario)


def test_a_confidential_answer_keeps_its_label_in_follow_ups(
    teams: Callable[..., None], company: Company, retriever: FakeRetriever, generator: RecordingGenerator
) -> None:
    """The first answer is confidential only through its document's label; the follow-up's
    own sources are internal, yet the earlier answer in its prompt keeps it confidential."""
    add_document(company, retriever, "hr/relocation.md", CONFIDENTIAL_DOC)

    async def scenario(h: Harness) -> None:
        first = await h.ask(h.activity("What is the relocation allowance?"))
        assert "7,500" in first[-1].body["text"]
        assert generator.requests[-1].classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]
        await h.ask(h.activity("How many vacation days do I get?"))
        request = generator.requests[-1]
        (earlier,) = [t for t in request.history if t.role == "assistant"]  # type: ignore[attr-defined]
        assert "7,500" in earlier.text and earlier.label is Classification.CONFIDENTIAL
        assert {s.classification for s in request.sources} == {Classification.INTERNAL}  # type: ignore[attr-defined]
        assert request.classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]

    teams(scenario)


def in_chat(posted: list[Any], conversation: str) -> list[str]:
    return [
        p.body.get("text", "")
        for p in posted
        if p.conversation.startswith(conversation) and p.body["type"] == "message"
    ]


def test_channel_denial_goes_one_to_one_and_the_channel_gets_a_neutral_line(
    teams: Callable[..., None], audit: MemoryAudit
) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(h.activity("ask eng How do production deploys work?", kind="channel"))
        assert in_chat(posted, TEAM_CHANNEL) == ["Alice, I've replied to you privately."]
        preface, denial = in_chat(posted, "a:private-29:alice")
        assert "How do production deploys work?" in preface
        assert "bob@example.com" in denial and "Engineering" in denial
        assert audit.entries[-1].decision == "denied"
        # the same path for a refresh only admins may run
        posted = await h.ask(h.activity("kb refresh hr", kind="channel"))
        assert in_chat(posted, TEAM_CHANNEL) == ["Alice, I've replied to you privately."]
        assert "hank@example.com" in in_chat(posted, "a:private-29:alice")[-1]

    teams(scenario)


def test_group_chat_denial_that_cannot_be_sent_privately_is_not_posted(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        h.connector.fail_create = True
        posted = await h.ask(h.activity("How many vacation days do I get?", user="mallory", kind="groupChat"))
        (line,) = in_chat(posted, "19:groupchat")
        assert "couldn't reach you privately" in line and "don't know who you are" not in line

    teams(scenario)
