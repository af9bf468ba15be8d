"""Wiring: settings → a slack-bolt ``AsyncApp`` whose listeners are our translators.

Thin on purpose (like bolt's own adapters): read the three environment variables,
configure bolt's one ``AsyncWebClient`` (rate-limit retries, optional ``SLACK_API_URL``), register
listeners, and convert aiohttp requests to bolt requests. A request is checked before
anything else runs: bad, stale or absurd signature or timestamp → 401, unreadable body →
400, no work done. Member join/leave/share events only refresh the cached member lists
(``members.ChannelMembers``) that decide whether an answer may be shown in a channel.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.member_marks import watch_for
from bot.adapters.runtime import Runtime
from bot.adapters.slack import blocks as bk
from bot.adapters.slack.commands import SlashCommands
from bot.adapters.slack.conversation import (
    ANSWERED_EVENTS,
    CLAIM,
    CLAIM_EVENT,
    CLAIM_TAKEN_OVER,
    ChatState,
    Conversations,
)
from bot.adapters.slack.interactions import Interactions
from bot.adapters.slack.members import MEMBER_EVENTS, ChannelMembers, MembersConfig
from bot.adapters.slack.people import SlackPeople
from bot.adapters.slack.shared import SharedAnswers
from bot.core.pipeline import Assistant
from bot.errors import ConfigError
from bot.store.dedup import Claimed

log = logging.getLogger(__name__)

ENV = "environment"
DEFAULT_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class SlackConfig:
    bot_token: str
    signing_secret: str = ""
    app_token: str = ""
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, socket_mode: bool = False) -> SlackConfig | None:
        """None when Slack is not configured (HTTP mode); ConfigError naming the variable when half-set."""
        token = env.get("SLACK_BOT_TOKEN", "").strip()
        secret = env.get("SLACK_SIGNING_SECRET", "").strip()
        app_token = env.get("SLACK_APP_TOKEN", "").strip()
        api_url = env.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
        if socket_mode:
            if not app_token:
                raise ConfigError(
                    "is not set; Socket Mode needs an app-level token (xapp-…, scope connections:write)",
                    file=ENV,
                    field="SLACK_APP_TOKEN",
                )
            if not app_token.startswith("xapp-"):
                raise ConfigError(
                    "must be an app-level token starting with xapp-", file=ENV, field="SLACK_APP_TOKEN"
                )
            if not token:
                raise ConfigError(
                    "is not set; Socket Mode needs the bot token too", file=ENV, field="SLACK_BOT_TOKEN"
                )
        else:
            if not token and not secret:
                return None
            if not token:
                raise ConfigError(
                    "is not set but SLACK_SIGNING_SECRET is; set both to enable Slack, or neither",
                    file=ENV,
                    field="SLACK_BOT_TOKEN",
                )
            if not secret:
                raise ConfigError(
                    "is not set but SLACK_BOT_TOKEN is; copy it from Basic Information › App Credentials",
                    file=ENV,
                    field="SLACK_SIGNING_SECRET",
                )
        if not token.startswith("xoxb-"):
            raise ConfigError("must be a bot token starting with xoxb-", file=ENV, field="SLACK_BOT_TOKEN")
        if not api_url.startswith(("https://", "http://")):
            raise ConfigError("must be an http(s) URL", file=ENV, field="SLACK_API_URL")
        return cls(token, secret, app_token, api_url.rstrip("/") + "/")


def configure_client(client: AsyncWebClient, config: SlackConfig) -> AsyncWebClient:
    """Our settings on the client bolt built: ``SLACK_API_URL``, a 15 s timeout, retries on
    connection errors and rate limits. bolt copies these into the client it gives each
    listener (``AsyncApp._init_context``)."""
    client.base_url = config.api_url
    client.timeout = 15
    client.retry_handlers = [
        AsyncConnectionErrorRetryHandler(),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
    ]
    return client


class SlackAdapter:
    """The bolt app plus the aiohttp handler for ``/slack/events``."""

    def __init__(
        self,
        *,
        assistant: Assistant,
        config: SlackConfig,
        state: ChatState,
        people: SlackPeople | None = None,
        socket_mode: bool = False,
        stream_interval: float = 1.0,
        members: MembersConfig | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        """``members``: the ``[access]`` settings for channel member checks (defaults if None);
        ``runtime``: the threads and in-flight cap shared with Teams (defaults if None)."""
        self.config = config
        self._state = state
        self._verifier = SignatureVerifier(config.signing_secret) if config.signing_secret else None
        # The token, not a client: bolt falls back to SLACK_BOT_TOKEN from the environment
        # whenever ``token`` is empty, and then logs "As you gave `client` as well, `token`
        # will be unused." at every start. So bolt builds the client and we configure it.
        self.app = AsyncApp(
            name="deptbot",
            token=config.bot_token,
            signing_secret=config.signing_secret or "unused-in-socket-mode",
            request_verification_enabled=not socket_mode,
        )
        self.client = configure_client(self.app.client, config)
        people = people or SlackPeople()
        shared = SharedAnswers()
        self.runtime = runtime or Runtime()
        # replicas sharing PostgreSQL share membership events too: each reaches one replica
        watch = watch_for(state, run=self.runtime.quick)
        self.members = ChannelMembers(people=people, config=members, watch=watch)
        self.conversations = Conversations(
            assistant=assistant,
            state=state,
            people=people,
            members=self.members,
            runtime=self.runtime,
            stream_interval=stream_interval,
        )
        self.commands = SlashCommands(
            assistant=assistant, people=people, shared=shared, members=self.members, runtime=self.runtime
        )
        self.interactions = Interactions(
            assistant=assistant, people=people, shared=shared, members=self.members, runtime=self.runtime
        )
        self._register()

    def _register(self) -> None:
        app = self.app
        app.use(self._dedup)
        app.event("app_mention")(self.conversations.on_mention)
        app.event("message")(self.conversations.on_message)
        app.event("app_home_opened")(self.interactions.on_home)
        for name in MEMBER_EVENTS:
            app.event(name)(self.members.on_change)
        for name in ("/ask", "/task", "/kb"):
            app.command(name)(self.commands.on_command)
        app.action(bk.ACTION_UP)(self.interactions.on_feedback)
        app.action(bk.ACTION_DOWN)(self.interactions.on_feedback)
        app.action(bk.ACTION_SHARE)(self.interactions.on_share)
        app.view(bk.FEEDBACK_VIEW)(self.interactions.on_feedback_reason)
        # Anything else is acknowledged (200) so Slack neither retries nor disables the app.
        app.event(re.compile(".*"))(_ignore)
        app.action(re.compile(".*"))(_ack_only)

    async def _dedup(self, body: dict[str, Any], context: Any, next: Any) -> BoltResponse | None:
        """Exactly one reply per event: redeliveries (X-Slack-Retry-Num, restarts) stop here,
        unless the replica holding the event died before replying (its claim's lease expired
        undone). A question's claim is marked done by ``Conversations`` once the reply is
        posted; any other event's at once (refreshing a member list twice is harmless).
        A question taken over from a holder that left it undone is marked so: that holder
        may have died after replying, and ``Conversations`` looks for the reply first.
        Store calls run on the runtime's quick threads, never on the event loop."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if not isinstance(event_id, str):
            return await next()
        key = f"slack:{event_id}"
        # Off the loop (the quick threads): on PostgreSQL each call is a round trip that
        # would stall every acknowledgement and answer sharing the loop. Awaited, so the
        # claim is settled before anything is acknowledged or answered.
        claimed = await self.runtime.quick(self._state.claim, key)
        if not claimed:
            log.debug("dropping redelivered event %s", event_id)
            return BoltResponse(status=200, body="")
        event = body.get("event")
        if isinstance(event, dict) and event.get("type") in ANSWERED_EVENTS:
            context[CLAIM] = key
            context[CLAIM_EVENT] = event_id
            context[CLAIM_TAKEN_OVER] = claimed == Claimed.TAKEN_OVER
            if claimed == Claimed.TAKEN_OVER:
                log.info("took over Slack event %s, left undone by its last holder", event_id)
        else:
            await self.runtime.quick(self._state.done, key)
        return await next()

    # ── aiohttp ──────────────────────────────────────────────────────────────────────

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: verify, parse, dispatch. Never a 500 for bad input."""
        raw = await request.read()
        if self._verifier is None or not self._signed(raw, request):
            return web.json_response({"error": "invalid signature"}, status=401)
        try:
            text = raw.decode("utf-8")
            body = parse_body(text, request.content_type)
        except (ValueError, TypeError):  # bad UTF-8, JSON or form
            return web.json_response({"error": "malformed body"}, status=400)
        if not isinstance(body, dict) or not any(k in body for k in ("type", "command", "ssl_check")):
            return web.json_response({"error": "not a Slack payload"}, status=400)
        hdrs = request.headers
        headers: dict[str, str | Sequence[str]] = {k.lower(): hdrs.getall(k) for k in hdrs}
        try:
            bolt_req = AsyncBoltRequest(body=text, query=request.query_string, headers=headers)
        except Exception:  # a shape bolt cannot read (e.g. a field of the wrong type)
            log.info("unreadable Slack payload", exc_info=True)
            return web.json_response({"error": "malformed body"}, status=400)
        bolt_resp = await self.app.async_dispatch(bolt_req)
        return await to_aiohttp_response(bolt_resp)

    def _signed(self, raw: bytes, request: web.Request) -> bool:
        assert self._verifier is not None
        try:
            return self._verifier.is_valid(
                body=raw,
                timestamp=request.headers.get("X-Slack-Request-Timestamp"),
                signature=request.headers.get("X-Slack-Signature"),
            )
        except (ValueError, TypeError, OverflowError):  # non-numeric or absurdly large timestamp
            return False

    async def start(self) -> None:
        """One pooled HTTP session for every Web API call (instead of one per call)."""
        if self.client.session is None:
            self.client.session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self.client.session is not None:
            await self.client.session.close()
            self.client.session = None


async def _ignore() -> None:
    return None


async def _ack_only(ack: Any) -> None:
    await ack()
