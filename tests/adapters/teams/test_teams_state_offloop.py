"""The Teams adapter's conversation-state calls (history, reply index, references, person
links) run off the event loop: on PostgreSQL each is a network round trip, and on the loop
one slow database stalls every conversation the process serves. Off the loop must not
loosen the order: a turn's calls still run one after another, where they stood, and the
reply index and history are written only once the answer was posted."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.adapters.teams.bot import ENDPOINT_KEY
from tests.adapters.teams.conftest import Harness
from tests.loop_watch import watch_loop

ALL_CALLS = {
    "link_person",
    "history.get",
    "history.add_answer",
    "replies.remember",
    "replies.request_id",
    "replies.payload",
    "references.get",
    "references.put",
}


@dataclass(frozen=True)
class Call:
    name: str
    on_loop: bool  # ran on the event loop's thread
    messages: int  # messages the fake connector had been posted when it started
    started: float
    ended: float


class Recorder:
    """Notes where and when each store call ran; ``delay`` seconds are added to each (a slow database)."""

    def __init__(self, h: Harness, loop_thread: int, delay: float) -> None:
        self.calls: list[Call] = []
        self._h = h
        self._loop_thread = loop_thread
        self._delay = delay

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            messages = len(self._h.connector.messages())
            on_loop = threading.get_ident() == self._loop_thread
            if self._delay:
                time.sleep(self._delay)
            try:
                return fn(*args, **kwargs)
            finally:
                self.calls.append(Call(name, on_loop, messages, started, time.monotonic()))

        return call


class MapSpy:
    """One of the store's maps (history, replies, references), every method call recorded."""

    def __init__(self, real: Any, prefix: str, recorder: Recorder) -> None:
        self._real = real
        self._prefix = prefix
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        return self._recorder.wrap(f"{self._prefix}.{name}", attr) if callable(attr) else attr


def spy_on(h: Harness, delay: float = 0.0) -> Recorder:
    """Put a recorder between the running bot (its turns and private chats) and its state."""
    store = h.app[ENDPOINT_KEY].store
    recorder = Recorder(h, threading.get_ident(), delay)
    for prefix in ("history", "replies", "references"):
        setattr(store, prefix, MapSpy(getattr(store, prefix), prefix, recorder))
    store.link_person = recorder.wrap("link_person", store.link_person)  # type: ignore[method-assign]
    return recorder


def test_every_state_call_leaves_the_event_loop(teams: Callable[..., None]) -> None:
    seen: list[Call] = []

    async def scenario(h: Harness) -> None:
        spy = spy_on(h)
        # personal: the reference, the person link, history read, reply index, history write
        posted = await h.ask(h.activity("How many vacation days do I get?"))
        invoke = h.activity("")
        invoke.update(
            type="invoke",
            name="message/submitAction",
            text=None,
            replyToId=posted[-1].id,
            value={"actionName": "feedback", "actionValue": {"reaction": "like", "feedback": "{}"}},
        )
        status, _ = await h.post(invoke)  # the reply index read for a 👍
        assert status == 200
        # a vote on a channel card: the reply index's request id and stored answer
        posted = await h.ask(h.activity("How many vacation days do I get?", kind="channel"))
        up = posted[-1].body["attachments"][0]["content"]["actions"][0]["data"]
        submit = h.activity("", kind="channel", mention=False, value=up, replyToId=posted[-1].id)
        submit["text"] = None
        assert [p.method for p in await h.ask(submit)] == ["PUT"]
        # a restricted answer goes 1:1: reference looked up, created, stored; reply indexed
        restricted = h.activity(
            "ask finance What is the payroll salary band L3?", user="carol", kind="channel"
        )
        posted = await h.ask(restricted)
        assert any(
            "95,000" in p.body.get("text", "") for p in posted if p.conversation.startswith("a:private")
        )
        # the bot installed personally: the reference is kept
        added = h.activity("", user="bob", mention=False)
        added.update(type="conversationUpdate", text=None, membersAdded=[{"id": added["recipient"]["id"]}])
        await h.ask(added)
        seen.extend(spy.calls)
        spy.calls.clear()

    teams(scenario)
    names = {c.name for c in seen}
    assert names == ALL_CALLS, sorted(ALL_CALLS - names)
    assert [c.name for c in seen if c.on_loop] == []


def test_a_slow_store_never_pauses_the_loop_and_the_order_holds(teams: Callable[..., None]) -> None:
    """With a slow database (0.4 s a call): the loop keeps ticking, the turn's calls run one
    at a time in their old order, and the reply is indexed and remembered only after it was posted."""
    delay = 0.4
    results: list[tuple[list[Call], float]] = []

    async def scenario(h: Harness) -> None:
        spy = spy_on(h, delay=delay)
        async with watch_loop() as loop:
            posted = await h.ask(h.activity("How many vacation days do I get?"))
        assert "25 days" in posted[-1].body["text"]
        results.append((list(spy.calls), loop.worst))
        spy.calls.clear()

    teams(scenario)
    calls, worst_gap = results[-1]
    names = [c.name for c in calls]
    assert names == [
        "references.put",
        "link_person",
        "history.get",
        "replies.remember",
        "history.add_answer",
    ], names
    for before, after in itertools.pairwise(calls):
        assert before.ended <= after.started, (before.name, after.name)  # one at a time, in order
    by_name = {c.name: c for c in calls}
    assert by_name["history.get"].messages == 0  # read before the answer
    assert by_name["replies.remember"].messages == 1  # the answer was out before it was indexed
    # Every call slept 0.4 s off the loop's thread: asserted by where each call ran, not by
    # the ticker's worst gap, which can pass 0.4 s on a loaded machine with no call on it.
    assert [c.name for c in calls if c.on_loop] == [], worst_gap
