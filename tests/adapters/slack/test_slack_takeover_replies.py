"""Exactly one reply even when a replica dies between posting its reply and marking the
event's claim done (``bot.store.dedup``): the claim lapses, Slack redelivers
(X-Slack-Retry-Num), and the replica taking the event over first looks in the thread for a
message of this bot whose metadata names the event (``Conversations.answered_before``).

"Dying" is two real things here: the server is stopped (a new one, a new claim holder,
takes its place on the same state) and its ``done`` never reached the store; the lease is
short and really lapses. The lookup goes through the real slack_sdk to the stub, which
answers ``conversations.replies`` as Slack does (metadata only with ``include_all_metadata``,
``oldest``, ``limit``). A lookup that fails answers again (a duplicate beats silence); a
fresh claim never looks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bot.store.dedup as dedup_module
from bot.adapters.http import SLACK
from bot.adapters.slack import conversation, translate
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.types import Classification
from bot.store.dedup import Dedup
from tests.adapters.slack.conftest import SCOPES, SlackHarness, dm, mention
from tests.adapters.slack.test_slack_streaming import StreamingGenerator
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit

LEASE = 0.6  # seconds: short, so it really lapses within the test
QUESTION = "How many vacation days do I get?"
QUESTION_TS = "1700000001.000100"


@pytest.fixture
def dies_before_done(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys whose ``done`` never reaches the store (the process was killed right after
    posting); the test empties the list when the next replica starts. Leases are short."""
    dying: list[str] = []
    real_done = Dedup.done

    def done(self: Dedup, key: str) -> None:
        if key in dying:
            return
        real_done(self, key)

    monkeypatch.setattr(Dedup, "done", done)
    monkeypatch.setattr(dedup_module, "lease_seconds", lambda _settings: LEASE)
    return dying


def _state(h: SlackHarness) -> Dedup:
    assert h._runner is not None
    state: Dedup = h._runner.app[SLACK]._state
    return state


async def _settled(h: SlackHarness, key: str, timeout: float = 10.0) -> None:
    """Until the running replica's claim on ``key`` is done (the redelivery was handled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claimed = _state(h).claimed(key)
        if claimed is not None and claimed[2]:
            await asyncio.sleep(0.2)  # anything still in flight after done (👀 off) lands
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the redelivery of {key} was never settled")


async def _replica_dies_after_posting(
    h: SlackHarness, event: dict[str, Any], event_id: str, dying: list[str], post: str = "chat.postMessage"
) -> None:
    """Replica one answers ``event`` and dies before ``done``; replica two starts on the
    same state once the lease lapsed, and Slack redelivers to it."""
    dying.append(f"slack:{event_id}")
    await h.event(event, event_id=event_id)
    await h.stub.wait_for(post)
    await h.stub.wait_for("reactions.remove")  # the answer is over; done never reached the store
    claimed = _state(h).claimed(f"slack:{event_id}")
    assert claimed is not None and not claimed[2], claimed
    await h.stop_server()  # killed
    dying.clear()
    await asyncio.sleep(LEASE + 0.2)  # the lease lapses
    await h.start_server()  # another replica: a new holder on the same claims
    status, _ = await h.event(event, event_id=event_id, retry=1)
    assert status == 200
    await _settled(h, f"slack:{event_id}")


def _lookups(h: SlackHarness) -> list[dict[str, Any]]:
    """conversations.replies calls that looked for an earlier reply (history reads have no ``oldest``)."""
    return [a for a in h.stub.to("conversations.replies") if "oldest" in a]


@pytest.mark.parametrize("where", ["channel", "dm"])
def test_a_reply_posted_before_the_replica_died_is_not_posted_again(
    harness: SlackHarness, dies_before_done: list[str], where: str
) -> None:
    h = harness
    event = mention(QUESTION, ts=QUESTION_TS) if where == "channel" else dm(QUESTION, ts=QUESTION_TS)
    channel = event["channel"]

    async def scenario() -> None:
        async with h:
            await _replica_dies_after_posting(h, event, "EvDIED", dies_before_done)

    asyncio.run(scenario())
    posts = h.stub.to("chat.postMessage")
    assert len(posts) == 1, f"the reply was posted again after a takeover: {len(posts)} posts"
    assert posts[0]["metadata"]["event_payload"]["event_id"] == "EvDIED"
    (lookup,) = _lookups(h)
    assert lookup["channel"] == channel and lookup["ts"] == QUESTION_TS and lookup["oldest"] == QUESTION_TS
    assert lookup["include_all_metadata"] in ("1", "true") and int(lookup["limit"]) <= 15
    assert len(h.stub.to("reactions.add")) == 1  # replica two did not even start working on it


def test_a_streamed_dm_reply_is_found_by_its_final_update(
    company: Company,
    retriever: FakeRetriever,
    audit: MemoryAudit,
    tmp_path: Path,
    dies_before_done: list[str],
) -> None:
    """A streamed DM answer is a placeholder (no metadata: left behind it must read as
    unlabelled) that ``chat.update`` finishes with the metadata; that is what is found."""
    assistant = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=StreamingGenerator(pause=0.02),
        audit=audit,
    )
    h = SlackHarness(assistant, tmp_path / "state", stream_interval=0.01)

    async def scenario() -> None:
        async with h:
            await _replica_dies_after_posting(
                h, dm(QUESTION, ts=QUESTION_TS), "EvSTREAM", dies_before_done, post="chat.update"
            )

    asyncio.run(scenario())
    assert len(h.stub.to("chat.postMessage")) == 1  # the placeholder, once
    final = h.stub.to("chat.update")[-1]
    assert final["metadata"]["event_payload"]["event_id"] == "EvSTREAM"
    assert len(_lookups(h)) == 1


def test_a_replica_that_died_before_replying_is_replaced_by_one_reply(
    harness: SlackHarness, dies_before_done: list[str]
) -> None:
    """Taken over, looked up, nothing found: the question is answered, once."""
    h = harness

    async def scenario() -> None:
        async with h:
            assert _state(h).claim("slack:EvSILENT")  # claimed by a replica that dies at once
            await asyncio.sleep(LEASE + 0.2)
            await h.event(mention(QUESTION, ts=QUESTION_TS), event_id="EvSILENT", retry=1)
            await _settled(h, "slack:EvSILENT")

    asyncio.run(scenario())
    (post,) = h.stub.to("chat.postMessage")
    assert post["metadata"]["event_payload"]["event_id"] == "EvSILENT"
    assert len(_lookups(h)) == 1


def _internal_error(h: SlackHarness) -> None:
    h.stub.errors["conversations.replies"] = "internal_error"


def _rate_limited(h: SlackHarness) -> None:
    h.stub.rate_limit_always.add("conversations.replies")  # the client's retries run out


def _missing_scope(h: SlackHarness) -> None:
    h.stub.scopes = SCOPES - {"groups:history"}  # C0HRHELP is a private channel


def _too_slow(h: SlackHarness) -> None:
    h.stub.held["conversations.replies"] = asyncio.Event()  # answered only after the test


@pytest.mark.parametrize("failure", [_internal_error, _rate_limited, _missing_scope, _too_slow])
def test_a_lookup_that_fails_answers_again_and_says_so_without_content(
    harness: SlackHarness,
    dies_before_done: list[str],
    caplog: pytest.LogCaptureFixture,
    failure: Callable[[SlackHarness], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The documented trade-off: when the thread cannot be read, a second reply is
    better than leaving the question unanswered (it may never have been answered)."""
    h = harness
    monkeypatch.setattr(conversation, "LOOKUP_SECONDS", 0.5)

    async def scenario() -> None:
        async with h:
            failure(h)
            with caplog.at_level(logging.WARNING, logger="bot.adapters.slack.conversation"):
                await _replica_dies_after_posting(
                    h, mention(QUESTION, ts=QUESTION_TS), "EvFAIL", dies_before_done
                )
            for gate in h.stub.held.values():
                gate.set()

    asyncio.run(scenario())
    assert len(h.stub.to("chat.postMessage")) == 2
    (warning,) = [r for r in caplog.records if "earlier reply" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "vacation" not in logged.lower() and "UALICE" not in logged


def test_a_fresh_claim_makes_no_lookup_call(harness: SlackHarness) -> None:
    """No extra Slack call in the ordinary case: a mention, a DM and a thread follow-up
    (whose history read is not a lookup) all answered, none looked up."""
    h = harness
    follow_up = {
        "type": "message",
        "channel_type": "group",
        "channel": "C0HRHELP",
        "user": "UALICE",
        "ts": "1700000010.000100",
        "thread_ts": QUESTION_TS,
        "text": "And how many sick days?",
    }

    async def scenario() -> None:
        async with h:
            await h.event(mention(QUESTION, ts=QUESTION_TS), event_id="EvFRESH1")
            await h.stub.wait_for("reactions.remove")
            await h.event(follow_up, event_id="EvFRESH2")
            await h.event(dm(QUESTION, ts="1700000020.000100"), event_id="EvFRESH3")
            await h.stub.wait_for("reactions.remove", 3)
            await asyncio.sleep(0.2)

    asyncio.run(scenario())
    posts = h.stub.to("chat.postMessage")
    assert len(posts) == 3
    assert sorted(p["metadata"]["event_payload"]["event_id"] for p in posts) == [
        "EvFRESH1",
        "EvFRESH2",
        "EvFRESH3",
    ]
    assert len(h.stub.to("conversations.replies")) == 1  # the follow-up's history, nothing else
    assert _lookups(h) == []


def test_only_this_bots_reply_naming_the_event_counts() -> None:
    """The lookup's reading of a thread page: another event's reply, another app's message
    with our event type, a reply without metadata (stripped, or posted before) do not count."""

    def ours(event_id: str, **extra: Any) -> dict[str, Any]:
        meta = translate.answer_metadata(Classification.INTERNAL, "r1", event_id)
        return {"ts": "2.0", "user": "UBOT", "bot_id": "BBOT", "text": "x", "metadata": meta, **extra}

    def found(*messages: dict[str, Any]) -> bool:
        return translate.answers_event(messages, "EvX", bot_user_id="UBOT")

    assert found(ours("EvX"))
    assert not found(ours("EvOTHER"))
    assert not found(ours("EvX", user="UOTHERAPP", bot_id="BOTHER"))
    assert not found({**ours("EvX"), "metadata": None}, {"ts": "3.0", "user": "UALICE", "text": "EvX"})
    assert translate.for_event(translate.answer_metadata(Classification.PUBLIC), "")["event_payload"] == {
        "label": "public"
    }
