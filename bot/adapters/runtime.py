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
- at shutdown (``drain_reports``, the server's ``on_shutdown``) report work already
  queued is given ``SHUTDOWN_GRACE_SECONDS`` to run: a person's confirmed erase or export
  waiting behind a console report is done and answered, not dropped. What still has not
  started then is not started at all, and its caller gets ``Restarting`` (the adapters
  show its text: not done, nothing changed, send it again), instead of a silent cancel;
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
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

from bot.errors import DeptbotError
from bot.settings_schema import RuntimeSettings, parse_section

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
OnQueued = Callable[[int], Awaitable[None]]  # called once with the number of questions ahead

BACKGROUND_THREADS = 2
# At shutdown: how long queued report work (a person's erase or export, a console page) may
# still take to run, and then how long its callers get to send their replies. The first is
# aiohttp's own shutdown_timeout (``bot.adapters.http.serve``), so a stop stays well inside
# the 30 s a container platform usually allows before it kills the process.
SHUTDOWN_GRACE_SECONDS = 10.0
REPLY_SECONDS = 5.0


class Restarting(DeptbotError):
    """Report work (a privacy request) that had not started when the server began to stop:
    it never ran. The adapters show ``user_message`` to the person who asked."""

    user_message = (
        "The bot is restarting, so your request was not done and nothing was changed. Please send "
        "it again in a minute (for forget-me, ask for a new code: codes do not survive a restart)."
    )


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
        # report work submitted and not finished → the task awaiting it (``drain_reports``)
        self._report_jobs: dict[Future[Any], asyncio.Task[Any] | None] = {}
        self._closing = False

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
        """Admin console work (its session store, its figure pages) and a person's privacy
        export or erase: a cold report takes seconds, so it runs apart from the quick threads
        that Slack acks wait on. Raises ``Restarting`` when the server stops before it ran."""
        if self._closing:
            raise Restarting()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        job = self._reports.submit(call)
        self._report_jobs[job] = asyncio.current_task()
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            # cancelled by ``drain_reports`` before it started (not the caller being cancelled)
            if self._closing and job.cancelled() and (task is None or not task.cancelling()):
                raise Restarting() from None
            raise
        finally:
            self._report_jobs.pop(job, None)

    async def background(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Long work a person started (a refresh): off the loop and out of the other pools."""
        return await _run(self._background, fn, *args, **kwargs)

    async def drain_reports(self, grace: float | None = None, reply_seconds: float | None = None) -> None:
        """On server shutdown, before connections and clients close: let queued and running
        report work finish for up to ``grace`` seconds, then cancel what has not started (its
        callers get ``Restarting``), and give every caller up to ``reply_seconds`` to answer
        its person. Later ``report`` calls raise ``Restarting`` at once.

        Why finish rather than only refuse: a person who confirmed an erase waits for it, and
        it usually takes well under a second once a thread is free; refusing it would make
        them start over (a new code: codes live in this process). Bounded, because the
        platform kills a process that does not stop (a kill mid-erase is safe, see
        ``bot.governance.privacy``, but nobody hears about it)."""
        grace = SHUTDOWN_GRACE_SECONDS if grace is None else grace
        reply_seconds = REPLY_SECONDS if reply_seconds is None else reply_seconds
        self._closing = True
        callers = {t for t in self._report_jobs.values() if t is not None and t is not asyncio.current_task()}
        jobs = [asyncio.wrap_future(job) for job in self._report_jobs]
        for watched in jobs:  # its caller handles the outcome; these copies only wait
            watched.add_done_callback(_outcome_seen)
        if jobs:
            await asyncio.wait(jobs, timeout=grace)
        for job in list(self._report_jobs):
            if job.cancel():  # not started: it never will
                log.warning("shutdown: a queued report or privacy request was not run (its caller is told)")
        if callers:
            await asyncio.wait(callers, timeout=reply_seconds)

    def shutdown(self) -> None:
        """Stop accepting work; threads finish what they run (the server drains answers
        first, and ``drain_reports`` the report work)."""
        self._closing = True
        for pool in (self._answers, self._quick, self._reports, self._background):
            pool.shutdown(wait=False, cancel_futures=True)


def _outcome_seen(future: asyncio.Future[Any]) -> None:
    """Mark a failed job's error as seen on the copy ``drain_reports`` waited on (the
    caller's own future reports it), so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


async def _run(pool: Executor, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Like ``asyncio.to_thread`` (context variables included), on ``pool``."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(pool, call)
