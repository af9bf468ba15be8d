"""Answers a person may still share into the channel ("Share in channel" button).

Kept in memory for an hour, keyed by request id: sharing re-posts exactly what the
asker saw (already checked channel-safe), never a new answer. After a restart the
button says the answer expired.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class SharedAnswers:
    def __init__(
        self, *, ttl: float = 3600.0, size: int = 2000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, list[dict[str, Any]], str]] = OrderedDict()

    def put(self, request_id: str, blocks: list[dict[str, Any]], text: str) -> None:
        self._items[request_id] = (self._clock() + self._ttl, blocks, text)
        self._items.move_to_end(request_id)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, request_id: str) -> tuple[list[dict[str, Any]], str] | None:
        item = self._items.pop(request_id, None)
        if item is None or item[0] < self._clock():
            return None
        return item[1], item[2]
