"""Security review regressions through the real Slack server and the loopback Web API stub."""

from __future__ import annotations

import json
from typing import Any

from bot.adapters.slack import blocks as bk
from bot.config import Company
from bot.core.types import Classification
from tests.adapters.slack.conftest import SlackHarness, dm, mention
from tests.adapters.slack.test_slack_server import run
from tests.fakes import CONFIDENTIAL_DOC, FakeRetriever, RecordingGenerator, add_document

DONT_KNOW_NEAR_PAYROLL = "payroll cafeteria menu tuesday lunch parking"


def _text(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False)


def test_dont_know_naming_restricted_titles_stays_with_the_asker(harness: SlackHarness) -> None:
    """carol may see payroll, the channel may not: even the titles in "I don't know" stay private."""

    async def scenario(h: SlackHarness) -> None:
        await h.event(mention(DONT_KNOW_NEAR_PAYROLL, user="UCAROL", channel="C0FIN"))
        (eph,) = await h.stub.wait_for("chat.postEphemeral")
        assert eph["user"] == "UCAROL" and "salary-bands" in _text(eph)
        await h.stub.wait_for("reactions.remove")
        assert not any("salary-bands" in _text(p) for p in h.stub.to("chat.postMessage"))
        await h.command(
            "/ask", "finance " + DONT_KNOW_NEAR_PAYROLL, user="UCAROL", channel="C0FIN", name="ask"
        )
        (reply,) = await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "ask")
        actions = [b for b in reply["blocks"] if b["type"] == "actions"]
        assert all(e["action_id"] != bk.ACTION_SHARE for a in actions for e in a["elements"])

    run(harness, scenario)


def test_empty_mention_help_names_only_departments_the_person_may_ask(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(mention("", user="UALICE", ts="1700000020.000100"))  # alice: hr, finance; not eng
        (post,) = await h.stub.wait_for("chat.postMessage")
        line = next(s for s in _text(post).split("\\n") if "You can ask:" in s)
        assert "hr" in line and "finance" in line and "eng" not in line

    run(harness, scenario)


def test_a_confidential_answer_keeps_its_label_when_it_comes_back_as_history(
    harness: SlackHarness, company: Company, retriever: FakeRetriever, generator: RecordingGenerator
) -> None:
    """The first answer is confidential only through its document's label; the follow-up's
    own sources are internal, yet the earlier answer in its prompt keeps it confidential."""
    add_document(company, retriever, "hr/relocation.md", CONFIDENTIAL_DOC)

    async def scenario(h: SlackHarness) -> None:
        root = "1700000000.000100"
        await h.event(dm("What is the relocation allowance?", ts=root), event_id="EvRELOCATION")
        (first,) = await h.stub.wait_for("chat.postMessage")
        assert "7,500" in _text(first)
        rid = generator.requests[0].request_id  # type: ignore[attr-defined]
        assert first["metadata"] == {  # and the event it answers (a takeover looks for it)
            "event_type": "deptbot_answer",
            "event_payload": {"label": "confidential", "request_id": rid, "event_id": "EvRELOCATION"},
        }
        h.stub.add_thread_message(
            "D0ALICE", root, {"ts": root, "user": "UALICE", "text": "What is the relocation allowance?"}
        )
        await h.event(dm("How many vacation days do I get?", ts="1700000009.000100", thread_ts=root))
        await h.stub.wait_for("chat.postMessage", 2)
        (replies,) = h.stub.to("conversations.replies")
        assert replies["include_all_metadata"] in ("1", "true")
        request = generator.requests[-1]
        (earlier,) = [t for t in request.history if t.role == "assistant"]  # type: ignore[attr-defined]
        assert "7,500" in earlier.text and earlier.label is Classification.CONFIDENTIAL
        assert {s.classification for s in request.sources} == {Classification.INTERNAL}  # type: ignore[attr-defined]
        assert request.classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]

    run(harness, scenario)


def test_our_messages_without_a_label_fail_closed(
    harness: SlackHarness, generator: RecordingGenerator
) -> None:
    """A bot message in the thread without readable metadata (posted before labels existed,
    or a streamed placeholder never finished) counts as restricted in a DM."""

    async def scenario(h: SlackHarness) -> None:
        root = "1700000000.000100"
        h.stub.add_thread_message("D0ALICE", root, {"ts": root, "user": "UALICE", "text": "Hello"})
        h.stub.add_thread_message(
            "D0ALICE", root, {"ts": "1700000000.000200", "user": "UBOT", "bot_id": "BBOT", "text": "Hi!"}
        )
        await h.event(dm("How many vacation days do I get?", ts="1700000009.000100", thread_ts=root))
        await h.stub.wait_for("chat.postMessage")
        request = generator.requests[-1]
        assert [t.label for t in request.history] == [None, Classification.RESTRICTED]  # type: ignore[attr-defined]
        assert request.classification is Classification.RESTRICTED  # type: ignore[attr-defined]

    run(harness, scenario)
