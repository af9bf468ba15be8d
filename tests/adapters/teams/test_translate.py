"""The pure half of the adapter: activity dicts in, Message out; Answer in, activity dicts out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.adapters.teams import translate as tr
from bot.core.types import Answer, Citation, Status

SERVICE = "http://127.0.0.1:1/"


def _activity(text: str, **kw: object) -> dict[str, object]:
    from tests.adapters.teams.conftest import activity

    return activity(text, service_url=SERVICE, **kw)  # type: ignore[arg-type]


def _answer(**kw: object) -> Answer:
    cites = (
        Citation(
            n=1,
            title="Time off policy",
            path="knowledge/hr/time-off.md",
            department="hr",
            score=0.8,
            snippet="Full-time employees receive 25 days " + "x" * 300,
            anchor="Annual vacation",
            modified=datetime(2026, 9, 14, tzinfo=UTC),
        ),
    )
    fields: dict[str, object] = dict(
        text="You get 25 days [1].",
        request_id="7f3c2a0b1c2d",
        citations=cites,
        department="hr",
        department_title="Human Resources",
    )
    fields.update(kw)
    return Answer(**fields)  # type: ignore[arg-type]


def test_kinds_channels_and_threads() -> None:
    personal = _activity("hi")
    channel = _activity("hi", kind="channel")
    group = _activity("hi", kind="groupChat")
    assert [tr.conversation_kind(a) for a in (personal, channel, group)] == [
        "personal",
        "channel",
        "groupChat",
    ]
    assert tr.channel_id(channel) == "19:general@thread.tacv2"
    assert tr.thread_id(channel) == str(channel["conversation"]["id"]).split("=")[1]  # type: ignore[index]
    assert tr.channel_id(personal) is None and tr.thread_id(group) is None
    assert tr.user_key(personal) == "aad-alice"


def test_to_message_marks_shared_conversations_in_channel() -> None:
    cmd = tr.Command("ask", "q", department="hr")
    msg = tr.to_message(_activity("q", kind="channel"), cmd, email="alice@example.com")
    assert (msg.platform, msg.in_channel, msg.department, msg.email) == (
        "teams",
        True,
        "hr",
        "alice@example.com",
    )
    assert tr.to_message(_activity("q", kind="groupChat"), cmd, email=None).in_channel
    assert not tr.to_message(_activity("q"), cmd, email=None).in_channel


def test_strip_mentions_removes_only_the_bot() -> None:
    act = _activity("ask <at>Bob</at> about&nbsp;leave &amp; pay", kind="channel")
    assert tr.strip_mentions(act) == "ask Bob about leave & pay"
    odd = _activity("hi", kind="channel")
    odd["entities"] = [{"type": "mention"}, "junk", {"type": "clientInfo"}]
    assert tr.strip_mentions(odd) == "hi"  # odd entities: no crash; the bot's own tag still goes
    spaced = _activity("hi", kind="channel")
    spaced["text"] = "<at>deptbot</at>&nbsp;kb status"
    spaced["entities"] = [{"type": "mention", "text": "<at>Deptbot</at>", "mentioned": spaced["recipient"]}]
    assert tr.strip_mentions(spaced) == "kb status"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", tr.Command("help")),
        ("help", tr.Command("help")),
        ("help me with vacation", tr.Command("ask", "help me with vacation")),
        ("ask hr how many days?", tr.Command("ask", "how many days?", department="hr")),
        ("ask how many days?", tr.Command("ask", "how many days?")),
        ("ask", tr.Command("usage", tr.USAGE["ask"])),
        ("task hr offer-letter Jane, engineer", tr.Command("task", "Jane, engineer", "hr", "offer-letter")),
        ("task offer-letter Jane", tr.Command("task", "Jane", template="offer-letter")),
        ("kb status", tr.Command("status")),
        ("KB Status HR", tr.Command("status", department="hr")),
        ("kb refresh hr", tr.Command("refresh", department="hr")),
        ("kb refresh", tr.Command("usage", tr.USAGE["kb"])),
        ("/help", tr.Command("help")),
    ],
)
def test_parse_command(text: str, expected: tr.Command) -> None:
    assert tr.parse_command(text, ["hr", "finance"], {"hr": ["offer-letter"]}) == expected


def test_chat_answer_has_ai_entity_and_feedback() -> None:
    act = tr.render_answer(_answer(), kind=tr.PERSONAL)
    assert act["channelData"] == {"feedbackLoopEnabled": True}
    [entity] = act["entities"]
    assert entity["additionalType"] == ["AIGeneratedContent"]
    appearance = entity["citation"][0]["appearance"]
    assert appearance["name"] == "Time off policy › Annual vacation"
    assert len(appearance["abstract"]) <= 160
    assert "request 7f3c2a0b1c2d" in act["text"]


def test_denials_and_errors_are_plain_text() -> None:
    for status in (Status.DENIED, Status.ERROR):
        act = tr.render_answer(_answer(status=status, citations=()), kind=tr.GROUP)
        assert set(act) == {"type", "text", "textFormat"}


def test_dont_know_gets_feedback_but_no_ai_label() -> None:
    act = tr.render_answer(_answer(status=Status.DONT_KNOW, citations=()), kind=tr.PERSONAL)
    assert act["channelData"]["feedbackLoopEnabled"] and "entities" not in act


def test_channel_answer_is_a_card_with_sources_and_votes() -> None:
    act = tr.render_answer(_answer(), kind=tr.CHANNEL)
    card = act["attachments"][0]["content"]
    assert card["version"] == tr.CARD_VERSION
    facts = card["body"][2]["facts"]
    assert facts == [
        {"title": "[1]", "value": "Time off policy › Annual vacation · Human Resources · updated 2026-09-14"}
    ]
    assert [a["data"] for a in card["actions"]] == [
        {"deptbot": "feedback", "value": v, "request_id": "7f3c2a0b1c2d"} for v in ("up", "down")
    ]
    voted = tr.answer_card(_answer(), voted="up")
    assert "actions" not in voted and "👍" in voted["body"][-1]["text"]


@pytest.mark.parametrize(
    ("raw", "bad", "kept"),
    [
        (
            "see [the form](https://evil.example/x) now [1]",
            "](",
            "the form (`https://evil.example/x`) now [1]",
        ),
        ("visit https://evil.example/login today", "visit https", "`https://evil.example/login`"),
        ("or www.evil.example", "or www", "`www.evil.example`"),
        ("<at>Everyone</at> look", "<at>", "&lt;at&gt;Everyone&lt;/at&gt;"),
        ('<a href="x">y</a>', "<a", "&lt;a href"),
        ("![img](javascript:alert(1))", "![", "img (`javascript:alert(1`)"),
        ("already `https://x.example` code", "``", "`https://x.example`"),
    ],
)
def test_neutralize(raw: str, bad: str, kept: str) -> None:
    out = tr.neutralize(raw)
    assert bad not in out and kept in out


def test_neutralize_for_cards_keeps_text_readable() -> None:
    assert tr.neutralize("a <at>b</at> & c", for_card=True) == "a ‹at›b‹/at› & c"


def test_feedback_payloads() -> None:
    invoke = {
        "value": {
            "actionName": "feedback",
            "actionValue": {"reaction": "like", "feedback": '{"feedbackText":" ok "}'},
        }
    }
    assert tr.feedback_from_invoke(invoke) == ("up", "ok")
    assert (
        tr.feedback_from_invoke({"value": {"actionName": "feedback", "actionValue": {"reaction": "meh"}}})
        is None
    )
    assert tr.feedback_from_invoke(
        {"value": {"actionName": "feedback", "actionValue": {"reaction": "dislike", "feedback": "plain"}}}
    ) == ("down", "plain")
    assert tr.feedback_from_invoke({"value": None}) is None
    card = {"value": {"deptbot": "feedback", "value": "down", "request_id": "7f3c2a0b1c2d"}}
    assert tr.feedback_from_card(card) == ("7f3c2a0b1c2d", "down")
    assert (
        tr.feedback_from_card({"value": {"deptbot": "feedback", "value": "down", "request_id": "<x>"}})
        is None
    )


def test_refresh_report_names_failed_files() -> None:
    from bot.core.ports import FailedFile, IndexReport

    report = IndexReport(
        department="hr",
        added=3,
        changed=2,
        removed=1,
        unchanged=304,
        seconds=41.2,
        failed=(FailedFile("knowledge/hr/old-handbook.pdf", "not a valid PDF"),),
    )
    assert tr.refresh_text("HR", report) == (
        "HR knowledge refreshed in 41 s: 3 added, 2 changed, 1 removed, 304 unchanged, 1 failed "
        "(old-handbook.pdf: not a valid PDF)."
    )
