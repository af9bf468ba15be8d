"""Where the synchronous core runs for the async adapters: sized pools and a fair queue.

The core stays synchronous (ARCHITECTURE rule 6); an answer spends nearly all its time
waiting on a blocking LLM call, so what bounds throughput is how many threads may wait at
once. ``asyncio.to_thread`` uses the loop's default executor (min(32, CPUs + 4) threads:
6 on a 2-core machine), so 50 answers from a 2 s model took 18 s, and a feedback click or a
status request waited behind them. Here:

- ``answer`` threads (``runtime.answer_threads``) run ``Assistant.ask`` only. The SDK
  clients the providers hold are ``httpx.Client`` instances (thread-safe, pooled up to 1,000
  connections), so one client serves every thread;
- ``quick`` threads (``runtime.quick_threads``) run the short calls (Slack event claims,
  Teams conversation state, feedback, status, the share re-check, usage, readiness), so
  they never wait behind answers. Slack needs its acknowledgement within 3 s, and the
  claim is settled before it, so nothing slow may share these threads;
- ``report`` threads (``runtime.report_threads``) run the admin console's work: its
  session store calls and its figure pages. A cold report takes seconds on a large audit
  log (about 2.3 s at 1M rows), so four admins opening reports used to hold all four quick
  threads and push Slack acknowledgements past 3 s (Slack then redelivers). Now a busy
  console only makes other console pages wait;
- ``background`` threads run refreshes (indexing can take minutes);
- ``admit()`` caps answers in flight (``runtime.max_in_flight``), shared by Slack and
  Teams. Beyond it a question waits in arrival order, and the adapter is told how many are
  ahead so it can say "busy, queued" to the person.

One ``Runtime`` per server (``bot.adapters.http.build_app`` makes it from the settings).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

from bot.settings_schema import RuntimeSettings, parse_section

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
OnQueued = Callable[[int], Awaitable[None]]  # called once with the number of questions ahead

BACKGROUND_THREADS = 2


def busy_line(ahead: int) -> str:
    """What a queued person reads (the same words on every platform)."""
    where = "you're next" if ahead == 0 else f"{ahead} ahead"
    return f"I'm busy — your question is queued ({where})."


class Runtime:
    """The answer, quick, report and background pools plus the in-flight cap (see the module text)."""

    def __init__(
        self,
        *,
        answer_threads: int = 64,
        quick_threads: int = 4,
        report_threads: int = 2,
        max_in_flight: int = 256,
    ) -> None:
        if min(answer_threads, quick_threads, report_threads, max_in_flight) < 1:
            raise ValueError("threads and max_in_flight must be at least 1")
        self.answer_threads = answer_threads
        self.quick_threads = quick_threads
        self.report_threads = report_threads
        self.max_in_flight = max_in_flight
        self._answers = ThreadPoolExecutor(answer_threads, thread_name_prefix="deptbot-answer")
        self._quick = ThreadPoolExecutor(quick_threads, thread_name_prefix="deptbot-quick")
        self._reports = ThreadPoolExecutor(report_threads, thread_name_prefix="deptbot-report")
        self._background = ThreadPoolExecutor(BACKGROUND_THREADS, thread_name_prefix="deptbot-refresh")
        self._active = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> Runtime:
        """``settings.section("runtime")``, checked by the settings schema (ConfigError names the key)."""
        r = parse_section(RuntimeSettings, section, "runtime")
        return cls(
            answer_threads=r.answer_threads,
            quick_threads=r.quick_threads,
            report_threads=r.report_threads,
            max_in_flight=r.max_in_flight,
        )

    # ── admission ───────────────────────────────────────────────────────────────────

    @property
    def in_flight(self) -> int:
        return self._active

    @property
    def queued(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    @asynccontextmanager
    async def admit(self, on_queued: OnQueued | None = None) -> AsyncIterator[None]:
        """Hold one of ``max_in_flight`` answer slots; wait in arrival order when all are taken.

        ``on_queued(ahead)`` runs once, only when the question has to wait; its failures are
        logged and ignored (the question still waits its turn and is answered).
        """
        if self._active < self.max_in_flight and not self._waiting:
            self._active += 1
        else:
            slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(slot)
            try:
                if on_queued is not None:
                    try:
                        await on_queued(self.queued - 1)
                    except Exception:
                        log.warning("could not tell a queued person they wait", exc_info=True)
                await slot
            except asyncio.CancelledError:
                if slot.done() and not slot.cancelled():
                    self._release()  # the slot was handed over just as we gave up: pass it on
                else:
                    slot.cancel()
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        """Hand the slot to the longest waiter, or free it."""
        while self._waiting:
            slot = self._waiting.popleft()
            if not slot.done():
                slot.set_result(None)  # ``_active`` stays: the slot changes hands
                return
        self._active -= 1

    # ── the pools ───────────────────────────────────────────────────────────────────

    async def answer(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` on an answer thread (call it inside ``admit()``)."""
        return await _run(self._answers, fn, *args, **kwargs)

    async def quick(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """A short chat-side call (claims, conversation state, feedback, status, usage,
        readiness) that must wait behind neither answers nor console reports."""
        return await _run(self._quick, fn, *args, **kwargs)

    async def report(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Admin console work (its session store, its figure pages): a cold report takes
        seconds, so it runs apart from the quick threads that Slack acks wait on."""
        return await _run(self._reports, fn, *args, **kwargs)

    async def background(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Long work a person started (a refresh): off the loop and out of the other pools."""
        return await _run(self._background, fn, *args, **kwargs)

    def shutdown(self) -> None:
        """Stop accepting work; threads finish what they run (the server drains answers first)."""
        for pool in (self._answers, self._quick, self._reports, self._background):
            pool.shutdown(wait=False, cancel_futures=True)


async def _run(pool: Executor, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Like ``asyncio.to_thread`` (context variables included), on ``pool``."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(pool, call)
