"""Streaming in DMs: one placeholder, throttled updates, one final answer — never in channels."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.ports import DeltaFn
from bot.core.types import Generation, GenerationRequest
from tests.adapters.slack.conftest import SlackHarness, dm, mention
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit

QUESTION = "How many vacation days do I get?"
DELTAS = ("Full-time staff get ", "25 days of paid vacation ", "<!channel> per year ", "[1].")


class StreamingGenerator:
    """Writes its answer in a few chunks with short pauses, like an LLM streaming tokens."""

    name = "streaming"

    def __init__(self, *, pause: float = 0.1, fail: bool = False, stream: bool = True) -> None:
        self.pause = pause
        self.fail = fail
        self.stream = stream

    def generate(self, request: GenerationRequest, *, on_delta: DeltaFn | None = None) -> Generation:
        for i, chunk in enumerate(DELTAS):
            if i:
                time.sleep(self.pause)
            if on_delta is not None and self.stream:
                on_delta(chunk)
            if self.fail and i == 1:
                raise RuntimeError("provider connection reset")
        return Generation(text="".join(DELTAS), model="fake-stream-1", generator=self.name, route="cloud")


def harness_with(
    generator: StreamingGenerator,
    company: Company,
    retriever: FakeRetriever,
    audit: MemoryAudit,
    tmp_path: Path,
    *,
    interval: float = 0.01,
) -> SlackHarness:
    assistant = Assistant(
        company=company, retriever=retriever, indexer=FakeIndexer(), generator=generator, audit=audit
    )
    return SlackHarness(assistant, tmp_path / "state", stream_interval=interval)


@pytest.fixture
def parts(company: Company, retriever: FakeRetriever, audit: MemoryAudit, tmp_path: Path) -> dict[str, Any]:
    return {"company": company, "retriever": retriever, "audit": audit, "tmp_path": tmp_path}


def run(harness: SlackHarness, scenario: Any) -> None:
    async def main() -> None:
        async with harness:
            await scenario(harness)

    asyncio.run(main())


def raw(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False)


def has_actions(args: dict[str, Any]) -> bool:
    return any(b["type"] == "actions" for b in args.get("blocks") or [])


def test_dm_streams_into_one_message_then_finishes_with_the_blocks(parts: dict[str, Any]) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(dm(QUESTION))
        await h.stub.wait_for("reactions.remove")
        (placeholder,) = h.stub.to("chat.postMessage")
        assert placeholder["channel"] == "D0ALICE" and placeholder["thread_ts"] == "1700000002.000100"
        assert placeholder["text"].endswith("…") and not has_actions(placeholder)
        assert placeholder["text"].startswith("Full-time staff get")
        updates = h.stub.to("chat.update")
        assert len(updates) >= 2
        assert {u["channel"] for u in updates} == {"D0ALICE"}
        (ts,) = {u["ts"] for u in updates}  # always the placeholder the stub answered with
        assert [m["ts"] for m in h.stub.threads[("D0ALICE", "1700000002.000100")]] == [ts]
        *partial, final = updates
        assert any(u["text"].endswith("…") and "25 days" in u["text"] for u in partial)
        assert all(not has_actions(u) for u in partial)
        assert has_actions(final) and "*Sources*" in raw(final) and "…" not in final["text"]
        assert "25 days" in raw(final) and "request " in raw(final)
        # Slack control sequences in a chunk stay inert in every version of the message.
        for call in [placeholder, *updates]:
            assert "<!channel>" not in raw(call)
        assert any("&lt;!channel&gt;" in u["text"] for u in updates)
        assert len(h.stub.to("chat.postMessage")) == 1

    run(harness_with(StreamingGenerator(), **parts), scenario)


def test_channel_answers_never_stream(parts: dict[str, Any]) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(mention(QUESTION))
        await h.stub.wait_for("reactions.remove")
        (post,) = h.stub.to("chat.postMessage")
        assert has_actions(post) and "25 days" in raw(post) and "<!channel>" not in raw(post)
        assert h.stub.to("chat.update") == []

    run(harness_with(StreamingGenerator(), **parts), scenario)


def test_updates_are_throttled_and_the_final_answer_is_not_delayed(parts: dict[str, Any]) -> None:
    async def scenario(h: SlackHarness) -> None:
        started = time.monotonic()
        await h.event(dm(QUESTION))
        await h.stub.wait_for("reactions.remove")
        assert time.monotonic() - started < 5  # the 30 s interval did not hold the answer back
        assert len(h.stub.to("chat.postMessage")) == 1
        (final,) = h.stub.to("chat.update")  # nothing between placeholder and final answer
        assert has_actions(final)

    run(harness_with(StreamingGenerator(), **parts, interval=30.0), scenario)


def test_a_failure_after_streaming_replaces_the_partial_text(parts: dict[str, Any]) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(dm(QUESTION))
        await h.stub.wait_for("reactions.remove")
        (placeholder,) = h.stub.to("chat.postMessage")
        assert "Full-time staff" in placeholder["text"]
        final = h.stub.to("chat.update")[-1]
        assert ":warning:" in raw(final) and "Sorry" in final["text"]
        assert "Full-time staff" not in raw(final) and "connection reset" not in raw(final)

    run(harness_with(StreamingGenerator(fail=True), **parts), scenario)


def test_no_delta_means_one_plain_post_as_before(parts: dict[str, Any]) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(dm(QUESTION))
        await h.stub.wait_for("reactions.remove")
        (post,) = h.stub.to("chat.postMessage")
        assert has_actions(post) and h.stub.to("chat.update") == []

    run(harness_with(StreamingGenerator(stream=False), **parts), scenario)


def test_the_label_goes_on_the_final_streamed_message_only(parts: dict[str, Any]) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(dm(QUESTION))
        await h.stub.wait_for("reactions.remove")
        (placeholder,) = h.stub.to("chat.postMessage")
        assert "metadata" not in placeholder  # left behind, it would count as unlabelled
        *partial, final = h.stub.to("chat.update")
        assert all("metadata" not in u for u in partial)
        assert final["metadata"]["event_type"] == "deptbot_answer"
        assert final["metadata"]["event_payload"]["label"] == "internal"
        (stored,) = h.stub.threads[("D0ALICE", "1700000002.000100")]
        assert stored["metadata"] == final["metadata"] and stored["text"] == final["text"]

    run(harness_with(StreamingGenerator(), **parts), scenario)
