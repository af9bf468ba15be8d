"""One headless Chromium walk through the console (Debian's ``chromium`` package, driven
over the DevTools protocol with aiohttp; no browser is downloaded): sign-in link → Sign in
→ overview → gaps → documents → Refresh → progress, with the CSP on, no console errors,
Tab reaching the skip link first, and a screenshot of each page.

Skipped, saying why, where ``chromium`` is not installed. Screenshots go to
``$DEPTBOT_ARTIFACTS/admin`` when that variable is set, else to the test's tmp folder.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.admin.conftest import HANK, running, seeded_world

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless browser test: install Debian's chromium package (apt-get install chromium)",
)


class Page:
    """The DevTools protocol over one page's WebSocket: commands, events, helpers."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.loaded = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)
                if data.get("method") == "Page.loadEventFired":
                    self.loaded.set()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[n] = fut
        await self.ws.send_json({"id": n, "method": method, "params": params})
        reply = await asyncio.wait_for(fut, 20)
        assert "error" not in reply, reply
        return dict(reply.get("result", {}))

    async def eval(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result["result"].get("value")

    async def until_loaded(self, action: Any) -> None:
        self.loaded.clear()
        await action
        await asyncio.wait_for(self.loaded.wait(), 20)

    async def goto(self, url: str) -> None:
        await self.until_loaded(self.send("Page.navigate", url=url))

    async def click(self, selector: str) -> None:
        await self.until_loaded(self.eval(f"document.querySelector({json.dumps(selector)}).click()"))

    async def shot(self, folder: Path, name: str) -> Path:
        data = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path = folder / f"{name}.png"
        path.write_bytes(base64.b64decode(data["data"]))
        return path


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--window-size=1280,900",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            target = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024) as ws:
                page = Page(ws)
                await page.send("Page.enable")
                await page.send("Log.enable")
                await page.send("Runtime.enable")
                try:
                    yield page
                finally:
                    page.reader.cancel()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_headless_chromium_walk(tmp_path: Path) -> None:
    from bot.knowledge.embedders import get_embedder

    world = seeded_world(tmp_path / "world", get_embedder("wordllama"))
    shots = Path(os.environ.get("DEPTBOT_ARTIFACTS", str(tmp_path))) / "admin"
    shots.mkdir(parents=True, exist_ok=True)

    async def scenario() -> None:
        async with running(world.assistant, world.settings) as c, chromium(tmp_path / "profile") as page:
            c.console.insights = world.insights()
            base = c.origin
            await page.goto(base + c.link(HANK))
            assert await page.eval("document.title") == "Sign in — deptbot admin"
            await page.shot(shots, "0-sign-in")
            await page.click('form[action="/admin/signin"] button')
            assert await page.eval("location.pathname") == "/admin/d/hr", await page.eval(
                "document.body.innerText"
            )
            assert "token" not in await page.eval("location.href")
            # the nonce'd stylesheet applied under the CSP: the skip link is off screen
            assert await page.eval("getComputedStyle(document.querySelector('.skip')).position") == "absolute"
            await page.send(
                "Input.dispatchKeyEvent", type="keyDown", key="Tab", code="Tab", windowsVirtualKeyCode=9
            )
            await page.send(
                "Input.dispatchKeyEvent", type="keyUp", key="Tab", code="Tab", windowsVirtualKeyCode=9
            )
            assert await page.eval("document.activeElement.getAttribute('href')") == "#main"
            assert await page.eval("document.querySelectorAll('svg[role=img]').length") >= 4
            await page.shot(shots, "1-overview")
            for name, path in (
                ("2-gaps", "/gaps"),
                ("3-feedback", "/feedback"),
                ("4-documents", "/documents"),
            ):
                await page.goto(f"{base}/admin/d/hr{path}")
                assert await page.eval("document.querySelector('h1').textContent") != "Page not found"
                await page.shot(shots, name)
            await page.click('form[action="/admin/d/hr/refresh"] button')  # on the documents page
            assert await page.eval("location.pathname") == "/admin/d/hr/refresh"
            await asyncio.gather(*c.console._tasks)
            await page.goto(f"{base}/admin/d/hr/refresh")
            assert "knowledge refreshed" in await page.eval(
                "document.querySelector('[role=status]').textContent"
            )
            await page.shot(shots, "5-refreshed")
            await page.goto(f"{base}/admin/d/finance")
            assert await page.eval("document.querySelector('h1').textContent") == "Not allowed"
            errors = [
                entry
                for e in page.events
                if e.get("method") == "Log.entryAdded"
                and (entry := e["params"]["entry"])["level"] == "error"
                and not entry.get("url", "").endswith(("/favicon.ico", "/admin/d/finance"))  # expected errors
            ]
            assert errors == [], errors  # no CSP violation, nothing failed to load

    asyncio.run(scenario())
    assert len(list(shots.glob("*.png"))) == 6
