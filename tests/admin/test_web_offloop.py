"""The console's store calls run off the event loop: every page view updates the session,
and on PostgreSQL each call is a network round trip that would stall the answers sharing
the loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from tests.admin.conftest import HANK, running, small_world


class ThreadSpy:
    """The real store, noting on which thread each call ran."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[tuple[str, bool]] = []  # (method, on the loop's thread)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, threading.current_thread() is threading.main_thread()))
            return attr(*args, **kwargs)

        return call


def test_store_calls_of_page_views_sign_in_and_out_leave_the_loop(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)

    async def scenario() -> list[tuple[str, bool]]:
        async with running(assistant, settings) as c:
            link = c.link(HANK)  # issued from chat: not a console request
            spy = ThreadSpy(c.console.store)
            c.console._store = spy  # type: ignore[assignment]
            resp = await c.open_link(link)
            assert resp.status == 303
            for page in ("/admin/", "/admin/d/hr", "/admin/d/hr/refresh", "/admin/d/finance"):
                assert (await c.get(page)).status in (200, 303, 403), page
            csrf = await c.csrf("/admin/d/hr")
            assert (await c.post("/admin/signout", {"csrf": csrf})).status == 200
            bad = await c.get("/admin/signin?token=nope")
            assert bad.status == 403
            return spy.calls

    calls = asyncio.run(scenario())
    names = {n for n, _ in calls}
    assert {"session", "redeem", "open_session", "record", "sign_out", "failures", "failed"} <= names
    assert [n for n, on_loop in calls if on_loop and n != "close"] == []  # close: at shutdown
