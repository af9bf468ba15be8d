"""Console reports held on their threads until released (no timing), for the tests that
chat keeps moving meanwhile (``test_slack_ack_behind_reports``, ``test_teams_reply_behind_reports``).

A cold console report takes seconds on a large audit log (about 2.3 s at 1M rows). The
console's work used to run on the runtime's quick threads, the ones Slack claims and Teams
conversation state use, so a few admins opening reports made chat wait behind them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.adapters.http import RUNTIME
from bot.adapters.runtime import Runtime
from bot.admin import auth
from bot.admin.web import CONSOLE, Console

HANK = "hank@example.com"  # administers hr
SAFETY = 20.0  # seconds: only a stuck call ever reaches it (the test then fails; nothing passes on time)


class HeldReports:
    """The console's real insights, with ``overview`` held until ``release`` is set."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.release = threading.Event()
        self.entered = 0
        self._lock = threading.Lock()

    def overview(self, department: str, days: int) -> Any:
        with self._lock:
            self.entered += 1
        self.release.wait(SAFETY)
        return self.real.overview(department, days)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def hold_reports(app: web.Application) -> tuple[HeldReports, dict[str, str], int]:
    """Hold the running app's console reports; returns them, the cookies of a signed-in hr
    admin, and how many reports fill the threads they run on."""
    console: Console = app[CONSOLE]
    held = HeldReports(console.insights)
    console.insights = held  # type: ignore[assignment]
    sid = console.store.open_session(HANK, absolute=3600.0)
    return held, {auth.COOKIE: sid}, console_threads(app[RUNTIME])


def console_threads(runtime: Runtime) -> int:
    """How many console reports run at once: the report threads (before they existed the
    reports ran on the quick threads, so filling those is what showed the old wait)."""
    return int(getattr(runtime, "report_threads", runtime.quick_threads))


async def until(check: Callable[[], bool]) -> None:
    for _ in range(int(SAFETY / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")
