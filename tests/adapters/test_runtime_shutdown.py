"""At shutdown, a person's queued erase or export is done or answered, never dropped.

Chat exports and confirmed erasures run on the report threads, behind console reports.
``Runtime.shutdown`` cancelled queued work (``cancel_futures=True``), so a ``forget-me
CODE`` waiting there at a restart got no reply at all. Now the server's ``on_shutdown``
(``Runtime.drain_reports``) gives queued report work a bounded grace to run and be answered;
what still has not started then never runs, and the person is told it was not done.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.adapters import runtime as runtime_mod
from bot.adapters.http import RUNTIME
from bot.adapters.runtime import Restarting, Runtime
from bot.core.pipeline import Assistant
from bot.governance.privacy import SelfService
from tests.adapters.slack.conftest import SlackHarness
from tests.adapters.slack.test_slack_server import run
from tests.governance.test_privacy_chat import _texts, assistant, company, state  # noqa: F401 - fixtures

SAFETY = 20.0  # seconds: only a stuck call reaches it (the test then fails)


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(int(SAFETY / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


def _hold(runtime: Runtime, release: threading.Event) -> list[asyncio.Task[bool]]:
    """Fill every report thread with a console report that waits for ``release``."""
    return [asyncio.create_task(runtime.report(release.wait, SAFETY)) for _ in range(runtime.report_threads)]


def _queued(runtime: Runtime) -> int:
    return runtime._reports._work_queue.qsize()  # type: ignore[attr-defined]


def test_queued_report_work_runs_within_the_grace() -> None:
    async def main() -> None:
        runtime = Runtime(report_threads=1)
        release = threading.Event()
        held = _hold(runtime, release)
        ran: list[str] = []
        queued = asyncio.create_task(runtime.report(lambda: ran.append("erase") or "receipt"))
        await _until(lambda: _queued(runtime) == 1)
        drain = asyncio.create_task(runtime.drain_reports(grace=SAFETY, reply_seconds=SAFETY))
        await asyncio.sleep(0.05)
        assert not drain.done()  # waiting for the queued work, not cancelling it
        release.set()
        await drain
        assert await queued == "receipt" and ran == ["erase"]
        assert all(t.done() for t in held)
        with pytest.raises(Restarting):  # nothing new starts once the server stops
            await runtime.report(lambda: ran.append("late"))
        runtime.shutdown()
        assert ran == ["erase"]

    asyncio.run(main())


def test_queued_report_work_past_the_grace_never_runs_and_its_caller_is_told() -> None:
    async def main() -> None:
        runtime = Runtime(report_threads=1)
        release = threading.Event()
        held = _hold(runtime, release)
        ran: list[str] = []
        queued = asyncio.create_task(runtime.report(lambda: ran.append("erase")))
        await _until(lambda: _queued(runtime) == 1)
        await runtime.drain_reports(grace=0.05, reply_seconds=0.05)
        with pytest.raises(Restarting) as caught:
            await queued
        assert "not done" in caught.value.user_message and "nothing was changed" in caught.value.user_message
        release.set()
        await asyncio.gather(*held)  # the running one finishes as before
        runtime.shutdown()
        await asyncio.sleep(0.05)
        assert ran == []

    asyncio.run(main())


def test_a_caller_cancelled_during_the_drain_is_still_cancelled() -> None:
    """Only work the drain refused becomes ``Restarting``: a request whose own task is
    cancelled (aiohttp dropping a console connection) is cancelled as before."""

    async def main() -> None:
        runtime = Runtime(report_threads=1)
        release = threading.Event()
        held = _hold(runtime, release)
        queued = asyncio.create_task(runtime.report(lambda: None))
        await _until(lambda: _queued(runtime) == 1)
        drain = asyncio.create_task(runtime.drain_reports(grace=SAFETY, reply_seconds=0.05))
        await asyncio.sleep(0.02)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        release.set()
        await drain
        await asyncio.gather(*held)
        runtime.shutdown()

    asyncio.run(main())


@pytest.mark.parametrize("released", [True, False], ids=["done-in-grace", "past-grace"])
def test_slack_forget_me_queued_at_shutdown_is_answered(
    assistant: Assistant,  # noqa: F811
    state: Path,  # noqa: F811
    released: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real server stopping (``AppRunner.cleanup``: on_shutdown, then on_cleanup) while
    a confirmed ``/kb forget-me CODE`` waits behind held console reports."""
    monkeypatch.setattr(runtime_mod, "SHUTDOWN_GRACE_SECONDS", 5.0 if released else 0.2, raising=False)
    erased: list[str] = []
    real = SelfService.confirm_erase

    def spy(self: SelfService, *a: object, **k: object) -> object:
        erased.append("ran")
        return real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(SelfService, "confirm_erase", spy)
    harness = SlackHarness(assistant, state)
    release = threading.Event()

    async def scenario(h: SlackHarness) -> None:
        await h.command("/kb", "forget-me", user="UALICE", name="start")
        start = _texts(await h.stub.wait_for("response_url", 1))["start"]
        code = re.search(r"/kb forget-me ([A-Z0-9]{6})", start)
        assert code is not None
        assert h._runner is not None
        runtime: Runtime = h._runner.app[RUNTIME]
        held = _hold(runtime, release)
        await h.command("/kb", f"forget-me {code.group(1)}", user="UALICE", name="confirm")
        await _until(lambda: _queued(runtime) == 1)
        stopping = asyncio.create_task(h.stop_server())
        if released:
            await asyncio.sleep(0.1)
            release.set()
        try:
            got = _texts(await h.stub.wait_for("response_url", 2, timeout=8.0))
        finally:
            release.set()
            await stopping
            await asyncio.gather(*held, return_exceptions=True)
        if released:  # before: no reply at all (the queued erase was cancelled at cleanup)
            assert "Erased at" in got["confirm"] and erased == ["ran"]
        else:
            assert "restarting" in got["confirm"] and "not done" in got["confirm"]
            assert "new code" in got["confirm"] and erased == []

    run(harness, scenario)
