"""Answers a person may still share into the channel ("Share in channel" button).

Kept in memory for an hour, keyed by request id, with the ``Answer`` itself: sharing
re-posts exactly what the asker saw, never a new answer, and only after the core said yes
again at click time (``Assistant.channel_verdict`` with freshly fetched members). Every
answer to ``/ask`` in a shared conversation is kept, with or without a button, so a click
on an old or forged button is refused with a reason rather than trusted. After a restart
the button says the answer expired.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.core.types import Answer


@dataclass(frozen=True)
class Shareable:
    answer: Answer
    channel: str  # where the answer was asked (the response_url posts there)
    user: str  # the asker's Slack id: only they may share it
    blocks: list[dict[str, Any]]
    text: str
    expires: float = 0.0  # set by ``SharedAnswers.put``


class SharedAnswers:
    def __init__(
        self, *, ttl: float = 3600.0, size: int = 2000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._items: OrderedDict[str, Shareable] = OrderedDict()

    def put(self, item: Shareable) -> None:
        if not item.expires:
            item = replace(item, expires=self._clock() + self._ttl)
        rid = item.answer.request_id
        self._items[rid] = item
        self._items.move_to_end(rid)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def take(self, request_id: str) -> Shareable | None:
        """Remove and return the item (one share per answer, even for a double click)."""
        item = self._items.pop(request_id, None)
        if item is None or item.expires < self._clock():
            return None
        return item

    def restore(self, item: Shareable) -> None:
        """Put back an item whose share was refused (same expiry): the asker may retry."""
        self.put(item)
