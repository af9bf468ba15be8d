"""SCIM 2.0 provisioning: Okta or Microsoft Entra push users and groups to ``/scim/v2/``,
and ``ScimGroupSource`` answers "who is in group X" from what they pushed.

The protocol is scim2-server's: ``ScimHandler``/``ScimService`` route the request, validate
bodies with scim2-models, evaluate filters, apply PUT and PATCH, page, and shape every
error as SCIM error JSON. This module only adapts aiohttp to it — the library ships WSGI
and ASGI adapters, and aiohttp is neither, so ``ScimApplication`` is the same ~40 lines
its adapters are (``BaseApplication`` subclass) — and checks the bearer token.

The routes exist only when ``DEPTBOT_SCIM_TOKEN`` is set; every request, discovery
included, must carry ``Authorization: Bearer <token>`` (compared in constant time, 401
with ``WWW-Authenticate`` otherwise), checked before the body is read. The SQLite store
is blocking, so each request is served on a worker thread.

Group refs in groups.yaml (``scim: "HR Team"``) are the group's ``displayName``, matched
exactly and case-sensitively: a rename in the identity provider, even of case, makes the
group "not found" (fail closed) instead of silently matching another group, and two
groups with the same name (Entra allows it) are refused as ambiguous.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from scim2_models import (
    Context,
    PayloadTooLargeException,
    Resource,
    ResponseParameters,
    UnauthorizedException,
)
from scim2_server.applications.base import BaseApplication
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService

from bot.directory.scim_schema import PROVIDER
from bot.directory.scim_store import ScimStore, open_scim_store
from bot.directory.source import SourceError
from bot.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

TOKEN_ENV = "DEPTBOT_SCIM_TOKEN"
MIN_TOKEN_LENGTH = 32  # `python -c "import secrets; print(secrets.token_urlsafe(32))"` gives 43
PREFIX = "/scim/v2"
SCIM_STORE = web.AppKey("deptbot.scim_store", ScimStore)


def token_from_env(env: Mapping[str, str]) -> str | None:
    """The SCIM bearer token, None when SCIM is off; ConfigError for a guessable one."""
    token = (env.get(TOKEN_ENV) or "").strip()
    if not token:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"is too short ({len(token)} characters; at least {MIN_TOKEN_LENGTH}); generate one with "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"`',
            file="environment",
            field=TOKEN_ENV,
        )
    return token


def mount_scim(
    app: web.Application, *, token: str, state_dir: Path | None = None, settings: Any = None
) -> None:
    """Serve ``/scim/v2/…`` on ``app`` from the SCIM store of ``settings`` (PostgreSQL with
    ``DEPTBOT_DATABASE_URL``), else ``scim.sqlite3`` in ``state_dir``; closed on cleanup."""
    if settings is not None:
        store = open_scim_store(settings)
    elif state_dir is not None:
        store = ScimStore.in_state_dir(state_dir)
    else:
        raise TypeError("mount_scim needs settings or a state_dir")
    scim = ScimApplication(store=store, token=token)
    app[SCIM_STORE] = store
    app.router.add_route("*", PREFIX, scim.handle)
    app.router.add_route("*", PREFIX + "/{tail:.*}", scim.handle)

    async def close(_app: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close)


class _Service(ScimService):
    def patch_response(
        self, base_url: str, resource: Resource[Any], response_parameters: ResponseParameters[Any]
    ) -> ScimResponse:
        """200 with the resource, always (RFC 7644 §3.5.2 allows it, and Okta reads it back);
        the library's default is 204 when no attributes were asked for."""
        return self.resource_response(
            self.publish(base_url, resource), Context.RESOURCE_REPLACEMENT_RESPONSE, response_parameters
        )


class ScimApplication(BaseApplication):
    """scim2-server's request handling, served by aiohttp; a bearer token on every request."""

    def __init__(self, *, store: ScimStore, token: str) -> None:
        super().__init__(PROVIDER, _Service(PROVIDER))
        self.handler = ScimHandler(self.service, store)
        self._token = token.encode()

    def needs_auth(self, request: ScimRequest) -> bool:
        return True  # discovery too: nothing about this server is public

    def check_auth(self, request: ScimRequest) -> None:
        scheme, _, presented = (request.header("Authorization") or "").partition(" ")
        valid = hmac.compare_digest(presented.strip().encode("utf-8", "replace"), self._token)
        if scheme.lower() != "bearer" or not valid:
            raise UnauthorizedException(detail="A valid bearer token is required")

    def serve(self, request: ScimRequest) -> ScimResponse:
        """Blocking (SQLite): called on a worker thread."""
        try:
            response = self.handler.handle(request)
        except Exception as exc:  # SCIMException → its status; anything else → 500, logged
            response = self.handle_exception(request, exc)
        return self.finalize_response(request, response)

    async def handle(self, request: web.Request) -> web.Response:
        scim_request = ScimRequest(
            method=request.method,
            base_url=f"{request.scheme}://{request.host}{PREFIX}",
            path=self.split_path("/" + request.match_info.get("tail", "")),
            query=dict(request.query),
            headers=list(request.headers.items()),
        )
        try:
            self.check_auth(scim_request)  # before the body is read
            scim_request.body = await request.read()
        except UnauthorizedException as exc:
            log.warning("SCIM request refused: missing or wrong bearer token (%s)", request.remote)
            return _response(self.finalize_response(scim_request, self.service.error_response(exc)))
        except web.HTTPRequestEntityTooLarge:
            error = PayloadTooLargeException(detail="The request body is too large")
            return _response(self.finalize_response(scim_request, self.service.error_response(error)))
        return _response(await asyncio.to_thread(self.serve, scim_request))


def _response(response: ScimResponse) -> web.Response:
    body = None if response.body is None else json.dumps(response.body).encode()
    return web.Response(status=int(response.status), body=body, headers=response.headers)


class ScimGroupSource:
    """Members of a SCIM-provisioned group, by ``displayName`` (exact, case-sensitive).

    Only users whose ``active`` is true count (Okta and Entra deactivate with
    ``active: false``; an absent ``active`` is not taken as yes). Nested groups are
    followed. An active member without a usable address makes the whole group unreadable
    (SourceError), as every source does, rather than a silently shorter list.
    """

    kind = "scim"

    def __init__(self, *, store: ScimStore) -> None:
        self._store = store

    def members(self, ref: str) -> frozenset[str]:
        try:
            ids = self._store.groups_named(ref)
            if not ids:
                raise SourceError("group not found")
            if len(ids) > 1:
                raise SourceError(f"{len(ids)} SCIM groups have this displayName")
            users = self._store.member_users(ids[0])
        except (sqlite3.Error, StoreError):
            raise SourceError("the SCIM database cannot be read") from None
        addresses: set[str] = set()
        for user in users:
            if not user.active:
                continue
            if user.address is None:
                raise SourceError(f"SCIM user {user.id} has no e-mail address")
            addresses.add(user.address)
        return frozenset(addresses)
