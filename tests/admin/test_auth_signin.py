"""Admin console sign-in and authorization, through the real server on 127.0.0.1: one-time
links, expiry, cookie flags, CSRF and Origin checks, per-department access on the live
configuration, rate limits and the console's audit trail."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.admin.auth import csrf_token, links_for
from bot.admin.web import ADDRESS_FACTOR
from bot.store.admin_sessions import AdminSessionStore
from tests.admin.conftest import (
    ALICE,
    CAROL,
    EVIL,
    HANK,
    HR_TEXT,
    hidden,
    reload_groups,
    running,
    small_world,
)
from tests.fakes import GROUPS
from tests.store.conftest import pg_server, pg_url  # noqa: F401  (fixtures: a real PostgreSQL)

PAGES = ("", "/gaps", "/documents", "/feedback", "/evals", "/refresh")


def _nonce_free(html: str) -> str:
    return re.sub(r'nonce="[^"]*"', 'nonce=""', html)


def test_link_signs_in_once_and_the_token_leaves_the_address(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            link = c.link(HANK)
            assert link.startswith("/admin/signin?token=")
            assert len(link.split("=", 1)[1]) >= 40  # 32 random bytes
            first = await c.get(link)
            second_view = await c.get(link)  # looking at the link uses nothing up (link scanners)
            assert first.status == second_view.status == 200
            done = await c.open_link(link)
            assert done.status == 303 and done.headers["Location"] == "/admin/"  # no token in it
            home = await c.get("/admin/")
            assert home.status == 303 and home.headers["Location"] == "/admin/d/hr"  # one department
            page = await c.get("/admin/d/hr/refresh")
            assert page.status == 200 and HANK in await page.text()

            again = await c.get(link)  # used: refused, in a fresh browser too
            assert again.status == 403 and "expired or was already used" in await again.text()
            token = link.split("=", 1)[1]
            async with running(assistant, settings) as other:
                view = await other.get("/admin/signin")  # the form's csrf comes from the cookie
                assert view.status == 403
                replay = await other.post("/admin/signin", {"token": token, "csrf": "x"})
                assert replay.status == 403
                assert (await other.get("/admin/d/hr/refresh")).status == 403

    asyncio.run(scenario())
    store = AdminSessionStore.in_state_dir(settings.state_dir)
    events = [(e.event, e.user, e.detail) for e in store.events()]
    assert ("signin", HANK, "") in events and ("link", HANK, "test") in events
    assert ("signin-failed", "", "bad-link") in events
    raw = (settings.state_dir / AdminSessionStore.FILE).read_bytes()
    assert b"token=" not in raw


def test_expired_link_and_expired_sessions_are_refused(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)
    path = settings.state_dir / AdminSessionStore.FILE

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            past = AdminSessionStore(path=path, clock=lambda: time.time() - 11 * 60)
            old = past.create_link(HANK, 10 * 60)  # made 11 minutes ago, valid for 10
            assert (await c.get(f"/admin/signin?token={old}")).status == 403

            idle = AdminSessionStore(path=path, clock=lambda: time.time() - 31 * 60).open_session(
                HANK, absolute=8 * 3600
            )  # last seen 31 minutes ago (idle limit 30)
            c.client.session.cookie_jar.update_cookies({"deptbot_admin": idle})
            assert (await c.get("/admin/d/hr/refresh")).status == 403

            over = AdminSessionStore(path=path, clock=lambda: time.time() - 9 * 3600).open_session(
                HANK, absolute=8 * 3600
            )
            store = AdminSessionStore(path=path)
            assert store.session(over, idle=10**9) is None  # past the absolute limit, however active

            fresh = store.open_session(HANK, absolute=8 * 3600)
            c.client.session.cookie_jar.update_cookies({"deptbot_admin": fresh})
            assert (await c.get("/admin/d/hr/refresh")).status == 200

    asyncio.run(scenario())


def test_cookie_flags_over_http_and_https(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)
    _, https = small_world(tmp_path / "b", DEPTBOT_ADMIN__PUBLIC_URL="https://admin.example.com")

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            resp = await c.open_link(c.link(HANK))
            cookie = resp.headers.getall("Set-Cookie")
            session = next(v for v in cookie if v.startswith("deptbot_admin="))
            assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/" in session
            assert "Secure" not in session  # plain http on loopback
        async with running(assistant, https) as c:
            assert c.link(HANK).startswith("/admin/signin?token=")
            issued = links_for(assistant)
            assert issued is not None
            url = issued.issue(HANK, via="test").url
            assert url.startswith("https://admin.example.com/admin/signin?token=")
            link = url.removeprefix("https://admin.example.com")
            page = await c.get(link)
            signin = next(v for v in page.headers.getall("Set-Cookie") if "deptbot_signin=" in v)
            assert signin.startswith("__Host-deptbot_signin=") and "Secure" in signin
            value = signin.split(";", 1)[0].split("=", 1)[1]
            html = await page.text()
            resp = await c.post(  # a browser sends the Secure cookie back over https only: by hand
                "/admin/signin",
                {"token": hidden(html, "token"), "csrf": hidden(html, "csrf")},
                origin="https://admin.example.com",  # the public origin
                headers={"Cookie": f"__Host-deptbot_signin={value}"},
            )
            assert resp.status == 303, await resp.text()
            session = next(v for v in resp.headers.getall("Set-Cookie") if "deptbot_admin=" in v)
            assert session.startswith("__Host-deptbot_admin=")
            assert "Secure" in session and "HttpOnly" in session and "SameSite=Strict" in session

    asyncio.run(scenario())


def test_posts_need_the_csrf_token_and_this_origin(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            await c.sign_in(HANK)
            token = await c.csrf("/admin/d/hr/refresh")
            for data, origin in (
                ({}, ""),  # no token
                ({"csrf": "0" * 64}, ""),  # wrong token
                ({"csrf": "é" * 10}, ""),  # not even ASCII
                ({"csrf": token}, EVIL),  # cross-origin
                ({"csrf": token}, None),  # no Origin header
                ({"csrf": token}, "null"),  # a null origin needs the browser's Sec-Fetch-Site
            ):
                resp = await c.post("/admin/d/hr/refresh", data, origin=origin)
                assert resp.status == 403, (data, origin)
                assert (await c.post("/admin/signout", data, origin=origin)).status == 403
            for origin, site in ((EVIL, "same-origin"), ("null", "cross-site"), ("null", "same-site")):
                resp = await c.post(
                    "/admin/d/hr/refresh", {"csrf": token}, origin=origin, headers={"Sec-Fetch-Site": site}
                )
                assert resp.status == 403, (origin, site)
            assert c.console._jobs == {}  # no refresh started
            other = csrf_token("another-session-id")
            assert (await c.post("/admin/d/hr/refresh", {"csrf": other})).status == 403

            # what browsers send for the console's own forms under Referrer-Policy: no-referrer
            ok = await c.post(
                "/admin/d/hr/refresh",
                {"csrf": token},
                origin="null",
                headers={"Sec-Fetch-Site": "same-origin"},
            )
            assert ok.status == 303 and ok.headers["Location"] == "/admin/d/hr/refresh"
            await asyncio.gather(*c.console._tasks)
            assert c.console._jobs["hr"].ok

            # a sign-in POST from elsewhere is refused too (login CSRF)
            page = await c.get(c.link(HANK))
            form = await page.text()
            token_field = re.search(r'name="token" value="([^"]+)"', form)
            assert token_field is not None
            bad = await c.post("/admin/signin", {"token": token_field.group(1), "csrf": "x"}, origin=EVIL)
            assert bad.status == 403

            out = await c.post("/admin/signout", {"csrf": token})
            assert out.status == 200 and "signed out" in await out.text()
            assert (await c.get("/admin/d/hr/refresh")).status == 403

    asyncio.run(scenario())


def test_other_and_missing_departments_are_the_same_403_and_signed_out_is_403(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            for page in PAGES:
                assert (await c.get(f"/admin/d/hr{page}")).status == 403  # not signed in
            assert (await c.get("/admin/")).status == 403
            assert (await c.post("/admin/d/hr/refresh", {"csrf": "x"})).status == 403

            await c.sign_in(HANK)
            token = await c.csrf("/admin/d/hr/refresh")
            for page in PAGES:
                finance = await c.get(f"/admin/d/finance{page}")
                missing = await c.get(f"/admin/d/no-such-dept{page}")
                assert finance.status == missing.status == 403, page
                body = _nonce_free(await finance.text())
                assert body == _nonce_free(await missing.text())  # nothing tells them apart
                assert "Finance" not in body and "finance" not in body
            refresh = await c.post("/admin/d/finance/refresh", {"csrf": token})
            assert refresh.status == 403 and "finance" not in c.console._jobs

    asyncio.run(scenario())


def test_only_admins_get_links(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)

    async def scenario() -> None:
        async with running(assistant, settings):
            links = links_for(assistant)
            assert links is not None
            for person in (ALICE, "nobody@elsewhere.test", "", None, "not an email"):
                issued = links.issue(person, via="test")
                assert issued.url == "" and "Only department admins" in issued.reason
            assert links.issue(CAROL, via="test").url

    asyncio.run(scenario())


def test_config_reload_that_removes_an_admin_takes_effect_at_once(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            await c.sign_in(HANK)
            token = await c.csrf("/admin/d/hr/refresh")
            unused = c.link(HANK)
            assert (await c.get("/admin/d/hr/refresh")).status == 200
            reload_groups(
                assistant, tmp_path, GROUPS.replace("hr-admins: [hank@example.com]", "hr-admins: []")
            )
            assert (await c.get("/admin/d/hr/refresh")).status == 403
            assert (await c.get("/admin/")).status == 403
            assert (await c.post("/admin/d/hr/refresh", {"csrf": token})).status == 403
            assert "hr" not in c.console._jobs
            async with running(assistant, settings) as fresh:  # a link issued before the change
                assert (await fresh.open_link(unused)).status == 403

            reload_groups(  # made admin of two departments: a picker
                assistant,
                tmp_path,
                GROUPS.replace(
                    "finance-admins: [carol@example.com]",
                    "finance-admins: [carol@example.com, hank@example.com]",
                ),
            )
            picker = await c.get("/admin/")
            html = await picker.text()
            assert picker.status == 200 and 'href="/admin/d/finance"' in html and 'href="/admin/d/hr"' in html

    asyncio.run(scenario())


def test_failed_sign_ins_are_rate_limited(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path, DEPTBOT_ADMIN__MAX_FAILED_SIGNINS="3")

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            good = c.link(HANK)
            for _ in range(3):  # one bad link, tried again and again: that link waits
                assert (await c.get("/admin/signin?token=guess")).status == 403
            assert (await c.get("/admin/signin?token=guess")).status == 429
            assert (await c.post("/admin/signin", {"token": "guess", "csrf": "y"})).status == 429
            for i in range(3 * ADDRESS_FACTOR - 3):  # many bad links from one address: bad ones wait
                assert (await c.get(f"/admin/signin?token=other{i}")).status == 403
            assert (await c.get("/admin/signin?token=fresh-guess")).status == 429
            assert (await c.post("/admin/signin", {"token": "x", "csrf": "y"})).status == 429
            assert (await c.get(good)).status == 200  # a valid link still works (finding 7)

    asyncio.run(scenario())


def test_security_headers_on_pages_and_errors(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path)

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            seen = [await c.get("/admin/"), await c.get("/admin/nope"), await c.get("/admin/signin?token=x")]
            await c.sign_in(HANK)
            seen += [await c.get("/admin/d/hr/refresh"), await c.get("/admin/d/finance")]
            seen += [await c.get("/admin/signout")]  # 405
            for resp in seen:
                h = resp.headers
                csp = h["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
                assert "script-src" not in csp and "unsafe-inline" not in csp
                nonce = re.search(r"style-src 'nonce-([^']+)'", csp)
                assert nonce is not None
                body = await resp.text()
                assert f'<style nonce="{nonce.group(1)}">' in body, resp.status
                assert h["X-Frame-Options"] == "DENY" and h["Referrer-Policy"] == "no-referrer"
                assert h["Cache-Control"] == "no-store" and h["X-Content-Type-Options"] == "nosniff"
                assert "Traceback" not in body
            assert [r.status for r in seen] == [403, 404, 403, 200, 403, 405]

    asyncio.run(scenario())


def test_no_secret_reaches_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assistant, settings = small_world(tmp_path)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            link = c.link(HANK)
            seen.append(link.split("=", 1)[1])
            await c.sign_in(HANK)
            await c.get(f"/admin/signin?token={seen[0]}")
            seen.extend(m.value for m in c.client.session.cookie_jar)

    asyncio.run(scenario())
    # deptbot's own records (``deptbot serve`` runs aiohttp without an access log; the test
    # server has one, and a proxy's access log is the README's business)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert "admin console sign-in" in text
    for secret in seen:
        assert secret and secret not in text
    assert HANK not in text


def test_console_off_serves_nothing_and_gives_no_links(tmp_path: Path) -> None:
    assistant, settings = small_world(tmp_path, DEPTBOT_ADMIN__ENABLED="false")

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            assert (await c.get("/admin/")).status == 404
            assert (await c.get("/livez")).status == 200

    asyncio.run(scenario())
    assert links_for(assistant) is None  # chat commands say the console is off
    assert not (settings.state_dir / AdminSessionStore.FILE).exists()


def test_cli_admin_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    small_world(tmp_path)
    base = ["--departments", str(tmp_path / "departments"), "--state", str(tmp_path / "state")]
    assert main([*base, "admin", "link", "--user", HANK]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"http://127\.0\.0\.1:3978/admin/signin\?token=[\w-]{40,}\n", out)
    assert "works once" in err
    assert main([*base, "admin", "link", "--user", ALICE]) == 3
    out, err = capsys.readouterr()
    assert out == "" and "Only department admins" in err
    store = AdminSessionStore.in_state_dir(tmp_path / "state")
    assert [(e.event, e.detail) for e in store.events()] == [("link", "cli")]


def test_figures_pages_read_the_records_in_postgres(
    tmp_path: Path,
    pg_url: str,  # noqa: F811  (the fixture imported above)
) -> None:
    """With DEPTBOT_DATABASE_URL the audit and usage rows live in PostgreSQL, and the
    figures pages read them there (they answered 503 before the console could)."""
    from bot.core.ports import AuditEntry
    from bot.wiring import open_audit_log

    assistant, settings = small_world(tmp_path, DEPTBOT_DATABASE_URL=pg_url, DEPTBOT_AUDIT_KEY="5a" * 32)
    audit = open_audit_log(settings)
    audit.record(
        AuditEntry(
            request_id="pgrow0000001",
            time=datetime.now(UTC),
            user=ALICE,
            platform="slack",
            decision="allowed",
            rule="ask",
            status="answered",
            department="hr",
            question=f"What about {HR_TEXT}?",
            doc_ids=("hr/time-off.md",),
        )
    )
    audit.record_feedback("pgrow0000001", ALICE, "down", "wrong")

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            await c.sign_in(HANK)
            for page in ("", "/gaps", "/documents", "/feedback", "/evals"):
                resp = await c.get(f"/admin/d/hr{page}")
                assert resp.status == 200, page
            feedback = await (await c.get("/admin/d/hr/feedback")).text()
            assert "No thumbs-down feedback yet" not in feedback  # the vote, read from PostgreSQL
            assert '<td class="n">1</td>' in feedback
            assert HR_TEXT not in feedback and "pgrow0000001" not in feedback  # HR hides questions
            assert (await c.get("/admin/d/finance")).status == 403  # authorization comes first

    asyncio.run(scenario())


def test_a_large_log_warms_each_administered_overview_after_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 1M audit rows a cold 90-day overview took ~2.3 s; the server computes it once in
    the background after start-up so the admin's first view is a warm one. Small logs are
    not warmed (no work for small installations)."""
    import bot.admin.web as console_web
    from bot.admin.insights import Insights

    assistant, settings = small_world(tmp_path)
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(Insights, "overview", lambda self, dept, days: calls.append((dept, days)))

    async def scenario() -> None:
        async with running(assistant, settings):
            await asyncio.sleep(0.3)

    size = (settings.state_dir / "audit.db").stat().st_size
    monkeypatch.setattr(console_web, "WARM_FROM_BYTES", size + 1)
    asyncio.run(scenario())
    assert calls == []  # a log below the size: nothing warmed
    monkeypatch.setattr(console_web, "WARM_FROM_BYTES", size)
    asyncio.run(scenario())
    administered = sorted(d.name for d in assistant.company if d.admins)
    assert administered and sorted(calls) == [(name, 90) for name in administered]
