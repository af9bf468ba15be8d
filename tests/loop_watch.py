"""How long the event loop went without running: a ticker task that wakes every 10 ms and
records the gap since its last wake-up. A blocking call on the loop's thread shows as a
gap as long as the call; tests of work moved off the loop assert on ``worst``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class LoopGaps:
    def __init__(self) -> None:
        self.gaps: list[float] = []

    @property
    def worst(self) -> float:
        return max(self.gaps, default=0.0)


@asynccontextmanager
async def watch_loop(every: float = 0.01) -> AsyncIterator[LoopGaps]:
    """Tick on the running loop while the block runs; the gaps are in the yielded object."""
    seen = LoopGaps()

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            seen.gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    try:
        yield seen
    finally:
        task.cancel()
