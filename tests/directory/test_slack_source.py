"""``SlackGroupSource`` against a loopback stub of the Slack Web API speaking its wire format:
the real ``slack_sdk`` client sends GET/POST with ``Authorization: Bearer``, the stub answers
the documented JSON shapes (``ok``/``error``, ``usergroups`` with ``date_delete``, ``users``
id lists, user objects with ``deleted``/``is_bot``/``profile.email``) and HTTP 429 with
``Retry-After`` when asked to."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from bot.directory.slack import SlackGroupSource
from bot.directory.source import GroupSource, SourceError

TOKEN = "xoxb-1234-secret-test-token"
TRUE = ("1", "true")


@dataclass
class StubGroup:
    handle: str
    users: list[str]
    disabled: bool = False

    def as_slack(self, group_id: str) -> dict[str, Any]:
        """A user group object as ``usergroups.list`` returns it (docs example shape)."""
        return {
            "id": group_id,
            "team_id": "T1",
            "is_usergroup": True,
            "name": self.handle.title(),
            "description": "",
            "handle": self.handle,
            "is_external": False,
            "date_create": 1446598059,
            "date_update": 1446670362,
            "date_delete": 1446747568 if self.disabled else 0,
            "auto_type": None,
            "created_by": "U060RNRCZ",
            "updated_by": "U060RNRCZ",
            "deleted_by": "U060RNRCZ" if self.disabled else None,
            "prefs": {"channels": [], "groups": []},
            "user_count": str(len(self.users)),
        }


@dataclass
class SlackWebStub:
    """``users`` maps ids to user-object fields (``email`` goes into ``profile`` only when
    the app holds ``users:read.email``, as in Slack). ``rate_limited`` answers a method 429
    with that ``Retry-After`` once; ``errors`` answers it ``ok: false``; ``user_errors`` does
    so for one user's ``users.info``; ``broken`` answers HTTP 500 with an HTML page."""

    groups: dict[str, StubGroup]
    users: dict[str, dict[str, Any]]
    scopes: set[str] = field(default_factory=lambda: {"usergroups:read", "users:read", "users:read.email"})
    rate_limited: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    user_errors: dict[str, str] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    def answer(self, method: str, args: Mapping[str, str], auth: str) -> tuple[int, dict[str, str], Any]:
        self.calls.append((method, dict(args)))
        if method in self.rate_limited:
            return 429, {"Retry-After": self.rate_limited.pop(method)}, {"ok": False, "error": "ratelimited"}
        if method in self.broken:
            return 500, {}, f"<html>internal error for {auth}</html>"
        if auth != f"Bearer {TOKEN}":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        if method in self.errors:
            return 200, {}, {"ok": False, "error": self.errors[method]}
        needed = {"usergroups.list": "usergroups:read", "usergroups.users.list": "usergroups:read"}.get(
            method, "users:read"
        )
        if needed not in self.scopes:
            provided = ",".join(sorted(self.scopes))
            return 200, {}, {"ok": False, "error": "missing_scope", "needed": needed, "provided": provided}
        return 200, {}, self._ok(method, args)

    def _ok(self, method: str, args: Mapping[str, str]) -> dict[str, Any]:
        if method == "usergroups.list":
            shown = [
                g.as_slack(gid)
                for gid, g in self.groups.items()
                if not g.disabled or args.get("include_disabled") in TRUE
            ]
            return {"ok": True, "usergroups": shown}
        if method == "usergroups.users.list":
            group = self.groups.get(args.get("usergroup", ""))
            if group is None:
                return {"ok": False, "error": "no_such_subteam"}
            if group.disabled and args.get("include_disabled") not in TRUE:
                return {"ok": True, "users": []}  # the docs don't say; the stub assumes "no results"
            return {"ok": True, "users": list(group.users)}
        if method == "users.info":
            uid = args.get("user", "")
            if uid in self.user_errors:
                return {"ok": False, "error": self.user_errors[uid]}
            if uid not in self.users:
                return {"ok": False, "error": "user_not_found"}
            fields = dict(self.users[uid])
            email = fields.pop("email", None)
            profile = {"real_name": uid.title()}
            if email and "users:read.email" in self.scopes:
                profile["email"] = email
            user = {"id": uid, "team_id": "T1", "name": uid.lower(), "deleted": False, "is_bot": False}
            return {"ok": True, "user": {**user, **fields, "profile": profile}}
        return {"ok": False, "error": "unknown_method"}


def _handler(stub: SlackWebStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            args = dict(parse_qsl(url.query))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                args.update(parse_qsl(self.rfile.read(length).decode()))
            method = url.path.removeprefix("/api/")
            status, headers, body = stub.answer(method, args, self.headers.get("Authorization", ""))
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            ctype = "text/html" if isinstance(body, str) else "application/json; charset=utf-8"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def stub() -> Iterator[SlackWebStub]:
    web = SlackWebStub(
        groups={
            "S0HR": StubGroup("hr-team", ["UALICE", "UBOB", "UGONE", "UROBOT", "UFLOW"]),
            "S0FIN": StubGroup("finance", ["UCAROL"]),
            "S0OLD": StubGroup("old-team", ["UALICE"], disabled=True),
        },
        users={
            "UALICE": {"email": "Alice@Example.COM"},
            "UBOB": {"email": "bob@example.com"},
            "UCAROL": {"email": "carol@example.com"},
            "UGONE": {"email": "gone@example.com", "deleted": True},
            "UROBOT": {"email": "robot@example.com", "is_bot": True},
            "UFLOW": {"is_workflow_bot": True},
            "UNOMAIL": {},
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(web))
    web.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield web
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source(stub: SlackWebStub, **kwargs: Any) -> SlackGroupSource:
    return SlackGroupSource(token=TOKEN, api_url=stub.api_url, timeout=5, **kwargs)


def failure(src: SlackGroupSource, ref: str) -> str:
    with pytest.raises(SourceError) as caught:
        src.members(ref)
    reason = caught.value.reason
    assert TOKEN not in reason and TOKEN not in str(caught.value) and "1234" not in reason
    assert "{" not in reason and "<" not in reason  # never a response body
    return reason


HR = frozenset({"alice@example.com", "bob@example.com"})


# ── refs ─────────────────────────────────────────────────────────────────────────────


def test_a_handle_with_or_without_at_and_an_id_name_the_same_group(stub: SlackWebStub) -> None:
    src: GroupSource = source(stub)
    assert src.kind == "slack"
    assert src.members("@hr-team") == HR
    assert src.members("hr-team") == HR
    assert src.members("@HR-Team") == HR
    assert src.members("S0HR") == HR
    assert stub.count("usergroups.list") == 1  # the handle map is cached
    listing = next(a for m, a in stub.calls if m == "usergroups.list")
    assert listing.get("include_disabled") in TRUE  # so a disabled group is seen as disabled


def test_emails_are_lower_cased_and_deleted_users_and_bots_are_not_members(stub: SlackWebStub) -> None:
    emails = source(stub).members("@hr-team")
    assert emails == HR
    assert all(e == e.lower() for e in emails)
    assert "gone@example.com" not in emails and "robot@example.com" not in emails


def test_an_unknown_handle_or_id_is_a_source_error(stub: SlackWebStub) -> None:
    src = source(stub)
    assert failure(src, "@nobody") == "user group @nobody not found"
    assert failure(src, "S0NOPE") == "user group S0NOPE not found"
    assert failure(src, "@") == "empty user group reference"


def test_an_id_shaped_handle_is_tried_as_a_handle_too(stub: SlackWebStub) -> None:
    stub.groups["S0SALES"] = StubGroup("sales", ["UCAROL"])
    assert source(stub).members("SALES") == {"carol@example.com"}


def test_a_group_created_after_the_listing_is_found_by_rereading_it(stub: SlackWebStub) -> None:
    src = source(stub)
    assert src.members("@finance") == {"carol@example.com"}
    stub.groups["S0NEW"] = StubGroup("new-team", ["UBOB"])
    assert src.members("@new-team") == {"bob@example.com"}
    assert stub.count("usergroups.list") == 2


def test_a_disabled_group_is_a_source_error_not_its_old_members(stub: SlackWebStub) -> None:
    src = source(stub)
    assert failure(src, "@old-team") == "user group disabled"
    assert failure(src, "S0OLD") == "user group disabled"
    assert stub.count("usergroups.users.list") == 0


def test_a_group_disabled_later_stops_granting_within_the_listing_ttl(stub: SlackWebStub) -> None:
    clock = Clock()
    src = source(stub, clock=clock, groups_ttl=60)
    assert src.members("@finance") == {"carol@example.com"}
    stub.groups["S0FIN"].disabled = True
    # the cached listing still says "enabled"; usergroups.users.list without include_disabled
    # grants nothing from a disabled group
    assert src.members("@finance") == frozenset()
    clock.now += 61
    assert failure(src, "@finance") == "user group disabled"


# ── people ───────────────────────────────────────────────────────────────────────────


def test_membership_changes_show_at_once_and_emails_are_cached(stub: SlackWebStub) -> None:
    clock = Clock()
    src = source(stub, clock=clock, email_ttl=600)
    assert src.members("@hr-team") == HR
    looked_up = stub.count("users.info")
    assert looked_up == 5
    stub.groups["S0HR"].users.remove("UBOB")
    assert src.members("@hr-team") == {"alice@example.com"}  # removal: the next read
    assert stub.count("users.info") == looked_up  # e-mails from the cache
    stub.users["UALICE"]["email"] = "alice.new@example.com"
    clock.now += 601
    assert src.members("@hr-team") == {"alice.new@example.com"}


def test_a_member_without_a_readable_email_is_skipped(stub: SlackWebStub) -> None:
    stub.groups["S0HR"].users.append("UNOMAIL")
    assert source(stub).members("@hr-team") == HR


def test_without_users_read_email_no_address_is_readable_and_that_is_an_error(stub: SlackWebStub) -> None:
    stub.scopes.discard("users:read.email")  # Slack then leaves profile.email out
    assert failure(source(stub), "@hr-team") == "no member e-mail readable (is users:read.email granted?)"


def test_users_info_failing_is_an_error_never_a_partial_list(stub: SlackWebStub) -> None:
    stub.user_errors["UBOB"] = "user_not_visible"
    assert failure(source(stub), "@hr-team") == "Slack users.info: user_not_visible"
    stub.user_errors.clear()
    stub.groups["S0HR"].users.append("UMISSING")
    assert failure(source(stub), "@hr-team") == "Slack users.info: user_not_found"


# ── Slack's answers ──────────────────────────────────────────────────────────────────


def test_a_429_is_retried_after_retry_after_then_succeeds(stub: SlackWebStub) -> None:
    stub.rate_limited = {"usergroups.list": "0", "usergroups.users.list": "0", "users.info": "0"}
    assert source(stub).members("@hr-team") == HR
    assert stub.count("usergroups.list") == 2 and stub.count("usergroups.users.list") == 2


def test_a_retry_after_longer_than_the_bound_is_not_waited_out(stub: SlackWebStub) -> None:
    stub.rate_limited = {"usergroups.list": "3600"}
    started = time.monotonic()
    assert failure(source(stub, max_retry_after=30), "@hr-team") == "rate limited by Slack (usergroups.list)"
    assert time.monotonic() - started < 5


def test_missing_scope_names_the_scope(stub: SlackWebStub) -> None:
    stub.scopes.discard("usergroups:read")
    assert failure(source(stub), "@hr-team") == "Slack usergroups.list: missing_scope usergroups:read"


def test_api_errors_say_the_method_and_code_never_the_token(stub: SlackWebStub) -> None:
    wrong = SlackGroupSource(token="xoxb-wrong", api_url=stub.api_url)
    assert failure(wrong, "@hr-team") == "Slack usergroups.list: invalid_auth"
    stub.errors["usergroups.users.list"] = "plan_upgrade_required"
    assert failure(source(stub), "S0HR") == "Slack usergroups.users.list: plan_upgrade_required"


def test_an_html_error_page_that_echoes_the_token_is_not_echoed(stub: SlackWebStub) -> None:
    stub.broken.add("usergroups.list")
    assert failure(source(stub), "@hr-team") == "HTTP 500 from Slack (usergroups.list)"


def test_slack_unreachable_is_a_source_error(stub: SlackWebStub) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = SlackGroupSource(token=TOKEN, api_url=f"http://127.0.0.1:{port}/api/", timeout=2)
    assert failure(src, "@hr-team").startswith("cannot reach Slack (usergroups.list)")
