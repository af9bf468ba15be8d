"""Teams fixtures: a fake Bot Connector on 127.0.0.1, activity builders, a harness.

The fake connector records what the bot posts (``POST /v3/conversations/{id}/activities
[/{replyToId}]``, ``PUT …/activities/{id}``, ``POST /v3/conversations``) and answers member
look-ups (``GET /v3/conversations/{id}/members/{userId}``) and rosters (``GET
/v3/conversations/{teamId or chatId}/pagedmembers?pageSize=&continuationToken=``, the route
botbuilder's ``TeamsInfo.get_paged_team_members``/``get_paged_members`` call, answered in the
``{"continuationToken", "members": [TeamsChannelAccount]}`` shape). Activities sent to the bot
name it as their ``serviceUrl``, exactly as Teams names its regional Bot Connector.

Like Teams, the fake connector refuses (400) an activity that breaks a published limit
(``limits.problems``: citations, AI entity, Adaptive Card basics, size), and every scenario
ends by asserting that nothing was refused, so each Teams test checks every payload it causes.

Requests are authenticated as in production (``secure``): the bot has an app id, and the
harness signs every request with a key a loopback OpenID stub publishes
(``ChannelValidation.open_id_metadata_endpoint`` points there), with the activity's
serviceUrl as the token's ``serviceurl`` claim. Only tests that opt into the Emulator mode
(``DEPTBOT_TEAMS_ANONYMOUS``) run without tokens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botframework.connector.auth import (
    AppCredentials,
    ChannelValidation,
    PasswordServiceClientCredentialFactory,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bot.adapters.teams.auth import ANONYMOUS_VAR, TeamsSettings
from bot.adapters.teams.bot import ENDPOINT_KEY, mount
from bot.core.pipeline import Assistant
from bot.settings import Settings
from bot.store.teams_state import TeamsState
from tests.adapters.teams.limits import problems
from tests.pg_fixtures import DbBackend

TENANT = "5f0d9d35-7a3e-4c5b-9b1f-2b8a7f0e6c11"
APP_ID = "8c5d2df2-4650-4d73-be4c-d17e28b26e5d"
BOT = {"id": "28:" + APP_ID, "name": "deptbot"}
TEAM_CHANNEL = "19:general@thread.tacv2"
TEAM = "19:team@thread.tacv2"
GROUP_CHAT = "19:groupchat@thread.v2"
APP_ENV = {  # a single-tenant bot in TENANT: what every harness runs as unless a test opts out
    "MicrosoftAppId": APP_ID,
    "MicrosoftAppPassword": "not-a-real-secret",
    "MicrosoftAppType": "SingleTenant",
    "MicrosoftAppTenantId": TENANT,
}
EMULATOR_ENV = {ANONYMOUS_VAR: "1"}  # the Emulator mode's opt-in (no app id, no tokens)

PEOPLE = {
    "alice": "alice@example.com",  # hr-team
    "carol": "carol@example.com",  # finance admin: may see payroll
    "hank": "hank@example.com",  # hr admin
    "bob": "bob@example.com",  # engineering (the only one who may ask Engineering)
    "mallory": "mallory@elsewhere.test",  # not in the directory
}


def member(name: str) -> dict[str, Any]:
    return {
        "id": f"29:{name}",
        "name": name.title(),
        "aadObjectId": f"aad-{name}",
        "email": PEOPLE[name],
        "userPrincipalName": PEOPLE[name],
        "tenantId": TENANT,
        "userRole": "user",
    }


# who is in the team and the group chat unless a test says otherwise: everyone at example.com
ROSTER = ("alice", "bob", "carol", "hank")

_ids = itertools.count(1)


def activity(
    text: str,
    *,
    user: str = "alice",
    kind: str = "personal",
    service_url: str,
    mention: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Teams message activity as the Bot Connector posts it."""
    n = next(_ids)
    sender = {"id": f"29:{user}", "name": user.title(), "aadObjectId": f"aad-{user}"}
    conv: dict[str, Any] = {"id": f"a:personal-{user}", "conversationType": "personal", "tenantId": TENANT}
    data: dict[str, Any] = {"tenant": {"id": TENANT}}
    if kind == "channel":
        conv = {
            "id": f"{TEAM_CHANNEL};messageid={1000 + n}",
            "conversationType": "channel",
            "isGroup": True,
            "tenantId": TENANT,
        }
        # Teams names the channel's type; without it only the General channel counts as standard
        data.update(channel={"id": TEAM_CHANNEL, "type": "standard"}, team={"id": TEAM})
    elif kind == "groupChat":
        conv = {
            "id": GROUP_CHAT,
            "conversationType": "groupChat",
            "isGroup": True,
            "tenantId": TENANT,
        }
    mention = kind != "personal" if mention is None else mention
    entities = []
    if mention:
        text = f"<at>deptbot</at> {text}"
        entities.append({"type": "mention", "text": "<at>deptbot</at>", "mentioned": dict(BOT)})
    body = {
        "type": "message",
        "id": str(1000 + n),
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": sender,
        "recipient": dict(BOT),
        "conversation": conv,
        "channelData": data,
        "text": text,
        "textFormat": "plain",
        "entities": entities,
        "locale": "en-US",
    }
    body.update(extra)
    return body


@dataclass
class Posted:
    method: str
    path: str
    conversation: str
    reply_to: str | None
    body: dict[str, Any]
    auth: str | None
    id: str = ""  # the id the connector gave the posted message


@dataclass
class FakeConnector:
    """The Bot Connector's REST API, as much of it as the bot uses."""

    posted: list[Posted] = field(default_factory=list)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    fail_create: bool = False
    lookups: list[str] = field(default_factory=list)
    # conversation (team or chat) id → its members, served by /pagedmembers
    rosters: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    roster_page: int = 2  # members per page (Teams pages by 50..500; small pages exercise paging)
    roster_status: int = 200  # anything else: the roster call fails with that status
    roster_calls: list[tuple[str, str | None]] = field(default_factory=list)  # (conversation, token)
    invalid: list[tuple[str, list[str]]] = field(default_factory=list)  # (path, problems) refused with 400
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{cid}/activities", self._post)
        app.router.add_post("/v3/conversations/{cid}/activities/{rid}", self._post)
        app.router.add_put("/v3/conversations/{cid}/activities/{rid}", self._post)
        app.router.add_get("/v3/conversations/{cid}/members/{uid}", self._member)
        app.router.add_get("/v3/conversations/{cid}/pagedmembers", self._paged_members)
        return app

    async def _paged_members(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        token = request.query.get("continuationToken")
        self.roster_calls.append((cid, token))
        if self.roster_status != 200:
            return web.json_response(
                {"error": {"code": "ServiceError", "message": "roster unavailable"}},
                status=self.roster_status,
            )
        members = self.rosters.get(cid)
        if members is None:
            return web.json_response({"error": {"code": "ConversationNotFound"}}, status=404)
        start = int(token or 0)
        end = start + self.roster_page
        body: dict[str, Any] = {"members": members[start:end]}
        if end < len(members):
            body["continuationToken"] = str(end)
        return web.json_response(body)

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        found = problems(body)
        if found:  # what Teams answers for a payload it cannot take
            self.invalid.append((request.path, found))
            return web.json_response(
                {"error": {"code": "BadArgument", "message": "; ".join(found)}}, status=400
            )
        rid = request.match_info.get("rid")
        new_id = rid if request.method == "PUT" and rid else f"bot-msg-{next(_ids)}"
        self.posted.append(
            Posted(
                request.method,
                request.path,
                request.match_info["cid"],
                rid if request.method == "POST" else None,
                body,
                request.headers.get("Authorization"),
                new_id,
            )
        )
        return web.json_response({"id": new_id})

    async def _member(self, request: web.Request) -> web.Response:
        self.lookups.append(request.match_info["uid"])
        found = self.members.get(request.match_info["uid"])
        if found is None:
            return web.json_response({"error": {"code": "NotFound"}}, status=404)
        return web.json_response(found)

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.fail_create:
            return web.json_response({"error": {"code": "BotNotInConversationRoster"}}, status=403)
        self.created.append(body)
        return web.json_response({"id": f"a:private-{body['members'][0]['id']}"})

    # ── what tests read ─────────────────────────────────────────────────────────────

    def messages(self, conversation: str | None = None) -> list[Posted]:
        return [
            p
            for p in self.posted
            if p.body.get("type") == "message" and (conversation is None or p.conversation == conversation)
        ]

    def types(self) -> list[str]:
        return [p.body.get("type", "") for p in self.posted]


@dataclass
class Harness:
    """The bot's server and the fake connector, both on 127.0.0.1, in one event loop."""

    client: TestClient
    connector: FakeConnector
    app: web.Application
    issuer: TokenIssuer | None = None  # signs each request (None: Emulator mode, no tokens)

    @property
    def service_url(self) -> str:
        return self.connector.url

    def activity(self, text: str, **kw: Any) -> dict[str, Any]:
        return activity(text, service_url=self.service_url, **kw)

    async def post(
        self, body: Any, *, headers: dict[str, str] | None = None, signed: bool = True
    ) -> tuple[int, str]:
        """POST to /api/messages; with an issuer (and unless ``signed`` is False or the test
        brings its own Authorization header) signed for the activity's serviceUrl."""
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if signed and "Authorization" not in hdrs:
            hdrs.update(self.signed(body))
        resp = await self.client.post("/api/messages", data=data, headers=hdrs)
        return resp.status, await resp.text()

    def signed(self, body: Any) -> dict[str, str]:
        """The Authorization header Teams would send with ``body`` ({} in Emulator mode)."""
        if self.issuer is None:
            return {}
        url = body.get("serviceUrl") if isinstance(body, dict) else None
        token = self.issuer.token(serviceurl=url if isinstance(url, str) else self.service_url)
        return {"Authorization": f"Bearer {token}"}

    async def settle(self) -> None:
        """Wait until every answer in flight has been posted."""
        await self.app[ENDPOINT_KEY].drain(timeout=10)

    async def ask(self, body: dict[str, Any], **kw: Any) -> list[Posted]:
        before = len(self.connector.posted)
        status, text = await self.post(body, **kw)
        assert status == 202, (status, text)
        await self.settle()
        return self.connector.posted[before:]


Scenario = Callable[[Harness], Awaitable[None]]


def make_settings(
    tmp_path: Path, env: dict[str, str] | None = None, access: dict[str, Any] | None = None
) -> Settings:
    """``access`` is the settings file's ``[access]`` table (roster limits); defaults otherwise."""
    return Settings(
        departments_dir=tmp_path / "departments",
        state_dir=tmp_path / ".deptbot",
        env=env or {},
        file={"access": access} if access is not None else {},
    )


class _StaticToken(AppCredentials):
    def get_access_token(self, force_refresh: bool = False) -> str:
        return "outbound-test-token"


class _StaticFactory(PasswordServiceClientCredentialFactory):
    """Outbound calls carry a static token (MSAL would need login.microsoftonline.com)."""

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> Any:
        return _StaticToken(app_id=app_id)


def secure(settings: Settings, auth: Any = None) -> tuple[Settings, Any, TokenIssuer | None]:
    """Run as production does: ``settings`` with the app id (unless the test opted into the
    Emulator mode or brings its own), the Bot Framework authentication ``mount`` gets, and the
    issuer the harness signs with. A test that passes its own ``auth`` signs its own tokens."""
    if not settings.env.get("MicrosoftAppId") and not settings.env.get(ANONYMOUS_VAR):
        settings = dataclasses.replace(settings, env={**settings.env, **APP_ENV})
    if auth is not None or not settings.env.get("MicrosoftAppId"):
        return settings, auth, None
    issuer = token_issuer()
    ChannelValidation.open_id_metadata_endpoint = issuer.metadata_url  # the keys come from the stub
    teams = TeamsSettings.from_env(settings.env)
    auth = ConfigurationBotFrameworkAuthentication(
        teams.bot_framework_config(),
        credentials_factory=_StaticFactory(teams.app_id, teams.app_password, teams.app_tenant_id),
    )
    return settings, auth, issuer


async def _run(scenario: Scenario, assistant: Assistant, settings: Settings, auth: Any = None) -> None:
    settings, auth, issuer = secure(settings, auth)
    roster = [member(n) for n in ROSTER]
    connector = FakeConnector(
        members={f"29:{n}": member(n) for n in PEOPLE},
        rosters={TEAM: list(roster), GROUP_CHAT: list(roster)},
    )
    connector_server = TestServer(connector.app(), host="127.0.0.1")
    await connector_server.start_server()
    connector.url = str(connector_server.make_url("/")).rstrip("/") + "/"
    app = web.Application()
    mount(app, assistant=assistant, settings=settings, auth=auth)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        await scenario(Harness(client=client, connector=connector, app=app, issuer=issuer))
        assert connector.invalid == [], "Teams would refuse these activities"
    finally:
        await client.close()
        await connector_server.close()


@pytest.fixture
def teams(assistant: Assistant, tmp_path: Path, db_backend: DbBackend) -> Callable[..., None]:
    """Run ``async def scenario(h: Harness)`` against the bot, authenticated as in production
    (``secure``; ``env=EMULATOR_ENV`` for the Emulator mode). Every test using it runs
    twice: the bot's conversation state in the state folder's SQLite file, then in
    PostgreSQL (``db_backend``; a test's ``env`` is added to it)."""

    def run(
        scenario: Scenario,
        *,
        env: dict[str, str] | None = None,
        auth: Any = None,
        access: dict[str, Any] | None = None,
    ) -> None:
        merged = {**db_backend.env, **(env or {})}
        settings = make_settings(tmp_path, merged, access)
        asyncio.run(_run(scenario, assistant, settings, auth))
        if db_backend.name == "postgresql":  # no per-machine file the replicas would not share
            assert not (settings.state_dir / TeamsState.FILE).exists()

    return run


# ── a loopback OpenID metadata + JWKS stub, for authenticated tests ──────────────────────


@dataclass
class TokenIssuer:
    """Signs tokens like the Bot Framework does, with a key published by a loopback stub."""

    key: rsa.RSAPrivateKey
    kid: str
    metadata_url: str

    def token(self, *, key: rsa.RSAPrivateKey | None = None, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": "https://api.botframework.com", "aud": APP_ID, "nbf": now - 10, "exp": now + 600}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})


_issuer: list[TokenIssuer] = []


def token_issuer() -> TokenIssuer:
    """The process's one key stub (started on first use; a daemon thread)."""
    if not _issuer:
        _issuer.append(_start_openid_stub())
    return _issuer[0]


@pytest.fixture(scope="session")
def openid_stub() -> TokenIssuer:
    return token_issuer()


def _start_openid_stub() -> TokenIssuer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="test-key-1", use="sig", endorsements=["msteams"])
    state: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.endswith("/openidconfiguration"):
                body = {"issuer": "https://api.botframework.com", "jwks_uri": state["base"] + "/keys"}
            elif self.path == "/keys":
                body = {"keys": [jwk]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    # botframework-connector fetches keys with blocking ``requests`` inside the event loop,
    # so the stub must live on its own thread.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["base"] = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return TokenIssuer(
        key=key, kid="test-key-1", metadata_url=state["base"] + "/v1/.well-known/openidconfiguration"
    )
