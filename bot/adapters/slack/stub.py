"""A stand-in Slack Web API on 127.0.0.1, for tests, the bench and trying deptbot offline.

Like httpx's mock transport, it lets the real SDK talk to something fake: point
``SLACK_API_URL`` at ``stub.api_url`` and every call is recorded (method + arguments)
and checked against Slack's published limits (``limits.problems``): a broken one is kept
in ``violations`` and, when Slack would refuse it, answered as Slack does
(``invalid_blocks``; ``invalid_arguments`` for a view).
It answers the methods deptbot uses (keeping posted threads, with message metadata that
``conversations.replies`` returns only with ``include_all_metadata``, oldest reply first,
the parent message first of all, within ``oldest``/``latest`` (exclusive unless
``inclusive``), ``limit`` replies a page with ``has_more`` and a ``next_cursor``; ``conversations.info``
with Slack's conversation object; ``conversations.members`` paged with ``limit`` and an
opaque ``response_metadata.next_cursor``) and accepts ``response_url`` posts at
``/response/<name>``. Given ``scopes`` (the manifest's bot scopes), reading a conversation
without the scope for its type (``mpim:history`` for a group DM's thread, ...) is
``missing_scope``, as in Slack. ``GET /_stub/calls`` returns the record as
JSON and ``GET /_stub/summary`` counts per method (for out-of-process use, e.g. the bench).
``signed_headers`` builds the headers Slack would send with a request body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bot.adapters.slack import limits

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"


def signed_headers(secret: str, body: str | bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """X-Slack-Signature/X-Slack-Request-Timestamp for ``body`` (v0 scheme)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class StubChannel:
    """A conversation the stub knows: its members (user ids, the bot included when it was
    invited) and the flags ``conversations.info`` reports. ``num_members`` None reports
    ``len(members)``; ``report_num_members=False`` leaves the field out."""

    members: list[str]
    is_private: bool = True
    is_mpim: bool = False
    is_ext_shared: bool = False
    is_pending_ext_shared: bool = False
    is_org_shared: bool = False
    num_members: int | None = None
    report_num_members: bool = True
    name: str = ""

    def conversation(self, channel: str, *, team: str, with_count: bool) -> dict[str, Any]:
        """The conversation object as ``conversations.info`` returns it (docs example shape)."""
        shared = self.is_ext_shared or self.is_org_shared
        name = self.name or channel.lower()
        out: dict[str, Any] = {
            "id": channel,
            "name": name,
            "is_channel": not self.is_mpim,
            "is_group": self.is_private and not self.is_mpim,
            "is_im": False,
            "is_mpim": self.is_mpim,
            "is_private": self.is_private or self.is_mpim,
            "created": 1449252889,
            "is_archived": False,
            "is_general": False,
            "unlinked": 0,
            "name_normalized": name,
            "is_shared": shared,
            "is_frozen": False,
            "is_org_shared": self.is_org_shared,
            "is_pending_ext_shared": self.is_pending_ext_shared,
            "pending_shared": ["T0OTHER"] if self.is_pending_ext_shared else [],
            "context_team_id": team,
            "updated": 1689965803820,
            "parent_conversation": None,
            "creator": "U0CREATOR",
            "is_ext_shared": self.is_ext_shared,
            "shared_team_ids": [team, "T0OTHER"] if self.is_ext_shared else [team],
            "pending_connected_team_ids": ["T0OTHER"] if self.is_pending_ext_shared else [],
            "is_member": BOT_USER_ID in self.members,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }
        if with_count and self.report_num_members:
            out["num_members"] = len(self.members) if self.num_members is None else self.num_members
        return out


@dataclass
class Call:
    method: str  # "chat.postMessage", or "response_url" for response_url posts
    args: dict[str, Any]
    path: str = ""
    at: float = field(default_factory=time.monotonic)


class SlackStub:
    """``users`` maps Slack user ids to e-mails (None: a profile without e-mail);
    ``profiles`` adds user-object fields (``is_bot``, ``team_id``, ``deleted``, ...);
    ``channels`` are the conversations ``conversations.info``/``members`` know (any other
    id is ``channel_not_found``, as for a channel the bot was never invited to)."""

    def __init__(
        self,
        *,
        users: Mapping[str, str | None] | None = None,
        profiles: Mapping[str, Mapping[str, Any]] | None = None,
        channels: Mapping[str, StubChannel] | None = None,
        team_id: str = "T1",
        bot_user_id: str = BOT_USER_ID,
        errors: Mapping[str, str] | None = None,
        rate_limit_once: set[str] | None = None,
        rate_limit_always: set[str] | None = None,
        scopes: Collection[str] | None = None,
    ) -> None:
        self.users = dict(users or {})
        self.profiles = {k: dict(v) for k, v in (profiles or {}).items()}
        self.channels = dict(channels or {})
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.errors = dict(errors or {})  # method → Slack error code to answer with
        self.rate_limit_once = set(rate_limit_once or ())  # methods answered 429 once
        self.rate_limit_always = set(rate_limit_always or ())  # methods answered 429 every time
        self.scopes = None if scopes is None else frozenset(scopes)  # None: every scope granted
        self.calls: list[Call] = []
        self.violations: list[str] = []  # "method: problem" for each broken Slack limit
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # method → gate: a call is recorded at once, answered only once its gate is set (tests
        # of what the bot does while a Slack call is still in flight)
        self.held: dict[str, asyncio.Event] = {}
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.port = 0

    # ── lifecycle ────────────────────────────────────────────────────────────────────

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> SlackStub:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{name}", self._response_url)
        app.router.add_get("/_stub/calls", self._dump)
        app.router.add_get("/_stub/summary", self._summary)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "r") -> str:
        return f"http://127.0.0.1:{self.port}/response/{name}"

    # ── inspection ───────────────────────────────────────────────────────────────────

    def to(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        where: Callable[[dict[str, Any]], bool] = lambda _args: True,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` matching calls were recorded; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [a for a in self.to(method) if where(a)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = sorted({c.method for c in self.calls})
                raise AssertionError(
                    f"expected {count} {method} call(s), got {len(found)}; calls seen: {seen}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    # ── handlers ─────────────────────────────────────────────────────────────────────

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if raw:
            if (request.content_type or "").endswith("json"):
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw.decode(), keep_blank_values=True))
        for key in ("blocks", "view", "metadata"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        return args

    def _record(self, method: str, args: dict[str, Any], path: str) -> None:
        self.calls.append(Call(method, args, path))
        self._changed.set()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        if method in self.rate_limit_once or method in self.rate_limit_always:
            self.rate_limit_once.discard(method)
            self._record(method + ":429", args, request.path)
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "0"}
            )
        self._record(method, args, request.path)
        gate = self.held.get(method)
        if gate is not None:
            await gate.wait()
        if self._refused(method, args):
            error = "invalid_arguments" if method in limits.VIEW_METHODS else "invalid_blocks"
            return web.json_response({"ok": False, "error": error})
        if method in self.errors:
            return web.json_response({"ok": False, "error": self.errors[method]})
        needed = self._needed_scope(method, args)
        if needed is not None and self.scopes is not None and needed not in self.scopes:
            provided = ",".join(sorted(self.scopes))
            return web.json_response(
                {"ok": False, "error": "missing_scope", "needed": needed, "provided": provided}
            )
        return web.json_response(self._answer(method, args))

    def _refused(self, method: str, args: dict[str, Any]) -> bool:
        """Record every broken limit; True when Slack itself would refuse the payload (a
        missing or blank top-level ``text`` with valid blocks is accepted, but still recorded)."""
        found = limits.problems(method, args)
        self.violations += [f"{method}: {p}" for p in found]
        return any(not p.startswith("top-level text") for p in found)

    def _needed_scope(self, method: str, args: dict[str, Any]) -> str | None:
        """The ``channels|groups|mpim|im`` × ``history|read`` scope a conversation method needs
        for the conversation it names (docs: each method's "Required scopes")."""
        verb = {
            "conversations.replies": "history",
            "conversations.history": "history",
            "conversations.info": "read",
            "conversations.members": "read",
        }.get(method)
        if verb is None:
            return None
        channel = str(args.get("channel", ""))
        conv = self.channels.get(channel)
        if conv is not None:
            kind = "mpim" if conv.is_mpim else "groups" if conv.is_private else "channels"
        elif channel.startswith("D"):
            kind = "im"
        else:
            return None  # unknown here: the stub's own answer (channel_not_found) applies
        return f"{kind}:{verb}"

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        ok: dict[str, Any] = {"ok": True}
        if method == "auth.test":
            return {
                **ok,
                "user_id": self.bot_user_id,
                "bot_id": BOT_ID,
                "team_id": self.team_id,
                "user": "deptbot",
            }
        if method == "users.info":
            uid = str(args.get("user", ""))
            if uid not in self.users and uid not in self.profiles:
                return {"ok": False, "error": "user_not_found"}
            email = self.users.get(uid)
            profile = {"email": email} if email else {}
            user = {"id": uid, "team_id": self.team_id, "deleted": False, "is_bot": False, "profile": profile}
            return {**ok, "user": {**user, **self.profiles.get(uid, {})}}
        if method == "conversations.info":
            conv = self.channels.get(str(args.get("channel", "")))
            if conv is None:
                return {"ok": False, "error": "channel_not_found"}
            with_count = str(args.get("include_num_members", "")).lower() in ("1", "true")
            found = conv.conversation(str(args["channel"]), team=self.team_id, with_count=with_count)
            return {**ok, "channel": found}
        if method == "conversations.members":
            return self._members(args)
        if method in ("chat.postMessage", "chat.update"):
            ts = str(args.get("ts") or f"{1700000000 + next(self._ts)}.000100")
            channel = str(args.get("channel", ""))
            msg = {"ts": ts, "text": args.get("text", ""), "user": self.bot_user_id, "bot_id": BOT_ID}
            if isinstance(args.get("metadata"), dict):
                msg["metadata"] = args["metadata"]
            if method == "chat.postMessage" and args.get("thread_ts"):
                self.threads.setdefault((channel, str(args["thread_ts"])), []).append(msg)
            if method == "chat.update":  # the thread shows the edit (metadata kept unless given)
                for stored in self.threads.values():
                    for i, old in enumerate(stored):
                        if old.get("ts") == ts and old.get("bot_id"):
                            stored[i] = {**old, **msg}
            return {**ok, "channel": channel, "ts": ts, "message": msg}
        if method == "chat.postEphemeral":
            return {**ok, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
        if method == "conversations.replies":
            return self._replies(args)
        if method in ("views.publish", "views.open"):
            return {**ok, "view": {"id": "V1", **(args.get("view") or {})}}
        if method == "apps.connections.open":
            return {"ok": False, "error": "not_supported_by_stub"}
        return ok  # reactions.add/remove, assistant.threads.setStatus, ...

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """One page of a thread as Slack's ``conversations.replies`` gives it: the parent
        message (when the stub holds it) first on the first page, then the replies oldest
        first, those after ``oldest`` and before ``latest`` only (the bounds themselves with
        ``inclusive``), ``limit`` of them (default 1000, as documented), ``has_more`` and an
        opaque ``next_cursor`` while more remain; metadata only with ``include_all_metadata``."""
        flag = ("1", "true")
        thread = str(args.get("ts", ""))
        stored = self.threads.get((str(args.get("channel", "")), thread), [])
        ordered = sorted(stored, key=lambda m: _ts(m.get("ts")))
        inclusive = str(args.get("inclusive", "")).lower() in flag
        oldest = _ts(args.get("oldest")) if args.get("oldest") else None
        latest = _ts(args.get("latest")) if args.get("latest") else None

        def within(ts: float) -> bool:
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            return latest is None or ts < latest or (ts == latest and inclusive)

        parent = [m for m in ordered if m.get("ts") == thread]
        replies = [m for m in ordered if m.get("ts") != thread and within(_ts(m.get("ts")))]
        try:
            limit = max(1, int(args.get("limit") or 1000))
        except ValueError:
            return {"ok": False, "error": "invalid_limit"}
        start = 0
        if args.get("cursor"):
            try:
                start = int(base64.b64decode(str(args["cursor"])).decode().removeprefix("offset:"))
            except ValueError:
                return {"ok": False, "error": "invalid_cursor"}
        page = replies[start : start + limit]
        more = start + limit < len(replies)
        messages = (parent if start == 0 else []) + page
        if str(args.get("include_all_metadata", "")).lower() not in flag:
            messages = [{k: v for k, v in m.items() if k != "metadata"} for m in messages]
        out: dict[str, Any] = {"ok": True, "messages": messages, "has_more": more}
        if more:
            cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode()
            out["response_metadata"] = {"next_cursor": cursor}
        return out

    def _members(self, args: dict[str, Any]) -> dict[str, Any]:
        """One page of member ids; ``next_cursor`` is "" on the last page (Slack's shape)."""
        conv = self.channels.get(str(args.get("channel", "")))
        if conv is None:
            return {"ok": False, "error": "channel_not_found"}
        try:
            limit = int(args.get("limit") or 100)
        except ValueError:
            return {"ok": False, "error": "invalid_limit"}
        if not 1 <= limit < 1000:
            return {"ok": False, "error": "invalid_limit"}
        start = 0
        if args.get("cursor"):
            try:
                start = int(base64.b64decode(str(args["cursor"])).decode().removeprefix("offset:"))
            except ValueError:
                return {"ok": False, "error": "invalid_cursor"}
        page = conv.members[start : start + limit]
        more = start + limit < len(conv.members)
        cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}

    def add_thread_message(self, channel: str, thread: str, message: dict[str, Any]) -> None:
        """Seed a human message into a thread (what conversations.replies will return)."""
        self.threads.setdefault((channel, thread), []).append(message)

    async def _response_url(self, request: web.Request) -> web.Response:
        args = await self._args(request)
        self._record("response_url", {**args, "_name": request.match_info["name"]}, request.path)
        if self._refused("response_url", args):
            return web.Response(status=400, text="invalid_blocks")
        return web.Response(text="ok")

    async def _summary(self, request: web.Request) -> web.Response:
        """Counts per method and the thread of every reply (cheap enough to poll under load)."""
        counts: dict[str, int] = {}
        for c in self.calls:
            counts[c.method] = counts.get(c.method, 0) + 1
        replies = [
            str(c.args.get("thread_ts", ""))
            for c in self.calls
            if c.method in ("chat.postMessage", "chat.postEphemeral")
        ]
        last = max((c.at for c in self.calls if c.method == "chat.postMessage"), default=0.0)
        return web.json_response(
            {"counts": counts, "replies": replies, "last_reply_at": last, "violations": self.violations}
        )

    async def _dump(self, request: web.Request) -> web.Response:
        return web.json_response([{"method": c.method, "args": c.args, "at": c.at} for c in self.calls])


def _ts(value: object) -> float:
    """A Slack timestamp ("1700000001.000100") as a number, for ordering; 0 when unreadable."""
    try:
        return float(str(value))
    except ValueError:
        return 0.0
