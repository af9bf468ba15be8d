"""Sign-in links from chat: ``/kb admin`` through the Slack stub server (ephemeral, admins
only) and ``kb admin`` through the Teams connector stub (1:1 chat only); the link then
signs in on the same server."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp

from bot.admin.auth import AdminLinks, register
from bot.store.admin_sessions import AdminSessionStore
from tests.adapters.slack.conftest import SlackHarness
from tests.adapters.slack.test_slack_server import run
from tests.admin.conftest import small_world

LINK = re.compile(r"http://127\.0\.0\.1:3978(/admin/signin\?token=[\w-]{40,})")


def test_slack_kb_admin_gives_admins_an_ephemeral_link_that_signs_in(tmp_path: Path) -> None:
    assistant, _ = small_world(tmp_path)
    harness = SlackHarness(assistant, tmp_path / "state")

    async def scenario(h: SlackHarness) -> None:
        await h.command("/kb", "admin", user="UHANK", name="hank")
        await h.command("/kb", "admin", user="UALICE", name="alice")
        await h.command("/kb", "admin", user="UNOMAIL", name="nomail")
        got = {p["_name"]: p for p in await h.stub.wait_for("response_url", 3)}
        assert all(p["response_type"] == "ephemeral" for p in got.values())
        hank = json.dumps(got["hank"])
        found = LINK.search(hank)
        assert found is not None and "works once" in hank
        for other in ("alice", "nomail"):
            assert "/admin/signin" not in json.dumps(got[other])
            assert "Only department admins" in json.dumps(got[other])

        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(h.url + found.group(1)) as page:
                assert page.status == 200
                html = await page.text()
            fields = dict(re.findall(r'name="(token|csrf)" value="([^"]+)"', html))
            async with browser.post(
                h.url + "/admin/signin", data=fields, headers={"Origin": h.url}, allow_redirects=False
            ) as resp:
                assert resp.status == 303
            async with browser.get(h.url + "/admin/d/hr/refresh") as page:
                assert page.status == 200 and "hank@example.com" in await page.text()

    run(harness, scenario)


def test_teams_kb_admin_only_in_a_personal_chat(tmp_path: Path) -> None:
    from tests.adapters.teams.conftest import Harness, _run, make_settings

    assistant, _ = small_world(tmp_path / "w")
    settings = make_settings(tmp_path)
    store = AdminSessionStore.in_state_dir(settings.state_dir)
    register(assistant, AdminLinks.for_assistant(assistant, lambda: store, settings.values.admin))

    async def scenario(h: Harness) -> None:
        shared = await h.ask(h.activity("kb admin", user="hank", kind="channel"))
        assert "/admin/signin" not in json.dumps([p.body for p in shared])
        assert "1:1 chat" in shared[-1].body["text"]

        posted = await h.ask(h.activity("kb admin", user="hank"))
        text = posted[-1].body["text"]
        assert LINK.search(text) is not None and "works once" in text
        assert all("personal-hank" in p.path for p in posted)

        alice = (await h.ask(h.activity("kb admin", user="alice")))[-1].body["text"]
        assert "/admin/signin" not in alice and "Only department admins" in alice

    asyncio.run(_run(scenario, assistant, settings))
    assert [(e.event, e.user, e.detail) for e in store.events()] == [("link", "hank@example.com", "teams")]
    store.close()
