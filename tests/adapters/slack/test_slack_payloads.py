"""What deptbot sends Slack stays within Slack's published limits (issue 14).

Every harness test is checked by the stub (``bot/adapters/slack/limits.py``); this module
covers the checker itself and the cases that used to break it: a model reply with no words
left once invalid ``[n]`` markers are gone, fallback text cut inside an escape, and a shared
answer one block over the limit.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack import blocks as bk
from bot.adapters.slack import limits
from bot.adapters.slack.streaming import partial_text
from bot.adapters.slack.stub import SlackStub
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.ports import DeltaFn
from bot.core.types import Answer, Citation, Generation, GenerationRequest, Status
from tests.adapters.slack.conftest import SlackHarness, dm, mention
from tests.adapters.slack.test_slack_server import run
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit

VACATION = "How many vacation days do I get?"
NO_ANSWER = "no usable answer"
ENTITIES = re.compile(r"(?:[^&]|&(?:amp|lt|gt);)*")  # every "&" starts a whole escape


class FixedGenerator:
    """Returns the same text whatever it is asked: the model misbehaving on purpose."""

    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, request: GenerationRequest, *, on_delta: DeltaFn | None = None) -> Generation:
        return Generation(text=self.text, model="fixed-1", generator=self.name, route="cloud")


def fixed_assistant(company: Company, retriever: FakeRetriever, text: str) -> Assistant:
    return Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=FixedGenerator(text),
        audit=MemoryAudit(),
    )


def answer(text: str, **kw: Any) -> Answer:
    cite = Citation(n=1, title="Time off", path="knowledge/hr/t.md", department="hr", score=0.9, snippet="")
    defaults: dict[str, Any] = {"citations": (cite,), "department": "hr", "department_title": "HR"}
    return Answer(text=text, request_id="r1", **{**defaults, **kw})


def blank_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text object in ``blocks`` with no visible character (Slack: invalid_blocks)."""
    found: list[str] = []
    for b in blocks:
        for t in [b.get("text"), *b.get("elements", [])]:
            if isinstance(t, dict) and "text" in t and not str(t["text"]).strip():
                found.append(f"{b['type']}: {t['text']!r}")
    return found


# ── 1. an answer with no words left ──────────────────────────────────────────────────


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "[1]", " [1] [1]. "])
@pytest.mark.parametrize("status", [Status.ANSWERED, Status.SOURCES_ONLY])
def test_an_answer_with_no_words_renders_as_sources_with_a_sentence(text: str, status: Status) -> None:
    blocks = bk.answer_blocks(answer(text, status=status))
    assert blank_texts(blocks) == []
    assert limits.problems("chat.postMessage", {"blocks": blocks, "text": "x"}) == []
    first = blocks[0]["text"]["text"]
    assert NO_ANSWER in first and "sources" in first
    assert any("*Sources*" in e["text"] for b in blocks if b["type"] == "context" for e in b["elements"])
    assert NO_ANSWER in bk.fallback_text(answer(text, status=status))


def test_no_words_and_no_sources_still_says_something() -> None:
    for status in Status:
        blocks = bk.answer_blocks(answer("  ", status=status, citations=()))
        assert blank_texts(blocks) == [], status
        assert bk.fallback_text(answer("  ", status=status, citations=())).strip(), status


@pytest.mark.parametrize("reply", ["[9]", "   "])
@pytest.mark.parametrize("where", ["mention", "dm", "slash"])
def test_a_reply_of_only_bad_markers_or_spaces_posts_valid_blocks(
    reply: str, where: str, company: Company, retriever: FakeRetriever, tmp_path: Path
) -> None:
    """The real server with a generator that answers "[9]" or "   ": what reaches Slack
    has no empty block and no empty top-level text (the stub checks every call too)."""
    h = SlackHarness(fixed_assistant(company, retriever, reply), tmp_path / "state")

    async def scenario(h: SlackHarness) -> None:
        if where == "mention":
            await h.event(mention(VACATION))
        elif where == "dm":
            await h.event(dm(VACATION))
        else:
            await h.command("/ask", f"hr {VACATION}", name="ask")
        method = "response_url" if where == "slash" else "chat.postMessage"
        (sent,) = await h.stub.wait_for(method)
        assert sent["text"].strip() and NO_ANSWER in sent["text"]
        assert blank_texts(sent["blocks"]) == []
        assert NO_ANSWER in sent["blocks"][0]["text"]["text"]
        assert "*Sources*" in str(sent["blocks"])
        assert h.stub.violations == []

    run(h, scenario)


# ── 2. fallback text never ends inside an escape ─────────────────────────────────────


@pytest.mark.parametrize("pad", range(5))
def test_fallback_text_is_cut_on_an_escape_boundary(pad: int) -> None:
    text = "a" * pad + "&<>" * 2000
    for out in (bk.fallback_text(answer(text)), bk.fallback_text(answer(text), note="Only you")):
        assert len(out) <= bk.FALLBACK_CHARS
        assert ENTITIES.fullmatch(out), out[-8:]
    streamed = partial_text(text)
    assert len(streamed) <= bk.FALLBACK_CHARS and ENTITIES.fullmatch(streamed), streamed[-8:]


def test_denials_cut_on_an_escape_boundary_too() -> None:
    for pad in range(5):
        blocks = bk.answer_blocks(answer("a" * pad + "&" * 1000, status=Status.DENIED, citations=()))
        assert ENTITIES.fullmatch(blocks[0]["text"]["text"])
        assert limits.problems("chat.postMessage", {"blocks": blocks, "text": "x"}) == []


# ── 5. the checker ────────────────────────────────────────────────────────────────────


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(text: str) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": "a", "value": "v"}


def test_the_checker_knows_the_published_limits() -> None:
    ok = {"text": "hi", "blocks": [section("x" * 3000)]}
    for method in ("chat.postMessage", "chat.postEphemeral", "chat.update", "response_url"):
        assert limits.problems(method, ok) == []
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("chat.postMessage", {"text": "hi", "blocks": [section("")]}, "section text"),
        ("chat.postMessage", {"text": "hi", "blocks": [section(" \n ")]}, "section text"),
        ("chat.update", {"text": "hi", "blocks": [section("x" * 3001)]}, "section text"),
        ("chat.postEphemeral", {"text": "hi", "blocks": [section("x")] * 51}, "51 blocks"),
        ("response_url", {"text": "", "blocks": [section("x")]}, "top-level text"),
        ("chat.postMessage", {"blocks": [section("x")]}, "top-level text"),
        ("chat.postMessage", {"text": "  "}, "top-level text"),
        (
            "chat.postMessage",
            {"text": "hi", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]},
            "header",
        ),
        (
            "chat.postMessage",
            {"text": "hi", "blocks": [{"type": "actions", "elements": [button("b" * 76)]}]},
            "button",
        ),
        (
            "chat.postMessage",
            {"text": "hi", "blocks": [{"type": "actions", "elements": [button("")]}]},
            "button",
        ),
        ("chat.postMessage", {"text": "hi", "blocks": [{"type": "context", "elements": []}]}, "context"),
        (
            "chat.postMessage",
            {
                "text": "hi",
                "blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
            },
            "context",
        ),
        ("views.publish", {"view": {"type": "home", "blocks": [section("x")] * 101}}, "101 blocks"),
        (
            "views.open",
            {
                "view": {
                    "type": "modal",
                    "title": {"type": "plain_text", "text": "t" * 25},
                    "blocks": [section("x")],
                }
            },
            "title",
        ),
        (
            "views.open",
            {
                "view": {
                    "type": "modal",
                    "title": {"type": "plain_text", "text": "t"},
                    "blocks": [section("")],
                }
            },
            "section text",
        ),
    ]
    cell = {"type": "raw_text", "text": "x"}
    table = {"type": "table", "rows": [[cell]]}

    def post(*blocks: dict[str, object]) -> dict[str, object]:
        return {"text": "x", "blocks": list(blocks)}

    bad += [
        ("chat.postMessage", post({**table, "rows": [[cell]] * 101}), "rows"),
        ("chat.postMessage", post({**table, "rows": [[cell] * 21]}), "cells"),
        ("chat.postMessage", post({**table, "rows": [[{"type": "mrkdwn"}]]}), "raw_text"),
        ("chat.postMessage", post(table, table), "one per message"),
        ("chat.postMessage", post({**table, "column_settings": [{"align": "top"}]}), "align"),
    ]
    assert limits.problems("chat.postMessage", post({**table, "rows": [[cell] * 20] * 100})) == []
    for method, args, what in bad:
        found = limits.problems(method, args)
        assert found and any(what in p for p in found), (method, what, found)
    assert limits.problems("views.publish", {"view": {"type": "home", "blocks": [section("x")] * 100}}) == []
    assert limits.problems("reactions.add", {"name": "eyes"}) == []


def test_the_stub_answers_invalid_blocks_and_records_the_violation() -> None:
    async def main() -> None:
        stub = await SlackStub().start()
        client = AsyncWebClient(token="xoxb-1", base_url=stub.api_url)
        try:
            with pytest.raises(SlackApiError) as err:
                await client.chat_postMessage(channel="C1", text="hi", blocks=[section("")])
            assert err.value.response["error"] == "invalid_blocks"
            await client.chat_postMessage(channel="C1", text="hi", blocks=[section("fine")])
            assert len(stub.violations) == 1 and "chat.postMessage" in stub.violations[0]
        finally:
            await stub.stop()

    asyncio.run(main())


def test_sharing_a_full_length_answer_stays_within_50_blocks(
    company: Company, retriever: FakeRetriever, tmp_path: Path
) -> None:
    """A 50-block answer plus the "Shared by" line used to be 51 blocks (invalid_blocks)."""
    long = "\n\n".join(f"Paragraph {i}: " + "vacation days " * 200 + "[1]" for i in range(60))
    h = SlackHarness(fixed_assistant(company, retriever, long), tmp_path / "state")

    async def scenario(h: SlackHarness) -> None:
        await h.command("/ask", f"hr {VACATION}", name="ask")
        (reply,) = await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "ask")
        assert len(reply["blocks"]) == bk.MAX_BLOCKS
        share = next(b for b in reply["blocks"] if b["type"] == "actions")["elements"][-1]
        assert share["action_id"] == bk.ACTION_SHARE
        await h.click(bk.ACTION_SHARE, share["value"], name="share")
        (shared,) = await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "share")
        assert shared["response_type"] == "in_channel" and "Shared by <@UALICE>" in str(shared["blocks"][0])
        assert len(shared["blocks"]) <= bk.MAX_BLOCKS
        assert h.stub.violations == []

    run(h, scenario)
