"""Slack fixtures: the real server on 127.0.0.1 talking to a stub Slack Web API on 127.0.0.1.

``SlackHarness`` posts signed events, slash commands and interactions exactly as Slack
would; ``harness.stub`` records every Web API and ``response_url`` call the bot makes and
checks it against Slack's published limits — any violation fails the test at exit.
Like Slack, the harness holds the app to its manifest (``manifest/slack/manifest.yaml``):
an event the manifest does not subscribe to is never delivered, and the stub answers
``missing_scope`` for a conversation the manifest's scopes cannot read.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import yaml
from aiohttp import web

from bot.adapters.http import SLACK, build_app
from bot.adapters.slack.manifest import render_manifest
from bot.adapters.slack.stub import BOT_USER_ID, SlackStub, StubChannel, signed_headers
from bot.config import Company, load_company
from bot.core.pipeline import Assistant
from bot.settings import Settings
from bot.store.dedup import DedupStore
from tests.fakes import make_company
from tests.pg_fixtures import DbBackend

SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"
USERS: dict[str, str | None] = {
    "UALICE": "alice@example.com",  # hr-team
    "UHANK": "hank@example.com",  # hr-admins
    "UCAROL": "carol@example.com",  # finance-admins: sees payroll
    "UBOB": "bob@example.com",  # engineering
    "UGRACE": "grace@example.com",  # nobody special
    "UNOMAIL": None,  # a profile without an e-mail
}
CHANNELS: dict[str, list[str]] = {
    "C0HRHELP": ["UALICE", "UHANK", BOT_USER_ID],  # private; everyone here may ask HR
    "C0FIN": ["UCAROL", "UALICE", BOT_USER_ID],  # private; alice may not see payroll
}
INJECTION = "<!channel> <!here> <@U999EVIL> via <https://evil.example/login|the HR portal>"
_MANIFEST = yaml.safe_load(render_manifest("https://bot.example.com"))
SCOPES: frozenset[str] = frozenset(_MANIFEST["oauth_config"]["scopes"]["bot"])
BOT_EVENTS: frozenset[str] = frozenset(_MANIFEST["settings"]["event_subscriptions"]["bot_events"])
# message events are subscribed per conversation type (``channel_type`` in the event)
_MESSAGE_EVENTS = {
    "channel": "message.channels",
    "group": "message.groups",
    "im": "message.im",
    "mpim": "message.mpim",
}


def subscription(event: dict[str, Any]) -> str | None:
    """The ``bot_events`` entry that makes Slack deliver ``event`` (None: cannot tell)."""
    kind = event.get("type")
    if kind == "message":
        return _MESSAGE_EVENTS.get(str(event.get("channel_type")))
    return kind if isinstance(kind, str) else None


@pytest.fixture
def company(tmp_path: Path) -> Company:
    """The shared tiny company plus one HR document full of Slack control sequences."""
    make_company(tmp_path)
    doc = tmp_path / "knowledge" / "hr" / "office-closure.md"
    doc.write_text(
        textwrap.dedent(f"""\
        ---
        title: Office closure <!here>
        ---
        # Office closure
        ## Friday closure
        The office closure on Friday starts at 5pm for everyone, {INJECTION}.
        """)
    )
    return load_company(tmp_path / "departments")


def default_channels() -> dict[str, StubChannel]:
    """The private channels every harness knows (tests add their own to ``stub.channels``)."""
    return {cid: StubChannel(members=list(members)) for cid, members in CHANNELS.items()}


class SlackHarness:
    """``stream_interval`` (seconds between streamed DM updates) defaults to the adapter's;
    ``access`` overrides settings of the ``[access]`` table (member checks); ``env`` is added
    to the server's environment (``db_backend.env``: its state in PostgreSQL)."""

    def __init__(
        self,
        assistant: Assistant,
        state_dir: Path,
        *,
        stream_interval: float | None = None,
        access: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        **stub_kwargs: Any,
    ) -> None:
        self.assistant = assistant
        self.env = dict(env or {})
        self.state_dir = state_dir
        self.stream_interval = stream_interval
        self.access = dict(access or {})
        stub_kwargs.setdefault("channels", default_channels())
        stub_kwargs.setdefault("scopes", SCOPES)
        self.stub = SlackStub(users=USERS, **stub_kwargs)
        self._runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        self.url = ""
        self._n = 0

    async def __aenter__(self) -> SlackHarness:
        await self.stub.start()
        await self.start_server()
        self.session = aiohttp.ClientSession()
        return self

    async def start_server(self) -> None:
        env = {
            **self.env,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": self.stub.api_url,
        }
        file = {"access": self.access} if self.access else {}
        settings = Settings(departments_dir=Path("."), state_dir=self.state_dir, env=env, file=file)
        app = build_app(assistant=self.assistant, settings=settings)
        if self.stream_interval is not None:
            app[SLACK].conversations.stream_interval = self.stream_interval
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop_server(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        await self.stop_server()
        await self.stub.stop()
        if self.stub.violations:  # every test checks what the bot sent against Slack's limits
            raise AssertionError("payloads Slack would refuse:\n" + "\n".join(self.stub.violations))

    # ── requests as Slack sends them ────────────────────────────────────────────────

    async def post(
        self,
        body: str,
        *,
        content_type: str = "application/json",
        signed: bool = True,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        assert self.session is not None
        h = {
            "Content-Type": content_type,
            **(signed_headers(SECRET, body, timestamp=timestamp) if signed else {}),
        }
        h.update(headers or {})
        async with self.session.post(self.url + "/slack/events", data=body.encode(), headers=h) as resp:
            return resp.status, await resp.text()

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None
    ) -> tuple[int, str]:
        """Deliver ``event`` as Slack would — only when the manifest subscribes to it."""
        name = subscription(event)
        if name is not None and name not in BOT_EVENTS:
            raise AssertionError(
                f"Slack would not deliver this event: {name!r} is not in the manifest's bot_events"
            )
        self._n += 1
        envelope = {
            "token": "legacy",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": event_id or f"Ev{self._n:06d}{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}],
        }
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else None
        return await self.post(json.dumps(envelope), headers=headers)

    async def command(
        self, command: str, text: str, *, user: str = "UALICE", channel: str = "C0HRHELP", name: str = "cmd"
    ) -> tuple[int, str]:
        form = {
            "token": "legacy",
            "team_id": "T1",
            "channel_id": channel,
            "channel_name": "directmessage" if channel.startswith("D") else "hr-help",
            "user_id": user,
            "command": command,
            "text": text,
            "api_app_id": "A1",
            "response_url": self.stub.response_url(name),
            "trigger_id": "trigger-1",
        }
        return await self.post(urlencode(form), content_type="application/x-www-form-urlencoded")

    async def interaction(self, payload: dict[str, Any]) -> tuple[int, str]:
        payload = {"team": {"id": "T1"}, "api_app_id": "A1", "token": "legacy", **payload}
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, content_type="application/x-www-form-urlencoded")

    async def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "UALICE",
        name: str = "click",
        channel: str = "C0HRHELP",
    ) -> tuple[int, str]:
        return await self.interaction(
            {
                "type": "block_actions",
                "user": {"id": user},
                "trigger_id": "trigger-2",
                "response_url": self.stub.response_url(name),
                "container": {"type": "message", "message_ts": "1.1", "channel_id": channel},
                "channel": {"id": channel},
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": f"feedback:{value}",
                        "value": value,
                        "type": "button",
                    }
                ],
            }
        )


def mention(
    text: str, *, user: str = "UALICE", channel: str = "C0HRHELP", ts: str = "1700000001.000100"
) -> dict[str, Any]:
    return {"type": "app_mention", "user": user, "channel": channel, "ts": ts, "text": f"<@UBOT> {text}"}


def dm(text: str, *, user: str = "UALICE", ts: str = "1700000002.000100", **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "channel": "D0ALICE",
        "ts": ts,
        "text": text,
        **extra,
    }


@pytest.fixture
def harness(assistant: Assistant, tmp_path: Path, db_backend: DbBackend) -> Iterator[SlackHarness]:
    """Every test using it runs twice: the server's state (event de-duplication, answered
    threads) in the state folder's SQLite file, then in PostgreSQL (and then no such file
    may appear: the replicas would not share it)."""
    yield SlackHarness(assistant, tmp_path / "state", env=db_backend.env)
    if db_backend.name == "postgresql":
        assert not (tmp_path / "state" / DedupStore.FILE).exists()
