"""The inbound half of the adapter: activity dicts in, Message and commands out."""

from __future__ import annotations

import pytest

from bot.adapters.teams import inbound as tr

SERVICE = "http://127.0.0.1:1/"


def _activity(text: str, **kw: object) -> dict[str, object]:
    from tests.adapters.teams.conftest import activity

    return activity(text, service_url=SERVICE, **kw)  # type: ignore[arg-type]


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
