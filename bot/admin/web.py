"""``/admin``: the department admin console, on the same aiohttp server as the bot.

``mount_admin`` adds it as a sub-application (``build_app`` calls it). Pages are rendered on
the server (``bot.admin.pages``) from ``bot.admin.insights``; there is no script.

Every request is checked here, on the live configuration: a valid session (``auth``), then
that its holder administers the department in the URL *now*. A department the person does
not administer answers exactly like one that does not exist (the same 403 page), so names
do not leak; without a session every page is 403 too. Every POST needs the session's CSRF token and an
Origin of this console (``[admin] public_url`` or the server's own address; see
``_origin_ok``). Every answer
carries the security headers (``Console.secure``): a CSP with a per-response nonce for the
one ``<style>`` element and no script source at all, no framing, no referrer (the sign-in
link's token never leaves in a Referer), and no caching.

Sign-in: the link's GET shows a "Sign in" button and uses nothing up, so link scanners and
chat previews that fetch URLs cannot burn the single-use token; the button's POST redeems
it, sets the session cookie and redirects to ``/admin/`` (the token leaves the address
bar). Failed sign-ins are counted per presented link (its token's hash) and per client
address, over 10 minutes: a link that failed ``[admin] max_failed_signins`` times is refused,
and an address past ``ADDRESS_FACTOR`` times that is refused every link that is not valid.
Why not per address alone: behind a reverse proxy every admin shares the proxy's address, and
anyone could lock a genuine link out by sending bad ones. A valid link (256 random bits)
still works from a busy address; guessing one is hopeless, so the address cap only bounds
the noise.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from markupsafe import Markup

from bot.adapters import render as wording
from bot.adapters.runtime import Runtime
from bot.admin import auth, charts, pages
from bot.admin.insights import PERIODS, EvalTrend, Insights, Overview
from bot.config import Department
from bot.core.pipeline import Assistant
from bot.errors import DeptbotError, RefreshBusy
from bot.settings import Settings
from bot.settings_schema import AdminSettings
from bot.store.admin_sessions import AdminSessionStore, Session, digest, open_console_store
from bot.store.backend import database_url

log = logging.getLogger(__name__)
T = TypeVar("T")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DEFAULT_DAYS = 30
WARM_FROM_BYTES = 64 * 1024 * 1024  # ~100k audit rows: below it a cold overview is < 0.1 s
RELOAD_SECONDS = 2  # the refresh progress page reloads itself while a refresh runs
SIGNIN_COOKIE = "deptbot_signin"
SECURE_SIGNIN_COOKIE = "__Host-deptbot_signin"
MAX_SECRET = 200  # longer cookie or token values are not even looked up
ADDRESS_FACTOR = 10  # an address may fail this many times max_failed_signins before bad links wait
NONCE = web.RequestKey("deptbot.csp_nonce", str)  # this response's CSP nonce for its <style>

SIGNED_OUT = (
    "You are not signed in to the deptbot admin console.",
    "Department admins get a one-time sign-in link from the bot: send /kb admin in Slack, or "
    "kb admin in a 1:1 chat with deptbot in Teams.",
)
BAD_LINK = (
    "This sign-in link does not work: it has expired or was already used.",
    "Ask the bot for a new one: /kb admin in Slack, or kb admin in a 1:1 chat in Teams.",
)
NOT_YOURS = "You cannot open this page: it is not one of the departments you administer."


@dataclass
class RefreshJob:
    """A refresh started from the console; progress is written from the worker thread."""

    department: str
    started: float
    done: int = 0
    total: int = 0
    running: bool = True
    ok: bool = False
    outcome: str = ""


@dataclass
class _Who:
    """The signed-in admin of this request and what they administer right now."""

    sid: str
    email: str
    departments: list[Department]
    csrf: str = ""
    dept: Department | None = None


@dataclass
class Console:
    """One per server: the pages, the sign-in flow and the refreshes started from here."""

    assistant: Assistant
    settings: Settings
    config: AdminSettings
    runtime: Runtime
    _insights: Insights | None = None  # made on first use; tests may set their own
    _store: AdminSessionStore | None = None
    _jobs: dict[str, RefreshJob] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def insights(self) -> Insights:
        if self._insights is None:
            self._insights = Insights(assistant=self.assistant, settings=self.settings)
        return self._insights

    @insights.setter
    def insights(self, value: Insights) -> None:
        self._insights = value

    @property
    def store(self) -> AdminSessionStore:
        """Opened on first use, so a server nobody signs in to writes no file for it."""
        if self._store is None:
            self._store = console_store(self.settings)
        return self._store

    # ── plumbing: headers, cookies, origin, sessions ─────────────────────────────────

    @web.middleware
    async def secure(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Security headers on every console answer, error pages included."""
        nonce = secrets.token_urlsafe(18)
        request[NONCE] = nonce
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            title = "Page not found" if exc.status == 404 else "Not allowed"
            response = self._message(request, exc.status, title, ["There is no such page."])
        except Exception:
            rid = wording.new_request_id()
            log.exception("admin console request failed (request %s)", rid)
            response = self._message(request, 500, "Something went wrong", [wording.sorry(rid)])
        h = response.headers
        h["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "no-referrer"
        h["Cache-Control"] = "no-store"
        h["X-Content-Type-Options"] = "nosniff"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Cross-Origin-Resource-Policy"] = "same-origin"
        return response

    def _https(self, request: web.Request) -> bool:
        return self.config.public_url.lower().startswith("https://") or request.secure

    def _cookie(self, request: web.Request) -> str:
        return auth.SECURE_COOKIE if self._https(request) else auth.COOKIE

    def _signin_cookie(self, request: web.Request) -> str:
        return SECURE_SIGNIN_COOKIE if self._https(request) else SIGNIN_COOKIE

    def _set_cookie(
        self, request: web.Request, response: web.Response, name: str, value: str, age: int
    ) -> None:
        response.set_cookie(
            name, value, max_age=age, path="/", secure=self._https(request), httponly=True, samesite="Strict"
        )

    def _origin_ok(self, request: web.Request) -> bool:
        """A POST must come from a page of this console: its Origin is the public or the
        server's own origin. Our ``Referrer-Policy: no-referrer`` makes browsers send
        ``Origin: null`` on the console's own form posts, so a null origin passes only with
        the browser's Fetch Metadata saying the form was same-origin (pages cannot set it)."""
        origin = request.headers.get("Origin", "").strip().lower()
        if origin and origin != "null":
            own = f"{request.scheme}://{request.host}".lower()
            return origin in (auth.origin_of(self.config.public_url), own)
        return request.headers.get("Sec-Fetch-Site", "").lower() == "same-origin"

    async def _db(self, call: Callable[[AdminSessionStore], T]) -> T:
        """A console store call, off the event loop: every page view touches the session
        (an UPDATE), and on PostgreSQL each call is a network round trip that must not
        stall the answers sharing the loop. The store is opened there too, on first use.
        Like the reports, it runs on the runtime's report threads: console work never
        takes the quick threads that Slack acknowledgements and Teams replies wait on."""
        return await self.runtime.report(lambda: call(self.store))

    async def _session(self, request: web.Request) -> tuple[str, Session] | None:
        sid = request.cookies.get(self._cookie(request), "")
        if not sid or len(sid) > MAX_SECRET:
            return None
        idle = self.config.idle_minutes * 60.0
        session = await self._db(lambda store: store.session(sid, idle=idle))
        return None if session is None else (sid, session)

    async def _who(self, request: web.Request) -> _Who | web.Response:
        """The signed-in admin, or the 403 page (no session, or no department any more)."""
        found = await self._session(request)
        if found is None:
            return self._message(request, 403, "Sign in", list(SIGNED_OUT))
        sid, session = found
        depts = auth.administered(self.assistant, session.email)
        who = _Who(sid=sid, email=session.email, departments=depts, csrf=auth.csrf_token(sid))
        if not depts:
            return self._message(
                request, 403, "Not allowed", ["You do not administer any department now."], who=who
            )
        return who

    async def _dept(self, request: web.Request) -> _Who | web.Response:
        """``_who`` plus the department in the URL, which they must administer now; any
        other name (existing or not) gets the same 403 page, naming nothing."""
        who = await self._who(request)
        if isinstance(who, web.Response):
            return who
        name = request.match_info.get("dept", "")
        who.dept = next((d for d in who.departments if d.name == name), None)
        if who.dept is None:
            return self._message(request, 403, "Not allowed", [NOT_YOURS], who=who)
        return who

    async def _posted(self, request: web.Request, who: _Who) -> web.Response | None:
        """None when a POST is genuine (Origin and CSRF token); else the 403 page."""
        if not self._origin_ok(request):
            return self._message(
                request, 403, "Not allowed", ["This form was not sent from the console."], who=who
            )
        form = await request.post()
        if not auth.csrf_ok(who.sid, str(form.get("csrf", ""))):
            return self._message(
                request,
                403,
                "Not allowed",
                ["The form expired. Go back, reload the page and try again."],
                who=who,
            )
        return None

    # ── rendering ──────────────────────────────────────────────────────────────────

    def _page(
        self,
        request: web.Request,
        template: str,
        *,
        title: str,
        status: int = 200,
        who: _Who | None = None,
        tab: str = "",
        days: int = DEFAULT_DAYS,
        reload_seconds: int = 0,
        **context: Any,
    ) -> web.Response:
        dept = who.dept if who else None
        text = pages.render(
            template,
            title=f"{title} · {dept.title}" if dept else title,
            heading=f"{dept.title}: {title}" if dept else title,
            nonce=request.get(NONCE, ""),
            user=who.email if who else "",
            csrf=who.csrf if who else "",
            departments=who.departments if who else [],
            dept=dept,
            tab=tab,
            days=days,
            reload_seconds=reload_seconds,
            **context,
        )
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    def _message(
        self,
        request: web.Request,
        status: int,
        title: str,
        lines: Sequence[str],
        *,
        who: _Who | None = None,
        links: Sequence[tuple[str, str]] = (),
    ) -> web.Response:
        return self._page(
            request, "message.html", title=title, status=status, who=who, lines=lines, links=links
        )

    @staticmethod
    def _redirect(location: str) -> web.Response:
        return web.Response(status=303, headers={"Location": location})

    @staticmethod
    def _days(request: web.Request) -> int:
        raw = request.query.get("days", "")
        return next((n for n in PERIODS if raw == str(n)), DEFAULT_DAYS)

    @staticmethod
    def _show_text(dept: Department) -> bool:
        """Question text only where the department's governance allows it (default off)."""
        return dept.admins_see_questions

    # ── sign-in and sign-out ─────────────────────────────────────────────────────────

    @staticmethod
    def _counters(request: web.Request, token: str) -> tuple[str, str | None]:
        """Where failures count: the client address, and the presented link (its hash only)."""
        link = f"link:{digest(token)[:32]}" if token and len(token) <= MAX_SECRET else None
        return f"addr:{request.remote or 'unknown'}", link

    async def _limited(self, request: web.Request, token: str) -> web.Response | None:
        address, link = self._counters(request, token)
        most = self.config.max_failed_signins

        def blocked(store: AdminSessionStore) -> bool:
            if link is not None and store.failures(link) >= most:
                return True  # this link failed too often (replayed, or someone else's try)
            if store.failures(address) < most * ADDRESS_FACTOR:
                return False
            return link is None or not store.link_valid(token)  # a valid link still works

        if await self._db(blocked):
            return self._message(
                request, 429, "Too many attempts", ["Too many failed sign-ins. Wait a few minutes."]
            )
        return None

    async def _failed(self, request: web.Request, token: str) -> web.Response:
        address, link = self._counters(request, token)

        def note(store: AdminSessionStore) -> None:
            store.failed(address)
            if link is not None:
                store.failed(link)
            store.record("signin-failed", "", detail="bad-link")

        await self._db(note)
        log.info("admin console sign-in refused: unknown, used or expired link")
        return self._message(request, 403, "Sign-in link not valid", list(BAD_LINK))

    async def signin_page(self, request: web.Request) -> web.Response:
        """The link's GET: a confirmation button; nothing is used up here."""
        token = request.query.get("token", "")
        limited = await self._limited(request, token)
        if limited is not None:
            return limited
        if not token or len(token) > MAX_SECRET or not await self._db(lambda store: store.link_valid(token)):
            return await self._failed(request, token)
        nonce = secrets.token_urlsafe(24)
        response = self._page(request, "signin.html", title="Sign in", token=token, signin_csrf=nonce)
        self._set_cookie(
            request, response, self._signin_cookie(request), nonce, self.config.link_minutes * 60
        )
        return response

    async def signin(self, request: web.Request) -> web.Response:
        """Redeem the link (once), open a session, and move to /admin/ without the token."""
        if not self._origin_ok(request):
            return self._message(request, 403, "Not allowed", ["This form was not sent from the console."])
        form = await request.post()
        token = str(form.get("token", ""))
        limited = await self._limited(request, token)
        if limited is not None:
            return limited
        expected = request.cookies.get(self._signin_cookie(request), "")
        if not expected or not auth.csrf_equal(expected, str(form.get("csrf", ""))):
            return await self._failed(request, token)
        if not token or len(token) > MAX_SECRET:
            return await self._failed(request, token)
        email = await self._db(lambda store: store.redeem(token))
        if email is None:
            return await self._failed(request, token)
        if not auth.administered(self.assistant, email):
            await self._db(lambda store: store.record("signin-denied", email, detail="not-admin"))
            return self._message(request, 403, "Not allowed", [auth.NOT_ADMIN])
        absolute = self.config.session_hours * 3600.0

        def open_(store: AdminSessionStore) -> str:
            sid = store.open_session(email, absolute=absolute)
            store.record("signin", email)
            return sid

        sid = await self._db(open_)
        log.info("admin console sign-in")
        response = self._redirect("/admin/")
        self._set_cookie(request, response, self._cookie(request), sid, self.config.session_hours * 3600)
        self._set_cookie(request, response, self._signin_cookie(request), "", 0)
        return response

    async def signout(self, request: web.Request) -> web.Response:
        found = await self._session(request)
        if found is None:
            return self._message(request, 403, "Sign in", list(SIGNED_OUT))
        sid, session = found
        who = _Who(sid=sid, email=session.email, departments=[], csrf=auth.csrf_token(sid))
        refused = await self._posted(request, who)
        if refused is not None:
            return refused

        def close(store: AdminSessionStore) -> None:
            store.sign_out(sid)
            store.record("signout", session.email)

        await self._db(close)
        response = self._message(request, 200, "Signed out", ["You are signed out of the admin console."])
        self._set_cookie(request, response, self._cookie(request), "", 0)
        return response

    # ── pages ────────────────────────────────────────────────────────────────────────

    async def index(self, request: web.Request) -> web.Response:
        who = await self._who(request)
        if isinstance(who, web.Response):
            return who
        if len(who.departments) == 1:
            return self._redirect(f"/admin/d/{who.departments[0].name}")
        return self._page(request, "picker.html", title="Departments", who=who)

    async def overview(self, request: web.Request) -> web.Response:
        who = await self._dept(request)
        if isinstance(who, web.Response):
            return who
        assert who.dept is not None
        days = self._days(request)
        o = await self.runtime.report(self.insights.overview, who.dept.name, days)
        return self._page(
            request, "overview.html", title="Overview", who=who, tab="", days=days, o=o, **_overview_charts(o)
        )

    async def gaps(self, request: web.Request) -> web.Response:
        who = await self._dept(request)
        if isinstance(who, web.Response):
            return who
        assert who.dept is not None
        days, show = self._days(request), self._show_text(who.dept)
        groups = await self.runtime.report(self.insights.gaps, who.dept.name, days, show_text=show)
        return self._page(
            request,
            "gaps.html",
            title="Knowledge gaps",
            who=who,
            tab="/gaps",
            days=days,
            groups=groups,
            show_text=show,
        )

    async def documents(self, request: web.Request) -> web.Response:
        who = await self._dept(request)
        if isinstance(who, web.Response):
            return who
        assert who.dept is not None
        days = self._days(request)
        report = await self.runtime.report(self.insights.documents, who.dept.name, days)
        return self._page(
            request,
            "documents.html",
            title="Documents",
            who=who,
            tab="/documents",
            days=days,
            r=report,
            job=self._jobs.get(who.dept.name),
        )

    async def feedback(self, request: web.Request) -> web.Response:
        who = await self._dept(request)
        if isinstance(who, web.Response):
            return who
        assert who.dept is not None
        show = self._show_text(who.dept)
        page = await self.runtime.report(self.insights.feedback, who.dept.name, show_text=show)
        return self._page(
            request, "feedback.html", title="Feedback", who=who, tab="/feedback", page=page, show_text=show
        )

    async def evals(self, request: web.Request) -> web.Response:
        who = await self._dept(request)
        if isinstance(who, web.Response):
            return who
        assert who.dept is not None
        trend = await self.runtime.report(self.insights.evals, who.dept.name)
        return self._page(
            request, "evals.html", title="Evals", who=who, tab="/evals", trend=trend, **_eval_charts(trend)
        )

    # ── refresh ──────────────────────────────────────────────────────────────────────

    async def refresh_status(self, request: web.Request) -> web.Response:
        who = await self._dept(request)
        if isinstance(who, web.Response):
            return who
        assert who.dept is not None
        job = self._jobs.get(who.dept.name)
        running = job is not None and job.running
        return self._page(
            request,
            "refresh.html",
            title="Refresh",
            who=who,
            tab="/documents",
            job=job,
            reload_seconds=RELOAD_SECONDS if running else 0,
        )

    async def refresh(self, request: web.Request) -> web.Response:
        """Start the same refresh as ``/kb refresh DEPT`` (one at a time per department)."""
        who = await self._dept(request)
        if isinstance(who, web.Response):
            return who
        assert who.dept is not None
        refused = await self._posted(request, who)
        if refused is not None:
            return refused
        dept = who.dept
        job = self._jobs.get(dept.name)
        if job is None or not job.running:
            job = RefreshJob(department=dept.name, started=time.time())
            self._jobs[dept.name] = job
            email = who.email
            await self._db(lambda store: store.record("refresh", email, dept.name, detail="started"))
            task = asyncio.create_task(self._run_refresh(job, dept, who.email))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._redirect(f"/admin/d/{dept.name}/refresh")

    async def _run_refresh(self, job: RefreshJob, dept: Department, email: str) -> None:
        def progress(done: int, total: int, current: str) -> None:  # on the worker thread
            job.done, job.total = done, total

        outcome = "failed"
        try:
            report = await self.runtime.background(
                self.assistant.refresh, dept.name, user=email, progress=progress
            )
            job.outcome, job.ok, outcome = wording.report_line(report, dept.title), True, "done"
            job.done = job.total = report.total_files
        except DeptbotError as exc:  # AccessDenied (recorded by the core) or a knowledge error
            job.outcome = exc.user_message  # RefreshBusy: "already refreshing" (any process)
            outcome = "busy" if isinstance(exc, RefreshBusy) else outcome
        except Exception:
            rid = wording.new_request_id()
            log.exception("admin console refresh failed (request %s)", rid)
            job.outcome = wording.sorry(rid)
        finally:
            job.running = False
            done = outcome
            try:
                await self._db(lambda store: store.record("refresh", email, dept.name, detail=done))
            except Exception:  # the trail is best effort here; the refresh itself is audited
                log.warning("could not record the console refresh in its trail", exc_info=True)

    async def warm(self, _app: web.Application) -> None:
        """Compute each department's 90-day overview once in the background after start-up.

        Past days are then cached (``bot.admin.rollup``), so an admin's first view after a
        restart costs what later views cost (measured at 1M audit rows: about 2.3 s cold,
        about 0.1 s warm). Only a log large enough for that to matter is warmed, so small
        installations and tests start no work. On PostgreSQL (``DEPTBOT_DATABASE_URL``)
        nothing is warmed: there is no file to size, and the grouped scans run on the server."""
        audit = self.settings.state_dir / "audit.db"
        try:
            large = audit.stat().st_size >= WARM_FROM_BYTES
        except OSError:
            large = False
        if not large or database_url(self.settings.env) is not None:
            return
        task = asyncio.create_task(self._warm_all())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm_all(self) -> None:
        for dept in self.assistant.company:
            if not dept.admins:
                continue
            try:
                await self.runtime.background(self.insights.overview, dept.name, 90)
            except Exception:  # a cold first view later is the only cost
                log.warning("could not warm the console overview of %s", dept.name, exc_info=True)

    async def cleanup(self, _app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._store is not None:
            self._store.close()


# ── chart data: the same numbers drawn and tabled ─────────────────────────────────────


def _overview_charts(o: Overview) -> dict[str, Any]:
    days = [p.day.isoformat() for p in o.series]
    short = [p.day.strftime("%b %d") for p in o.series]
    statuses = (
        ("Answered", lambda p: p.status.answered),
        ("Don't know", lambda p: p.status.dont_know),
        ("Denied", lambda p: p.status.denied),
        ("Sources only", lambda p: p.status.sources_only),
        ("Error", lambda p: p.status.error),
    )
    span = f"{o.start.isoformat()} to {o.end.isoformat()}"
    t = o.totals
    out: dict[str, Any] = {
        "status_chart": Markup(
            charts.stacked_bars(
                title="Questions per day by outcome",
                desc=f"{t.total} questions {span}: {t.answered} answered, {t.dont_know} don't know, "
                f"{t.denied} denied, {t.sources_only} sources only, {t.error} errors.",
                labels=short,
                series=[charts.Series(name, tuple(float(f(p)) for p in o.series)) for name, f in statuses],
            )
        ),
        "status_head": ["Day", *[name for name, _ in statuses], "Total"],
        "status_rows": [
            (d, *[f(p) for _, f in statuses], p.questions) for d, p in zip(days, o.series, strict=True)
        ],
        "latency_chart": Markup(
            charts.line_chart(
                title="Latency per day",
                desc=f"Answer latency {span}: p50 {pages.ms(o.p50_ms)}, p95 {pages.ms(o.p95_ms)}.",
                labels=short,
                series=[
                    charts.Series("p50", tuple(p.p50_ms for p in o.series)),
                    charts.Series("p95", tuple(p.p95_ms for p in o.series)),
                ],
                unit="ms",
            )
        ),
        "latency_head": ["Day", "p50", "p95"],
        "latency_rows": [
            (d, pages.ms(p.p50_ms), pages.ms(p.p95_ms)) for d, p in zip(days, o.series, strict=True)
        ],
        "votes_chart": Markup(
            charts.stacked_bars(
                title="Votes per day",
                desc=f"{o.satisfaction.up} thumbs up and {o.satisfaction.down} thumbs down {span}.",
                labels=short,
                series=[
                    charts.Series("Thumbs up", tuple(float(p.up) for p in o.series)),
                    charts.Series("Thumbs down", tuple(float(p.down) for p in o.series)),
                ],
            )
        ),
        "votes_head": ["Day", "Thumbs up", "Thumbs down"],
        "votes_rows": [(d, p.up, p.down) for d, p in zip(days, o.series, strict=True)],
        "cost_chart": Markup(
            charts.bar_chart(
                title="Cost per day",
                desc=f"{pages.money(o.cost)} spent {span}; {o.tokens} tokens.",
                labels=short,
                values=[p.cost for p in o.series],
                unit="$",
            )
        ),
        "cost_head": ["Day", "Cost", "Tokens"],
        "cost_rows": [
            (d, pages.money(p.cost), pages.num(p.tokens)) for d, p in zip(days, o.series, strict=True)
        ],
    }
    r = o.routes
    routes = (
        ("Cloud", r.cloud),
        ("Private model", r.private),
        ("Extractive", r.extractive),
        ("No generation", r.none),
    )
    out["route_chart"] = Markup(
        charts.bar_chart(
            title="Requests by route",
            desc=", ".join(f"{name}: {n}" for name, n in routes) + f" ({span}).",
            labels=[name for name, _ in routes],
            values=[float(n) for _, n in routes],
        )
    )
    out["route_head"] = ["Route", "Requests"]
    out["route_rows"] = [(name, pages.num(n)) for name, n in routes]
    return out


def _eval_charts(trend: EvalTrend) -> dict[str, Any]:
    runs = list(reversed(trend.runs))  # oldest first, left to right
    metrics = (
        ("Sources hit", "source_hit"),
        ("Facts hit", "fact_hit"),
        ("Answered", "answered"),
        ("Refusals", "refusal"),
    )
    out: dict[str, Any] = {"regressed": {g.time for g in trend.regressions}}
    if not runs:
        return out | {"trend_chart": Markup(""), "trend_head": [], "trend_rows": []}
    labels = [r.time.strftime("%b %d %H:%M") for r in runs]
    latest = runs[-1]
    out["trend_chart"] = Markup(
        charts.line_chart(
            title="Eval scores per run",
            desc=f"{len(runs)} runs; latest: "
            + ", ".join(f"{name} {pages.pct(getattr(latest, key))}" for name, key in metrics)
            + f"; {len(trend.regressions)} regression(s).",
            labels=labels,
            series=[charts.Series(name, tuple(getattr(r, key) for r in runs)) for name, key in metrics],
            percent=True,
        )
    )
    out["trend_head"] = ["Run", *[name for name, _ in metrics]]
    out["trend_rows"] = [
        (r.time.strftime("%Y-%m-%d %H:%M"), *[pages.pct(getattr(r, key)) for _, key in metrics]) for r in runs
    ]
    return out


# ── mounting ─────────────────────────────────────────────────────────────────────────

CONSOLE = web.AppKey("deptbot.admin_console", Console)


def console_store(settings: Settings) -> AdminSessionStore:
    """The console's store (PostgreSQL with ``DEPTBOT_DATABASE_URL``, so every replica
    knows the links and sessions; else the state folder), keeping its trail for
    ``[retention] admin_events_days`` (the server and ``deptbot admin link`` both open it)."""
    return open_console_store(settings, event_days=settings.values.retention.admin_events_days)


def mount_admin(
    app: web.Application, *, assistant: Assistant, settings: Settings, runtime: Runtime
) -> Console | None:
    """``/admin`` on ``app`` when ``[admin] enabled``; chat commands of ``assistant`` then
    hand out sign-in links for it (``auth.register``)."""
    config = settings.values.admin
    if not config.enabled:
        return None
    console = Console(assistant=assistant, settings=settings, config=config, runtime=runtime)
    sub = web.Application(middlewares=[console.secure])
    r = sub.router
    r.add_get("", console.index)
    r.add_get("/", console.index)
    r.add_get("/signin", console.signin_page)
    r.add_post("/signin", console.signin)
    r.add_post("/signout", console.signout)
    r.add_get("/d/{dept}", console.overview)
    r.add_get("/d/{dept}/gaps", console.gaps)
    r.add_get("/d/{dept}/documents", console.documents)
    r.add_get("/d/{dept}/feedback", console.feedback)
    r.add_get("/d/{dept}/evals", console.evals)
    r.add_get("/d/{dept}/refresh", console.refresh_status)
    r.add_post("/d/{dept}/refresh", console.refresh)
    app.add_subapp("/admin", sub)
    app[CONSOLE] = console
    app.on_startup.append(console.warm)
    app.on_cleanup.append(console.cleanup)
    auth.register(assistant, auth.AdminLinks.for_assistant(assistant, lambda: console.store, config))
    return console
