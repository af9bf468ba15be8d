"""Console reports must not delay Teams replies.

A Teams turn reads and writes its conversation state (reference, person link, history,
reply index) on the runtime's quick threads. When the console's reports ran there too, a
few admins opening cold reports made every Teams turn wait for them. Here the server is
the real one (``build_app``: the console and Teams share its runtime) and the console's
report threads are held on an Event (``tests.adapters.held_reports``): a 1:1 question
must still be answered before the reports are let go."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.http import build_app
from bot.adapters.teams.bot import mount
from bot.core.pipeline import Assistant
from tests.adapters.held_reports import SAFETY, hold_reports, until
from tests.adapters.teams.conftest import (
    GROUP_CHAT,
    PEOPLE,
    ROSTER,
    TEAM,
    FakeConnector,
    Harness,
    make_settings,
    member,
    secure,
)
from tests.pg_fixtures import DbBackend


def test_a_teams_question_is_answered_while_console_reports_hold_their_threads(
    assistant: Assistant, tmp_path: Path, db_backend: DbBackend
) -> None:
    settings, auth, issuer = secure(make_settings(tmp_path, db_backend.env))
    seen: dict[str, Any] = {}

    def teams(app: web.Application) -> None:
        mount(app, assistant=assistant, settings=settings, auth=auth)

    async def scenario() -> None:
        roster = [member(n) for n in ROSTER]
        connector = FakeConnector(
            members={f"29:{n}": member(n) for n in PEOPLE},
            rosters={TEAM: list(roster), GROUP_CHAT: list(roster)},
        )
        connector_server = TestServer(connector.app(), host="127.0.0.1")
        await connector_server.start_server()
        connector.url = str(connector_server.make_url("/")).rstrip("/") + "/"
        mounts: list[Callable[[web.Application], None]] = [teams]
        app = build_app(assistant=assistant, settings=settings, mounts=mounts, host="127.0.0.1")
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        h = Harness(client=client, connector=connector, app=app, issuer=issuer)
        held, cookies, busy = hold_reports(app)

        async def report() -> int:
            resp = await client.get("/admin/d/hr", cookies=cookies, allow_redirects=False)
            await resp.read()
            return resp.status

        reports = [asyncio.create_task(report()) for _ in range(busy + 1)]  # one more waits its turn
        try:
            await until(lambda: held.entered >= busy)
            try:
                # ``ask`` waits for the 202, then for the answers in flight (at most 10 s)
                posted = await asyncio.wait_for(h.ask(h.activity("How many vacation days do I get?")), SAFETY)
                if not posted:
                    raise TimeoutError
                seen["answer"] = posted[-1].body.get("text", "")
                seen["answered_while_held"] = not held.release.is_set()
            except TimeoutError:
                seen["stuck"] = True
        finally:
            held.release.set()
            seen["reports"] = await asyncio.gather(*reports)
            await client.close()
            await connector_server.close()
        assert connector.invalid == [], "Teams would refuse these activities"

    asyncio.run(scenario())
    assert "stuck" not in seen, "the Teams reply waited behind the console reports"
    assert "25 days" in seen["answer"]
    assert seen["answered_while_held"]
    assert seen["reports"] == [200] * len(seen["reports"])
