"""Every console request runs its work on the runtime's report threads, never on the quick
threads that Slack acknowledgements (the event claim) and Teams conversation state wait on:
a cold report takes seconds on a large audit log, and a few of them used to hold every
quick thread (``tests/adapters/slack/test_slack_ack_behind_reports.py`` shows the wait)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.runtime import Runtime
from bot.errors import ConfigError
from bot.settings import Settings
from tests.admin.conftest import HANK, running, small_world

HR = "/admin/d/hr"
PAGES = ("/admin/", HR, f"{HR}/gaps", f"{HR}/documents", f"{HR}/feedback", f"{HR}/evals", f"{HR}/refresh")


def test_console_pages_sign_in_and_out_use_the_report_threads_only(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)
    pools: list[str] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        async def call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            pools.append(name)
            return await real(fn, *args, **kwargs)

        return call

    async def scenario() -> list[str]:
        async with running(assistant, settings) as c:
            runtime = c.console.runtime
            runtime.quick = spy("quick", runtime.quick)  # type: ignore[method-assign]
            runtime.report = spy("report", runtime.report)  # type: ignore[method-assign]
            await c.sign_in(HANK)
            for page in PAGES:
                assert (await c.get(page)).status in (200, 303, 403), page
            csrf = await c.csrf("/admin/d/hr")
            assert (await c.post("/admin/signout", {"csrf": csrf})).status == 200
            assert (await c.get("/admin/signin?token=nope")).status == 403
            return pools

    used = asyncio.run(scenario())
    assert "report" in used and used.count("report") >= len(PAGES) + 5  # sessions and the figure pages
    assert "quick" not in used


def test_report_threads_are_their_own_pool_and_a_setting() -> None:
    """Busy report threads leave the quick threads free, and ``[runtime] report_threads`` is
    read (packaged default 2) and checked like the other pool sizes."""

    async def scenario() -> None:
        runtime = Runtime(quick_threads=1, report_threads=1)
        held = threading.Event()
        report = asyncio.create_task(runtime.report(held.wait, 20))
        await asyncio.sleep(0)
        assert await runtime.quick(lambda: "claimed") == "claimed"  # not behind the report
        assert not report.done()
        held.set()
        assert await report is True
        runtime.shutdown()

    asyncio.run(scenario())
    runtime = Runtime.from_section({})
    assert runtime.report_threads == 2
    runtime.shutdown()
    runtime = Runtime.from_section({"report_threads": 3})
    assert (runtime.quick_threads, runtime.report_threads) == (4, 3)
    runtime.shutdown()
    for bad in (0, 65, "2"):
        with pytest.raises(ConfigError) as err:
            Runtime.from_section({"report_threads": bad})
        assert err.value.field == "runtime.report_threads"
    assert Settings.load(env={"DEPTBOT_RUNTIME__REPORT_THREADS": "5"}).values.runtime.report_threads == 5
    with pytest.raises(ValueError):
        Runtime(report_threads=0)
