"""Mentions, DMs and thread follow-ups: the asynchronous work after Slack was acknowledged.

Slack calls in, bolt acknowledges at once, and these coroutines do the rest: 👀 while
working, identity via ``users.info``, bounded thread history and (in a channel or group DM)
who can read it (``members.ChannelMembers``, fetched concurrently with the history), the
synchronous core on an answer thread (``runtime.Runtime``), then one reply in the thread — in the channel only
when the core found it channel-safe for those readers, otherwise to the asker alone with
one line saying why.
In DMs a streaming generator's text appears as it is written (``streaming.StreamedReply``):
still one message, finished with the same blocks as any other answer.

Exactly one reply per event, even across a replica's death: every message posted for an
event names it in its message metadata (``translate.answer_metadata``), and a replica that
took the event over from one that left its claim undone (``Claimed.TAKEN_OVER``) first
looks in the thread for that reply (``Conversations.answered_before``). A fresh claim never
looks (no extra Slack call); a lookup that fails answers anyway, since a duplicate beats
silence. Answers only the asker may see (ephemeral) cannot be looked up: Slack keeps no
copy an app can read, so a takeover answers them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import render
from bot.adapters.runtime import Runtime, busy_line
from bot.adapters.slack import blocks as bk
from bot.adapters.slack import translate
from bot.adapters.slack.members import ChannelMembers, Home
from bot.adapters.slack.people import SlackPeople
from bot.adapters.slack.streaming import StreamedReply
from bot.core.pipeline import Assistant
from bot.core.types import Answer, ChannelReaders, Classification, Status, Turn
from bot.errors import DeptbotError, StoreError
from bot.store.dedup import Claimed

log = logging.getLogger(__name__)

THINKING = "is looking through the documents…"
# help, usage and failure lines carry no document text
NOTE = translate.answer_metadata(Classification.PUBLIC)
_STATUS_UNSUPPORTED = {"missing_scope", "not_allowed_token_type", "unknown_method", "method_deprecated"}
# The bolt context keys under which the adapter's de-duplication leaves a question's claim
# (``SlackAdapter._dedup``): its key, the event id, and whether it was taken over from a
# holder that left it undone; and the events whose claims the listeners here mark done.
CLAIM = "deptbot_claim"
CLAIM_EVENT = "deptbot_claim_event"
CLAIM_TAKEN_OVER = "deptbot_claim_taken_over"
ANSWERED_EVENTS = frozenset({"app_mention", "message"})
# The look for an earlier reply after a takeover: one page of the thread after the question.
# 15 is the most Slack returns to commercially distributed non-Marketplace apps (which get
# 1 request a minute); internal and Marketplace apps have Tier 3 (50+ a minute). The
# replica that died replied within its lease, so its reply is among the first after the
# question unless more than this many messages came in between (then: answered again).
LOOKUP_LIMIT = 15
# A rate-limited lookup would wait out Slack's Retry-After (the client retries); past this
# the question is answered rather than kept waiting.
LOOKUP_SECONDS = 10.0


class ChatState(Protocol):
    """Persisted adapter state (``bot.store.dedup.DedupStore``)."""

    def claim(self, key: str) -> Claimed: ...

    def done(self, key: str) -> None: ...

    def renew(self, key: str) -> bool: ...

    def mark_thread(self, channel: str, thread: str) -> None: ...

    def has_thread(self, channel: str, thread: str) -> bool: ...


class Claim:
    """A question's claim on its event (``bot.store.dedup``), marked done once: right after
    the reply is posted (the shorter the gap, the smaller the window in which a replica
    killed after replying could be taken over), or when nothing is to be posted. A claim
    left undone — the process died, or an error escaped — lapses, and Slack's redelivery
    is taken over by whichever replica gets it (``taken_over``), which answers unless it
    finds the reply already posted (``Conversations.answered_before``). The write runs on ``runtime``'s quick
    threads (on PostgreSQL it is a round trip the event loop must not wait in), awaited,
    so it still comes after the reply and before the 👀 comes off."""

    def __init__(
        self,
        state: ChatState,
        key: str | None,
        runtime: Runtime,
        *,
        event_id: str = "",
        taken_over: bool = False,
    ) -> None:
        """``taken_over``: the previous holder left the claim undone, so it may have posted
        its reply already (``Conversations.answered_before`` looks for it)."""
        self._state = state
        self._key = key
        self._runtime = runtime
        self.event_id = event_id
        self.taken_over = taken_over

    @classmethod
    def of(cls, state: ChatState, context: Any, runtime: Runtime) -> Claim:
        get = context.get if context is not None else (lambda _name: None)
        key, event_id = get(CLAIM), get(CLAIM_EVENT)
        return cls(
            state,
            key if isinstance(key, str) else None,
            runtime,
            event_id=event_id if isinstance(event_id, str) else "",
            taken_over=get(CLAIM_TAKEN_OVER) is True,
        )

    async def renew(self) -> bool:
        """Restart the lease as the answer starts (it may have waited in the in-flight
        queue). False: a redelivery took the event over meanwhile, so that replica answers
        and this one must not. A store error keeps going: one answer too many is better than
        none."""
        if self._key is None:
            return True
        try:
            kept = bool(await self._runtime.quick(self._state.renew, self._key))
        except StoreError:
            log.warning("could not renew a Slack event's claim; answering anyway")
            return True
        if not kept:  # the claim is the new holder's: never mark it done from here
            self._key = None
        return kept

    async def done(self) -> None:
        key, self._key = self._key, None
        if key is None:
            return
        try:
            await self._runtime.quick(self._state.done, key)
        except StoreError:  # the reply is out; only a redelivery after the lease could repeat it
            log.warning("could not mark a Slack event answered; its claim will lapse")


class Conversations:
    """``runtime`` bounds answers in progress (``runtime.max_in_flight``, shared with Teams):
    under a burst, acknowledgements stay fast while answers beyond the cap wait their turn
    in order of arrival, and the asker is told so (ephemerally) at once.
    ``stream_interval`` is the least time (seconds) between two updates of a streamed DM reply."""

    def __init__(
        self,
        *,
        assistant: Assistant,
        state: ChatState,  # called on the runtime's quick threads, never on the event loop
        people: SlackPeople,
        members: ChannelMembers,  # one per adapter: membership events must clear the same cache
        runtime: Runtime,  # one per server: the in-flight cap is shared
        stream_interval: float = 1.0,
    ) -> None:
        self.stream_interval = stream_interval
        self._assistant = assistant
        self._state = state
        self._people = people
        self._members = members
        self._status_supported = True
        self._runtime = runtime

    # ── listeners (bolt injects arguments by name) ───────────────────────────────────

    async def on_mention(self, event: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        claim = Claim.of(self._state, context, self._runtime)
        inc = translate.incoming(event, bot_user_id=context.bot_user_id)
        if inc is not None and not inc.is_dm:
            inc = replace(inc, event_id=claim.event_id)
            await self.answer(inc, client, Home.of(context), claim=claim)
        await claim.done()

    async def on_message(self, event: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        claim = Claim.of(self._state, context, self._runtime)
        inc = translate.incoming(event, bot_user_id=context.bot_user_id)
        if inc is not None:
            inc = replace(inc, event_id=claim.event_id)
            known = inc.in_thread and await self._runtime.quick(
                self._state.has_thread, inc.channel, inc.thread
            )
            if translate.should_answer_message(inc, thread_known=known):
                await self.answer(inc, client, Home.of(context), claim=claim)
        await claim.done()

    # ── the flow ────────────────────────────────────────────────────────────────────

    async def answer(
        self, inc: translate.Incoming, client: AsyncWebClient, home: Home, *, claim: Claim | None = None
    ) -> None:
        async def queued(ahead: int) -> None:
            line = busy_line(ahead)
            await client.chat_postEphemeral(
                channel=inc.channel,
                user=inc.user,
                thread_ts=inc.thread,
                blocks=bk.line_blocks(bk.escape(line), icon=":hourglass_flowing_sand:"),
                text=line,
            )

        async with self._runtime.admit(on_queued=queued):
            claim = claim or Claim(self._state, None, self._runtime)
            if not await claim.renew():
                log.info("a Slack event was taken over by another replica while queued; not answered here")
                return
            if claim.taken_over and await self.answered_before(inc, client, home):
                log.info("a Slack event taken over from a replica that died had its reply already")
                await claim.done()
                return
            await self._answer(inc, client, home, claim)

    async def answered_before(self, inc: translate.Incoming, client: AsyncWebClient, home: Home) -> bool:
        """Is this bot's reply to ``inc`` already in its thread? Asked only after a takeover
        (the last holder died between claiming and ``done``, perhaps after posting). Every
        reply is threaded (``thread_ts``, in DMs too), so ``conversations.replies`` after
        the question finds it by its metadata (``include_all_metadata``: Slack leaves
        metadata out otherwise); the same scopes as reading thread history. Any failure
        (an error, a missing scope, a rate limit, a timeout) is False: answering again
        beats leaving the question unanswered. Logged without content."""
        if not inc.event_id:
            return False
        try:
            resp = await asyncio.wait_for(
                client.conversations_replies(
                    channel=inc.channel,
                    ts=inc.thread,
                    oldest=inc.ts,  # replies come after the question
                    limit=LOOKUP_LIMIT,
                    include_all_metadata=True,
                ),
                LOOKUP_SECONDS,
            )
        except Exception as exc:  # any failure: answer (a duplicate beats silence)
            log.warning(
                "could not look for an earlier reply to a Slack event taken over (%s); answering it again",
                _error(exc),
            )
            return False
        messages = resp.get("messages") or []
        return translate.answers_event(
            messages, inc.event_id, bot_user_id=home.bot_user_id, bot_id=home.bot_id
        )

    async def _answer(
        self, inc: translate.Incoming, client: AsyncWebClient, home: Home, claim: Claim
    ) -> None:
        if not inc.text:  # help names only what this person may ask (others may read it too)
            person = await self._people.lookup(inc.user, client)
            names = [d.name for d in self._assistant.departments_for(person.email)] if person.email else []
            text = "Hi! Ask me a question in words, for example: _How many vacation days do I get?_\n"
            text += "\n".join(render.help_lines(names))
            await self._post(client, inc, bk.line_blocks(text), "Ask me a question in words.", metadata=NOTE)
            await claim.done()
            return
        await self._working(client, inc, on=True)
        # Never in a channel: whether the answer may be shown there is known only at the end.
        reply = None
        if inc.is_dm:
            reply = StreamedReply(
                client=client, channel=inc.channel, thread=inc.thread, interval=self.stream_interval
            )
        stopped = False
        try:
            answer = await self._ask(inc, client, home, reply)
            if answer is not None:
                await self._deliver(client, inc, answer, reply)
        except asyncio.CancelledError:
            stopped = True  # the server stops mid-answer: nothing was posted, the claim lapses
            raise
        except Exception:
            rid = render.new_request_id()
            log.exception("slack event failed (request %s)", rid)
            await self._post_quietly(client, inc, render.sorry(rid), reply)
        finally:
            if reply is not None:
                reply.cancel()  # a no-op once finished
            if not stopped:
                await claim.done()  # before the 👀 comes off: the reply (or the failure line) is posted
            await self._working(client, inc, on=False)

    async def _ask(
        self,
        inc: translate.Incoming,
        client: AsyncWebClient,
        home: Home,
        reply: StreamedReply | None,
    ) -> Answer | None:
        person = await self._people.lookup(inc.user, client)
        turns, readers = await asyncio.gather(
            self._history(client, inc, home), self._readers(client, inc, home)
        )
        message = translate.to_message(inc, email=person.email, turns=turns, readers=readers)
        on_delta = reply.on_delta if reply is not None else None
        try:
            return await self._runtime.answer(self._assistant.ask, message, on_delta=on_delta)
        except DeptbotError as exc:  # the person's mistake (too long, unknown name): safe text
            line = bk.escape(exc.user_message)
            await self._post(client, inc, bk.line_blocks(line), line, reply, metadata=NOTE)
            return None

    async def _deliver(
        self,
        client: AsyncWebClient,
        inc: translate.Incoming,
        answer: Answer,
        reply: StreamedReply | None = None,
    ) -> None:
        """Channel-safe rule: in a channel, anything not everyone there may read goes to the asker only."""
        private = inc.in_channel and (answer.status == Status.DENIED or not answer.channel_safe)
        note = render.channel_restricted_note(answer) if private and answer.status != Status.DENIED else ""
        blocks = bk.answer_blocks(answer, note=note)
        text = bk.fallback_text(answer, note=note)
        if private:
            await client.chat_postEphemeral(
                channel=inc.channel, user=inc.user, thread_ts=inc.thread, blocks=blocks, text=text
            )
            return
        metadata = translate.answer_metadata(answer.classification, answer.request_id)
        # the thread is ours before the reply shows: a follow-up typed the moment it appears
        # (or while chat.postMessage is still in flight) must find it known, not be ignored
        await self._runtime.quick(self._state.mark_thread, inc.channel, inc.thread)
        await self._post(client, inc, blocks, text, reply, metadata=metadata)

    async def _post(
        self,
        client: AsyncWebClient,
        inc: translate.Incoming,
        blocks: list[bk.Block],
        text: str,
        reply: StreamedReply | None = None,
        *,
        metadata: dict[str, Any],
    ) -> None:
        """One message in the thread; with ``reply`` it replaces whatever was streamed.

        ``metadata`` labels the message, so a follow-up in the thread knows how sensitive
        it is when it comes back as history (``translate.history``), and names the event
        it answers, so a replica taking the event over finds it (``answered_before``).
        """
        metadata = translate.for_event(metadata, inc.event_id)
        if reply is not None:
            await reply.finish(blocks, text, metadata)
            return
        await client.chat_postMessage(
            channel=inc.channel,
            thread_ts=inc.thread,
            blocks=blocks,
            text=text,
            metadata=metadata,
            unfurl_links=False,
            unfurl_media=False,
        )

    async def _post_quietly(
        self, client: AsyncWebClient, inc: translate.Incoming, line: str, reply: StreamedReply | None = None
    ) -> None:
        try:
            blocks = bk.line_blocks(bk.escape(line), icon=":warning:")
            if inc.in_channel:  # a failure is the asker's business, not the channel's
                await client.chat_postEphemeral(
                    channel=inc.channel, user=inc.user, thread_ts=inc.thread, blocks=blocks, text=line
                )
            else:
                await self._post(client, inc, blocks, line, reply, metadata=NOTE)
        except Exception:
            log.exception("could not tell the user about a failure")

    async def _readers(
        self, client: AsyncWebClient, inc: translate.Incoming, home: Home
    ) -> ChannelReaders | None:
        """Who can read the conversation; None in a DM (only the asker and the bot)."""
        return await self._members.readers(inc.channel, client, home) if inc.in_channel else None

    async def _history(self, client: AsyncWebClient, inc: translate.Incoming, home: Home) -> tuple[Turn, ...]:
        if not inc.in_thread:
            return ()
        try:
            resp = await client.conversations_replies(
                channel=inc.channel,
                ts=inc.thread,
                limit=translate.HISTORY_TURNS * 3,
                include_all_metadata=True,  # our messages' labels
            )
        except SlackApiError as exc:
            log.info("conversations.replies failed: %s", exc.response.get("error"))
            return ()
        messages = resp.get("messages") or []
        return translate.history(messages, bot_user_id=home.bot_user_id, before_ts=inc.ts, bot_id=home.bot_id)

    async def _working(self, client: AsyncWebClient, inc: translate.Incoming, *, on: bool) -> None:
        """👀 on the question (and the assistant status in DMs); failures never matter."""
        try:
            if on:
                await client.reactions_add(channel=inc.channel, timestamp=inc.ts, name="eyes")
            else:
                await client.reactions_remove(channel=inc.channel, timestamp=inc.ts, name="eyes")
        except Exception as exc:
            log.debug("reaction %s failed: %s", "add" if on else "remove", _error(exc))
        if not (inc.is_dm and self._status_supported):
            return
        try:
            await client.assistant_threads_setStatus(
                channel_id=inc.channel, thread_ts=inc.thread, status=THINKING if on else ""
            )
        except Exception as exc:
            if _error(exc) in _STATUS_UNSUPPORTED:
                self._status_supported = False
            log.debug("assistant.threads.setStatus failed: %s", _error(exc))


def _error(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        response: Mapping[str, Any] = exc.response
        return str(response.get("error", ""))
    return type(exc).__name__
