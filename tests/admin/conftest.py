"""Admin console fixtures: the real server (``build_app``) on 127.0.0.1, a browser-like
client that signs in through the real link flow, and an HTML checker.

``AdminClient`` behaves like a browser where it matters here: it keeps cookies, sends an
Origin header on every POST (browsers always do) and does not follow redirects, so tests
see each 303. ``check_html`` is the page validator: well-formed nesting, one ``<h1>``, a
skip link to ``#main``, every table captioned with scoped header cells, every form control
labelled, every chart an ``<svg role="img">`` with a ``<title>``, unique ids, and no
script or inline ``style=`` attribute (the CSP would block them).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.http import build_app
from bot.admin.auth import links_for
from bot.admin.documents import CITES
from bot.admin.overview import DAYS
from bot.admin.web import CONSOLE, Console
from bot.config import Company, load_company
from bot.core.pipeline import Assistant
from bot.governance.vault import forget_open_vaults
from bot.knowledge.embedders import Embedder, get_embedder
from bot.llm.extractive import ExtractiveGenerator
from bot.settings import Settings
from bot.store.audit import SqliteAuditLog
from bot.store.evalruns import EvalRun, EvalRunStore
from tests.admin.insights_setup import NOW, World, build_world
from tests.fakes import FakeIndexer, FakeRetriever, chunks_from_folder, make_company


@pytest.fixture(scope="module")
def wordllama() -> Embedder:
    return get_embedder("wordllama")


@pytest.fixture
def world(tmp_path: Path, wordllama: Embedder) -> Iterator[World]:
    """A real world (``insights_setup``) with empty insight caches, closed afterwards."""
    DAYS.clear()
    CITES.clear()
    w = build_world(tmp_path, wordllama)
    yield w
    w.audit.close()
    forget_open_vaults()


HANK = "hank@example.com"  # hr admin (group:hr-admins)
CAROL = "carol@example.com"  # finance admin (group:finance-admins)
ALICE = "alice@example.com"  # may ask HR, administers nothing
EVIL = "https://evil.example"
HR_TEXT = "HRVISIBLE-51c0"  # HR lets its admins see questions: this must show (the control)
FIN_TEXT = "FINHIDDEN-d3a7"  # Finance does not: this must never show


def small_world(root: Path, **env: str) -> tuple[Assistant, Settings]:
    """The tiny company with a fake retriever (no index build): enough for the sign-in flow."""
    company = make_company(root)
    state = root / "state"
    settings = Settings.load(departments=root / "departments", state=state, env=env)
    assistant = Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=ExtractiveGenerator(),
        audit=SqliteAuditLog(path=state / "audit.db"),
    )
    return assistant, settings


def seeded_world(tmp_path: Path, embedder: Embedder) -> World:
    """A real world (``insights_setup``) with questions, votes and two eval runs (the later
    one a regression); HR shows question text to its admins, Finance does not."""
    w = build_world(tmp_path, embedder)
    w.set_department("hr", admins_see_questions=True)
    for i, ago in enumerate((1, 2, 30)):
        rid = w.ask(
            "hr", f"Is there a parking allowance {HR_TEXT} {i}?", status="dont_know", ago=timedelta(days=ago)
        )
        w.vote(rid, "down", f"nothing about parking {HR_TEXT}")
        fid = w.ask(
            "finance",
            f"Can I expense a gym membership {FIN_TEXT} {i}?",
            status="dont_know",
            user=CAROL,
            ago=timedelta(days=ago),
        )
        w.vote(fid, "down", f"no answer at all {FIN_TEXT}", user=CAROL)
    for dept, doc in (("hr", "hr/time-off.md"), ("finance", "finance/expenses.md")):
        for n in range(4):
            rid = w.ask(dept, f"policy question {n}", doc_ids=[doc], tokens=(300, 80), cost=0.002)
            w.vote(rid, "up")
    store = EvalRunStore.in_state_dir(w.state)
    for days_ago, answered in ((3, 0.95), (1, 0.70)):
        store.record(
            EvalRun(
                department="hr",
                time=NOW - timedelta(days=days_ago),
                trigger="refresh",
                cases=12,
                source_hit=0.9,
                fact_hit=0.8,
                answered=answered,
                refusal=1.0,
                p50_ms=120.0,
                p95_ms=300.0,
                passed=answered > 0.8,
                below=() if answered > 0.8 else ("answered",),
                failed_cases=() if answered > 0.8 else ("carry-over",),
            )
        )
    store.close()
    return w


def reload_groups(assistant: Assistant, root: Path, groups: str) -> Company:
    """Rewrite groups.yaml and swap the configuration, as the config watcher does."""
    (root / "departments" / "groups.yaml").write_text(groups)
    company = load_company(root / "departments")
    assistant.reconfigure(company)
    return company


class AdminClient:
    """A browser-like client of one running server."""

    def __init__(self, client: TestClient, assistant: Assistant) -> None:
        self.client = client
        self.assistant = assistant

    @property
    def console(self) -> Console:
        return self.client.server.app[CONSOLE]

    @property
    def origin(self) -> str:
        url = self.client.make_url("/")
        return f"{url.scheme}://{url.host}:{url.port}"

    def link(self, email: str) -> str:
        """A fresh sign-in link (path and query), as ``/kb admin`` would give."""
        links = links_for(self.assistant)
        assert links is not None, "build_app registers the link issuer"
        issued = links.issue(email, via="test")
        assert issued.url, issued.reason
        parts = urlsplit(issued.url)
        return f"{parts.path}?{parts.query}"

    async def get(self, path: str, **kw: Any) -> ClientResponse:
        return await self.client.get(path, allow_redirects=False, **kw)

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, origin: str | None = "", **kw: Any
    ) -> ClientResponse:
        """POST a form; ``origin`` "" = this server's origin, None = no Origin header."""
        headers = dict(kw.pop("headers", {}))
        if origin is not None:
            headers["Origin"] = origin or self.origin
        return await self.client.post(path, data=data or {}, headers=headers, allow_redirects=False, **kw)

    async def open_link(self, link: str, *, origin: str | None = "") -> ClientResponse:
        """Open the link and press its "Sign in" button."""
        page = await self.get(link)
        assert page.status == 200, await page.text()
        html = await page.text()
        token = hidden(html, "token")
        return await self.post("/admin/signin", {"token": token, "csrf": hidden(html, "csrf")}, origin=origin)

    async def sign_in(self, email: str) -> None:
        resp = await self.open_link(self.link(email))
        assert resp.status == 303 and resp.headers["Location"] == "/admin/", await resp.text()

    async def csrf(self, path: str = "/admin/") -> str:
        """The CSRF token of the signed-in session, read from a page's sign-out form."""
        resp = await self.client.get(path)
        return hidden(await resp.text(), "csrf")


def hidden(html: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', html)
    assert found is not None, f"no hidden {name} field"
    return found.group(1)


@asynccontextmanager
async def running(assistant: Assistant, settings: Settings) -> AsyncIterator[AdminClient]:
    app = build_app(assistant=assistant, settings=settings, host="127.0.0.1")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield AdminClient(client, assistant)


# ── the HTML checker ──────────────────────────────────────────────────────────────────

VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    ]
)


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.labels_for: set[str] = set()
        self.controls: list[tuple[str, str, bool]] = []  # (tag, id, wrapped in a label)
        self.h1 = 0
        self.tables: list[dict[str, bool]] = []
        self.first_link: str | None = None
        self.svg_titles: list[bool] = []
        self.doctype = False
        self.lang = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        in_svg = "svg" in self.stack
        if "style" in a:
            self.problems.append(f"inline style attribute on <{tag}> (blocked by the CSP)")
        if tag == "script":
            self.problems.append("a <script> element")
        if any(k.startswith("on") for k in a):
            self.problems.append(f"an inline event handler on <{tag}>")
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "html":
            self.lang = bool(a.get("lang"))
        if tag == "h1":
            self.h1 += 1
        if tag == "a" and self.first_link is None:
            self.first_link = a.get("href") or ""
        if tag == "label" and a.get("for"):
            self.labels_for.add(str(a["for"]))
        if tag in ("input", "select", "textarea", "progress") and a.get("type") != "hidden":
            self.controls.append((tag, str(a.get("id") or ""), "label" in self.stack))
        if tag == "table":
            self.tables.append({"caption": False})
        if tag == "caption" and self.tables:
            self.tables[-1]["caption"] = True
        if tag == "th" and a.get("scope") not in ("col", "row", "colgroup", "rowgroup"):
            self.problems.append("<th> without scope")
        if tag == "svg" and not in_svg:
            if a.get("role") != "img":
                self.problems.append('<svg> without role="img"')
            self.svg_titles.append(False)
        if tag == "title" and in_svg and self.svg_titles:
            self.svg_titles[-1] = True
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if "svg" in self.stack or tag == "svg":
            if tag == "svg":
                self.problems.append("empty <svg/>")
            return  # self-closing SVG children are well-formed XML
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> does not close <{self.stack[-1] if self.stack else '-'}>")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()
        if tag == "table" and self.tables and not self.tables.pop()["caption"]:
            self.problems.append("<table> without <caption>")


def check_html(text: str) -> None:
    """Raise AssertionError listing every problem of one console page."""
    c = _Checker()
    c.feed(text)
    c.close()
    problems = list(c.problems)
    if not c.doctype:
        problems.append("no <!doctype html>")
    if not c.lang:
        problems.append("<html> without lang")
    if c.stack:
        problems.append(f"unclosed elements: {c.stack}")
    if c.h1 != 1:
        problems.append(f"{c.h1} <h1> elements (want exactly one)")
    if c.first_link != "#main" or "main" not in c.ids:
        problems.append("the first link is not a skip link to #main")
    dupes = {i for i in c.ids if c.ids.count(i) > 1}
    if dupes:
        problems.append(f"duplicate ids: {sorted(dupes)}")
    for tag, ident, wrapped in c.controls:
        if not wrapped and ident not in c.labels_for:
            problems.append(f"<{tag} id={ident!r}> without a label")
    if not all(c.svg_titles):
        problems.append("<svg> without <title>")
    assert not problems, "\n".join(problems)
