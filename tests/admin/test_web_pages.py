"""The console pages through the real server, over a real world (index, sealed audit log,
eval runs; ``tests.admin.insights_setup``): every page renders valid, accessible HTML for
its admin, the refresh button runs the real refresh with progress, and question text of a
department with ``admins_see_questions`` off never appears in any page."""

from __future__ import annotations

import asyncio
import threading
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from bot.admin.pages import CSS
from bot.core.ports import IndexReport, ProgressFn
from bot.knowledge.embedders import Embedder, get_embedder
from tests.admin.conftest import (
    CAROL,
    FIN_TEXT,
    HANK,
    HR_TEXT,
    AdminClient,
    check_html,
    running,
    seeded_world,
)
from tests.admin.insights_setup import World

PAGES = ("", "/gaps", "/documents", "/feedback", "/evals", "/refresh")


@pytest.fixture(scope="module")
def console_embedder() -> Embedder:
    emb = get_embedder("wordllama")
    emb.embed(["warm up"])
    return emb


@pytest.fixture
def world(tmp_path: Path, console_embedder: Embedder) -> World:
    return seeded_world(tmp_path, console_embedder)


def _serve(world: World) -> AbstractAsyncContextManager[AdminClient]:
    return running(world.assistant, world.settings)


async def _all_pages(c: AdminClient, dept: str) -> dict[str, str]:
    got: dict[str, str] = {}
    for page in PAGES:
        for days in ("", "?days=7", "?days=90") if page in ("", "/gaps", "/documents") else ("",):
            resp = await c.get(f"/admin/d/{dept}{page}{days}")
            html = await resp.text()
            assert resp.status == 200, (page, days, html[-500:])
            check_html(html)
            got[f"{page}{days}"] = html
    return got


def test_every_page_renders_valid_html_and_hidden_text_never_shows(world: World) -> None:
    async def scenario() -> None:
        async with _serve(world) as c:
            c.console.insights = world.insights()
            await c.sign_in(CAROL)
            finance = await _all_pages(c, "finance")
            async with _serve(world) as h:
                h.console.insights = world.insights()
                await h.sign_in(HANK)
                hr = await _all_pages(h, "hr")
                for odd in ("%C2%B2", "-7", "9999999999999999999999", "7.0"):  # any other value: 30 days
                    resp = await h.get(f"/admin/d/hr?days={odd}")
                    assert resp.status == 200 and 'aria-current="page">Last 30 days' in await resp.text()

            for html in finance.values():  # the canary: carol may not read finance questions
                assert FIN_TEXT not in html and "gym membership" not in html
                assert HR_TEXT not in html
            assert (
                "admins_see_questions" in finance["/gaps"] and "admins_see_questions" in finance["/feedback"]
            )
            for html in hr.values():
                assert FIN_TEXT not in html
            assert HR_TEXT in hr["/gaps"] and HR_TEXT in hr["/feedback"]  # the control: text shown

            overview = hr[""]
            assert 'aria-current="page">Last 30 days' in overview and "Questions per day" in overview
            assert "<svg" in overview and 'role="img"' in overview and "data table" in overview
            assert 'aria-current="page">Last 7 days' in hr["?days=7"]
            assert "Regression" in hr["/evals"] and 'class="regression"' in hr["/evals"]
            assert "carry-over" in hr["/evals"]
            assert (
                "Time off policy" in hr["/documents"] and 'action="/admin/d/hr/refresh"' in hr["/documents"]
            )
            assert "broken.pdf" in hr["/documents"]  # failed to index, with its reason

    asyncio.run(scenario())


def test_refresh_button_runs_the_refresh_with_progress(world: World) -> None:
    release = threading.Event()
    real = world.assistant.refresh

    def held(department: str, *, user: str, progress: ProgressFn | None = None) -> IndexReport:
        """The real refresh, after reporting 1 of 3 files and waiting for the test."""
        if progress is not None:
            progress(1, 3, "time-off.md")
        assert release.wait(20)
        return real(department, user=user, progress=progress)

    world.assistant.refresh = held  # type: ignore[method-assign]

    async def scenario() -> None:
        async with _serve(world) as c:
            c.console.insights = world.insights()
            await c.sign_in(HANK)
            token = await c.csrf("/admin/d/hr/documents")
            resp = await c.post("/admin/d/hr/refresh", {"csrf": token})
            assert resp.status == 303 and resp.headers["Location"] == "/admin/d/hr/refresh"
            for _ in range(100):
                if c.console._jobs["hr"].done:
                    break
                await asyncio.sleep(0.02)
            html = await (await c.get("/admin/d/hr/refresh")).text()
            check_html(html)
            assert "1 of 3 files" in html and 'http-equiv="refresh"' in html and "<progress" in html
            docs = await (await c.get("/admin/d/hr/documents")).text()
            assert "A refresh is running" in docs and 'action="/admin/d/hr/refresh"' not in docs
            again = await c.post("/admin/d/hr/refresh", {"csrf": token})  # while running: no second one
            assert again.status == 303 and len(c.console._tasks) == 1
            release.set()
            await asyncio.gather(*c.console._tasks)
            done = await (await c.get("/admin/d/hr/refresh")).text()
            check_html(done)
            assert "Human Resources knowledge refreshed" in done and 'http-equiv="refresh"' not in done
            docs = await (await c.get("/admin/d/hr/documents")).text()
            assert "Last refresh from this console" in docs

    asyncio.run(scenario())
    rows = [r for r in world.audit.tail(50) if r["status"] == "refresh"]
    assert [(r["user"], r["department"], r["platform"]) for r in rows] == [(HANK, "hr", "admin")]


def test_colours_have_enough_contrast() -> None:
    """WCAG AA (4.5:1) for every text colour on the backgrounds it is used on."""

    def lum(hex_: str) -> float:
        rgb = [int(hex_[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    def ratio(a: str, b: str) -> float:
        hi, lo = sorted((lum(a), lum(b)), reverse=True)
        return (hi + 0.05) / (lo + 0.05)

    var = dict(part.split(":") for part in CSS.split("{", 1)[1].split("}", 1)[0].replace("\n", "").split(";"))
    colour = {k.strip("-"): v for k, v in var.items() if v.startswith("#")}
    pairs = [
        ("fg", "bg"), ("fg", "panel"), ("muted", "bg"), ("muted", "panel"), ("link", "bg"),
        ("link", "panel"), ("bad", "badbg"), ("good", "goodbg"),
    ]  # fmt: skip
    for fg, bg in pairs:
        assert ratio(colour[fg], colour[bg]) >= 4.5, (fg, bg)
    assert ratio("#ffffff", colour["accent"]) >= 4.5  # button text
