"""The Slack adapter's chat-state calls (``claim``, ``renew``, ``done``, ``has_thread``,
``mark_thread``) run off the event loop: on PostgreSQL each is a network round trip, and on the loop it
stalls every acknowledgement and answer sharing it (``bench.replicas``: ack p95 twice
SQLite's). Off the loop must not loosen the order: the claim is settled before the
event is acknowledged or answered, and a question's claim is marked done only once its
reply is posted."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from bot.adapters.http import SLACK
from bot.adapters.slack.app import SlackAdapter
from tests.adapters.slack.conftest import SlackHarness, mention
from tests.loop_watch import watch_loop

STATE_CALLS = frozenset({"claim", "renew", "done", "has_thread", "mark_thread"})
ROOT = "1700000001.000100"


@dataclass(frozen=True)
class Call:
    name: str
    on_loop: bool  # ran on the event loop's thread
    posts: int  # chat.postMessage calls the stub had seen when it started
    started: float
    ended: float


class StateSpy:
    """The real chat state, noting where and when each call ran; ``delay`` seconds are
    added to each call (a slow database)."""

    def __init__(self, real: Any, h: SlackHarness, loop_thread: int, delay: float = 0.0) -> None:
        self.real = real
        self.calls: list[Call] = []
        self._h = h
        self._loop_thread = loop_thread
        self._delay = delay

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name not in STATE_CALLS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            posts = len(self._h.stub.to("chat.postMessage"))
            on_loop = threading.get_ident() == self._loop_thread
            if self._delay:
                time.sleep(self._delay)
            try:
                return attr(*args, **kwargs)
            finally:
                self.calls.append(Call(name, on_loop, posts, started, time.monotonic()))

        return call


def spy_on(h: SlackHarness, delay: float = 0.0) -> StateSpy:
    """Put a spy between the running adapter (its de-duplication and its conversations) and its state."""
    assert h._runner is not None
    adapter: SlackAdapter = h._runner.app[SLACK]
    spy = StateSpy(adapter._state, h, threading.get_ident(), delay)
    adapter._state = spy
    adapter.conversations._state = spy
    return spy


def follow_up(text: str, ts: str) -> dict[str, Any]:
    """A plain reply (no mention) in the thread the bot answered in."""
    return {
        "type": "message",
        "channel_type": "group",
        "channel": "C0HRHELP",
        "user": "UALICE",
        "ts": ts,
        "thread_ts": ROOT,
        "text": text,
    }


def test_claims_thread_checks_and_done_marks_leave_the_event_loop(harness: SlackHarness) -> None:
    h = harness

    async def scenario() -> list[Call]:
        async with h:
            spy = spy_on(h)
            await h.event(mention("How many vacation days do I get?", ts=ROOT), event_id="EvMENTION")
            await h.stub.wait_for("reactions.remove")
            await h.event(follow_up("And how many sick days?", "1700000010.000100"), event_id="EvFOLLOW")
            await h.stub.wait_for("reactions.remove", 2)
            joined = {"type": "member_joined_channel", "user": "UGRACE", "channel": "C0HRHELP", "team": "T1"}
            await h.event(joined, event_id="EvMEMBER")  # done at once, in the de-duplication
            await h.event(mention("How many vacation days do I get?", ts=ROOT), event_id="EvMENTION", retry=1)
            await asyncio.sleep(0.2)  # listeners run after the acknowledgement
            return spy.calls

    calls = asyncio.run(scenario())
    assert len(h.stub.to("chat.postMessage")) == 2  # the mention and the follow-up; the retry is dropped
    names = [c.name for c in calls]
    assert names.count("claim") == 4 and names.count("done") == 3, names
    assert names.count("renew") == 2, names  # each answer restarts its claim's lease as it starts
    assert "has_thread" in names and names.count("mark_thread") == 2, names
    assert [c.name for c in calls if c.on_loop] == []


def test_off_the_loop_the_order_holds_claim_before_ack_and_done_after_the_reply(
    harness: SlackHarness,
) -> None:
    """With a slow database (0.4 s a call): the acknowledgement waits for the claim, the
    loop keeps serving meanwhile, and ``done`` starts only after the reply was posted."""
    h = harness
    delay = 0.4

    async def scenario() -> tuple[list[Call], float, float]:
        async with h:
            spy = spy_on(h, delay=delay)
            async with watch_loop() as loop:
                status, _ = await h.event(
                    mention("How many vacation days do I get?", ts=ROOT), event_id="EvSLOW"
                )
                acked = time.monotonic()
                assert status == 200
                await h.stub.wait_for("reactions.remove")
            return spy.calls, acked, loop.worst

    calls, acked, worst_gap = asyncio.run(scenario())
    (claim,) = [c for c in calls if c.name == "claim"]
    assert claim.ended <= acked  # settled before Slack got its 200
    (done,) = [c for c in calls if c.name == "done"]
    assert done.posts == 1  # the reply was out before the claim was marked done
    assert claim.ended <= done.started
    # Every call slept 0.4 s off the loop's thread. Asserted by where each call ran, not by
    # the ticker's worst gap: on a loaded machine a gap can pass 0.4 s with no call on the
    # loop, and that timing check failed CI-like runs under load (worst gap 0.47 s).
    assert [c.name for c in calls if c.on_loop] == [], worst_gap
