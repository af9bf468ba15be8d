"""Thin botbuilder wiring: ``POST /api/messages`` on the shared aiohttp server.

The request is checked before botbuilder sees it (content type, JSON, the fields a reply
needs), then authenticated with ``CloudAdapter``'s ``ConfigurationBotFrameworkAuthentication``
(token signature, issuer, audience = our app id, and the token's ``serviceurl`` claim =
the activity's ``serviceUrl``), then filtered by the tenant allow-list. Only then does a
turn run, so no reply ever goes to a serviceUrl that was not vouched for.

Without ``MicrosoftAppId`` there is no token to check, so every request is refused (401)
unless ``DEPTBOT_TEAMS_ANONYMOUS=1`` asked for the Emulator mode (``auth``); then only
Emulator activities (``channelId`` "emulator") from this machine that reply to this machine
are taken, and who asks is the configured address alone (``turns``).

Messages are acknowledged at once (202) and answered in a background task, like bolt's
lazy listeners: answers can take longer than the Bot Connector waits. Invokes (feedback)
run inline because their HTTP response *is* the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, ActivityTypes
from botframework.connector.auth import AuthenticateRequestResult, BotFrameworkAuthentication

from bot.adapters import render as wording
from bot.adapters.teams import inbound, pages, render
from bot.adapters.teams.auth import (
    TeamsSettings,
    check_teams_settings,
    is_loopback_host,
    use_off_loop_signing_keys,
    warm_signing_keys,
)
from bot.adapters.teams.identity import MemberEmails
from bot.adapters.teams.manifest import build_manifest_zip
from bot.adapters.teams.outbound import to_activity
from bot.adapters.teams.roster import RosterSettings
from bot.adapters.teams.roster_marks import rosters_for
from bot.adapters.teams.turns import TeamsBot
from bot.core.pipeline import Assistant, new_request_id
from bot.store.conversations import ConversationStore

__all__ = ["ENDPOINT_KEY", "TeamsEndpoint", "build_manifest_zip", "check_teams_settings", "mount"]

log = logging.getLogger(__name__)

ROUTE = "/api/messages"
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


class TeamsEndpoint:
    """Owns the adapter, the bot and the background tasks for one server."""

    def __init__(
        self,
        *,
        assistant: Assistant,
        teams: TeamsSettings,
        auth: BotFrameworkAuthentication | None = None,
        store: ConversationStore | None = None,
        rosters: RosterSettings | None = None,
    ) -> None:
        self.teams = teams
        use_off_loop_signing_keys()  # botbuilder would fetch signing keys with blocking requests
        self.auth = auth or ConfigurationBotFrameworkAuthentication(teams.bot_framework_config())
        self.adapter = CloudAdapter(self.auth)
        self.adapter.on_turn_error = self._on_turn_error
        self.store = store or ConversationStore()
        self.bot = TeamsBot(
            assistant=assistant,
            teams=teams,
            adapter=self.adapter,
            store=self.store,
            members=MemberEmails(),
            rosters=rosters_for(rosters or RosterSettings(), self.store.state),  # replicas: shared marks
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _problem(415, "Expected application/json.")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return _problem(400, "The body is not valid JSON.")
        problem = _check_activity(body)
        if problem:
            return _problem(400, problem)
        try:
            activity = Activity().deserialize(body)
        except Exception:
            return _problem(400, "The body is not a Bot Framework activity.")

        if self.teams.anonymous and not self.teams.emulator:
            return _problem(401, "Unauthorized.")  # no app id and no Emulator opt-in
        if self.teams.anonymous and not _local_emulator_request(request, body):
            return _problem(401, "Anonymous mode accepts local Emulator requests only.")
        auth_header = request.headers.get("Authorization") or None
        try:
            result = await self.auth.authenticate_request(activity, auth_header)
        except PermissionError as exc:
            log.info("teams request refused: %s", exc)
            return _problem(401, "Unauthorized.")
        except OSError:
            log.warning("could not fetch the Bot Framework signing keys", exc_info=True)
            return _problem(503, "Cannot validate tokens right now.")
        except Exception as exc:  # malformed tokens raise jwt errors, KeyError, ...
            log.info("teams token rejected: %s", type(exc).__name__)
            return _problem(401, "Unauthorized.")
        if not self.teams.anonymous and not _service_url_vouched(result, activity):
            return _problem(401, "Unauthorized.")
        tenant = inbound.tenant_id(body)
        if self.teams.tenants and tenant not in self.teams.tenants:
            log.warning("teams request from tenant %r refused (not in DEPTBOT_TEAMS_TENANTS)", tenant)
            return _problem(403, "This tenant may not use this bot.")

        if activity.type == ActivityTypes.invoke:
            try:
                response = await self.adapter.process_activity(result, activity, self._logic(body))
            except Exception:
                log.exception("teams invoke failed")
                return _problem(500, "Internal error.")
            return _invoke_response(response)
        if activity.type in (ActivityTypes.message, ActivityTypes.conversation_update):
            task = asyncio.create_task(self._run(result, activity, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(status=202)

    async def drain(self, app: web.Application | None = None, timeout: float = 30.0) -> None:
        """Let answers in flight finish (on server shutdown); ``app`` makes it an aiohttp hook."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def start(self, app: web.Application | None = None) -> None:
        """On server start: fetch the signing keys in the background, so the first request
        does not wait for them (anonymous mode validates no tokens). Say how requests are
        authenticated (the Emulator mode as a warning, so it shows without -v)."""
        (log.warning if self.teams.emulator else log.info)("%s", self.teams.describe())
        if not self.teams.anonymous:
            task = asyncio.create_task(self._warm_keys())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self, app: web.Application | None = None) -> None:
        """On server cleanup, after ``drain``: close the conversation state."""
        self.store.close()

    async def _warm_keys(self) -> None:
        try:
            await warm_signing_keys()
        except Exception as exc:  # the first request retries; say why once
            log.warning("could not pre-fetch the Bot Framework signing keys: %s", type(exc).__name__)

    def _logic(self, body: Mapping[str, Any]) -> Any:
        async def logic(ctx: TurnContext) -> None:
            await self.bot.on_turn(ctx, body)

        return logic

    async def _run(
        self, result: AuthenticateRequestResult, activity: Activity, body: Mapping[str, Any]
    ) -> None:
        try:
            await self.adapter.process_activity(result, activity, self._logic(body))
        except Exception:
            log.exception("teams turn could not start (%s)", activity.type)

    async def _on_turn_error(self, ctx: TurnContext, error: Exception) -> None:
        rid = new_request_id()
        log.error("teams turn failed (request %s)", rid, exc_info=error)
        if ctx.activity.type == ActivityTypes.message:
            try:
                await ctx.send_activity(to_activity(render.text_activity(wording.sorry(rid))))
            except Exception:
                log.warning("could not tell the user about request %s", rid)


def _problem(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def _check_activity(body: Any) -> str | None:
    """What a reply needs and botbuilder would otherwise trip over (→ 400, not 500)."""
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    if not isinstance(body.get("type"), str) or not body["type"]:
        return "The activity has no type."
    url = body.get("serviceUrl")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "The activity has no valid serviceUrl."
    conversation = body.get("conversation")
    if (
        not isinstance(conversation, dict)
        or not isinstance(conversation.get("id"), str)
        or not conversation["id"]
    ):
        return "The activity has no conversation id."
    if not isinstance(body.get("channelId"), str) or not body["channelId"]:
        return "The activity has no channelId."
    for key in ("from", "recipient"):
        if not isinstance(body.get(key), dict) or not isinstance(body[key].get("id"), str):
            return f"The activity has no {key}.id."
    if body.get("entities") is not None and not isinstance(body["entities"], list):
        return "entities must be a list."
    return None


def _local_emulator_request(request: web.Request, body: Mapping[str, Any]) -> bool:
    """Emulator mode: an Emulator activity, and the caller *and* the reply target are this
    machine (a forwarding header means a proxy passed it on: refused)."""
    if body.get("channelId") != "emulator" or any(h in request.headers for h in FORWARDING_HEADERS):
        return False
    return is_loopback_host(request.remote or "") and is_loopback_host(
        urlsplit(body["serviceUrl"]).hostname or ""
    )


def _service_url_vouched(result: AuthenticateRequestResult, activity: Activity) -> bool:
    """The token must name the serviceUrl we will reply to (the Emulator's tokens carry none)."""
    claims = result.claims_identity.claims if result.claims_identity else {}
    claim = claims.get("serviceurl") or claims.get("serviceUrl")
    if claim is not None:
        return bool(claim == activity.service_url)
    return activity.channel_id == "emulator" and is_loopback_host(
        urlsplit(activity.service_url).hostname or ""
    )


def _invoke_response(response: InvokeResponse | None) -> web.Response:
    if response is None:
        return web.Response(status=200)
    status = int(response.status or 200)
    if response.body is None:
        return web.Response(status=status)
    return web.json_response(response.body, status=status)


ENDPOINT_KEY = web.AppKey("deptbot.teams", TeamsEndpoint)


def mount(
    app: web.Application,
    *,
    assistant: Assistant,
    settings: Any,
    auth: BotFrameworkAuthentication | None = None,
) -> None:
    """Add ``POST /api/messages`` to the shared server, and the pages the app package links
    to (``GET /about``, ``/privacy``, ``/terms``: ``pages``).

    ``settings`` is ``bot.settings.Settings``; Teams settings come from its ``env`` and are
    validated here (ConfigError names the variable). Call ``check_teams_settings(settings,
    host)`` before binding, so a non-loopback server without an app id refuses to start.
    ``auth`` replaces the Bot Framework authentication (tests; sovereign clouds). The ``[access]``
    settings bound the channel rosters (``roster``). Conversation references, follow-up
    history and the reply→request map live in ``settings.state_dir`` (``teams-state.sqlite3``),
    so a restart keeps them.
    """
    endpoint = TeamsEndpoint(
        assistant=assistant,
        teams=TeamsSettings.from_env(settings.env),
        auth=auth,
        store=ConversationStore.for_settings(settings),  # PostgreSQL with DEPTBOT_DATABASE_URL
        rosters=RosterSettings.from_settings(settings),
    )
    app[ENDPOINT_KEY] = endpoint
    app.router.add_post(ROUTE, endpoint.handle)
    pages.add_routes(app)
    app.on_startup.append(endpoint.start)
    app.on_shutdown.append(endpoint.drain)
    app.on_cleanup.append(endpoint.close)
