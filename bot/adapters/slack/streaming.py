"""One reply that grows while the generator streams (direct messages only).

The core calls ``on_delta`` on its worker thread; each chunk is handed to the event loop
with ``call_soon_threadsafe`` (the worker never waits for Slack). On the loop, the first
chunk posts a placeholder in the thread, later chunks ``chat.update`` it at most once per
``interval``, and ``finish`` replaces it with the final Block Kit answer — or with the
error or denial, so partial text never stays behind. Exactly one message per answer:
when no chunk ever arrived, ``finish`` simply posts.

Only for DMs: in a channel, whether an answer may be shown there is known at the end,
so streaming could leak restricted text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack import blocks as bk

log = logging.getLogger(__name__)

ELLIPSIS = bk.ELLIPSIS


def partial_blocks(text: str) -> list[bk.Block]:
    """The text so far, escaped and converted exactly like a final answer, plus "…"."""
    pieces = bk.split_text(bk.mrkdwn(text.rstrip()) + ELLIPSIS)
    return [bk.section(p) for p in pieces[: bk.MAX_BLOCKS]]


def partial_text(text: str) -> str:
    """Notification text for the placeholder (escaped, short, never cut inside an escape)."""
    return bk.clip(bk.escape(text.rstrip()) + ELLIPSIS, bk.FALLBACK_CHARS, more=ELLIPSIS)


class StreamedReply:
    """A reply in ``thread`` of ``channel``: streamed into while open, then finished once.

    Create it on the event loop; pass ``on_delta`` to ``Assistant.ask``; await ``finish``
    on the loop with the final blocks (answer, error or denial) after ``ask`` returned.
    """

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        channel: str,
        thread: str,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread = thread
        self._interval = interval
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._text = ""
        self._sent = ""  # text the message shows now
        self._ts: str | None = None  # the placeholder's ts once posted
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False

    @property
    def started(self) -> bool:
        """True once a chunk arrived (a placeholder is, or is being, posted)."""
        return self._task is not None

    # ── worker thread ───────────────────────────────────────────────────────────────

    def on_delta(self, chunk: str) -> None:
        """Called by the generator's thread: hand the chunk over, return at once."""
        if not chunk:
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown): drop it
            self._loop.call_soon_threadsafe(self._add, chunk)

    # ── event loop ──────────────────────────────────────────────────────────────────

    def _add(self, chunk: str) -> None:
        if self._closed:
            return
        self._text += chunk
        if self._task is None:
            self._task = self._loop.create_task(self._stream())
        self._wake.set()

    async def _stream(self) -> None:
        """Placeholder first, then throttled updates until ``finish`` closes the stream."""
        try:
            sent_at = self._clock()
            self._sent = self._text
            resp = await self._client.chat_postMessage(
                channel=self._channel,
                thread_ts=self._thread,
                blocks=partial_blocks(self._sent),
                text=partial_text(self._sent),
                unfurl_links=False,
                unfurl_media=False,
            )
            self._ts = str(resp["ts"])
        except Exception:
            log.warning("could not post the streaming placeholder", exc_info=True)
            return
        while not self._closed:
            self._wake.clear()
            if self._text == self._sent:
                await self._wake.wait()
                continue
            remaining = sent_at + self._interval - self._clock()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._until_closed(), remaining)
                continue
            sent_at = self._clock()
            self._sent = self._text
            try:
                await self._update(partial_blocks(self._sent), partial_text(self._sent))
            except Exception:  # a missed partial update is harmless; the final one matters
                log.info("streaming update failed", exc_info=True)

    async def _until_closed(self) -> None:
        while not self._closed:
            self._wake.clear()
            await self._wake.wait()

    async def _close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task

    def cancel(self) -> None:
        """Stop streaming without a final message (the listener itself was cancelled)."""
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _update(
        self, blocks: list[bk.Block], text: str, metadata: dict[str, Any] | None = None
    ) -> None:
        assert self._ts is not None
        await self._client.chat_update(
            channel=self._channel,
            ts=self._ts,
            blocks=blocks,
            text=text,
            metadata=metadata,
            unfurl_links=False,
            unfurl_media=False,
        )

    async def finish(self, blocks: list[bk.Block], text: str, metadata: dict[str, Any] | None = None) -> None:
        """The final message: replaces the streamed text, or is posted when nothing streamed.

        ``metadata`` (the label) goes only on the final message: a placeholder left behind
        has none, so a later follow-up treats it as unlabelled (fail closed).
        """
        await self._close()
        if self._ts is not None:
            await self._update(blocks, text, metadata)
            return
        await self._client.chat_postMessage(
            channel=self._channel,
            thread_ts=self._thread,
            blocks=blocks,
            text=text,
            metadata=metadata,
            unfurl_links=False,
            unfurl_media=False,
        )
