"""SCIM provisioning through the real server on 127.0.0.1, with the requests Okta and Entra send.

Shapes follow the providers' published behaviour: Okta looks a user up by
``userName eq`` before creating it, deactivates with a no-path ``replace`` of
``{"active": false}`` and manages groups with ``add``/``remove`` on ``members``; Entra
sends capitalised ops (``"Replace"``), string booleans (``"False"``) unless the
``aadOptscim062020`` flag is set, ``add`` on ``emails[type eq "work"].value`` for a user
without e-mails, ``remove`` of ``members`` with the ids in ``value``,
``excludedAttributes=members`` and ``id eq … and members eq …`` filters, and hard-deletes
only 30 days after a soft delete.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.adapters.http import build_app
from bot.core.pipeline import Assistant
from bot.directory.scim import SCIM_STORE, ScimGroupSource
from bot.directory.source import SourceError
from bot.errors import ConfigError
from bot.settings import Settings

TOKEN = "scim-test-token-0123456789-abcdefghij"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimServer:
    """build_app with DEPTBOT_SCIM_TOKEN set, served on 127.0.0.1; ``call`` speaks JSON."""

    def __init__(self, assistant: Assistant, state_dir: Path, *, env: dict[str, str] | None = None) -> None:
        self.assistant = assistant
        self.state_dir = state_dir
        self.env = {"DEPTBOT_SCIM_TOKEN": TOKEN} if env is None else env
        self.url = ""
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ScimServer:
        settings = Settings(departments_dir=Path("."), state_dir=self.state_dir, env=self.env)
        self.app = build_app(assistant=self.assistant, settings=settings)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def source(self) -> ScimGroupSource:
        assert self.app is not None
        return ScimGroupSource(store=self.app[SCIM_STORE])

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        assert self.session is not None
        h = {"Content-Type": "application/scim+json"}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        payload = data if data is not None else None if body is None else json.dumps(body).encode()
        url = self.url + "/scim/v2" + path
        async with self.session.request(method, url, data=payload, headers=h, params=params) as resp:
            text = await resp.text()
            scim = resp.content_type == "application/scim+json"
            return resp.status, json.loads(text) if scim and text else text or None, dict(resp.headers)


Scenario = Callable[[ScimServer], Awaitable[None]]


def run(server: ScimServer, scenario: Scenario) -> None:
    async def main() -> None:
        async with server:
            await scenario(server)

    asyncio.run(main())


@pytest.fixture
def server(assistant: Assistant, tmp_path: Path) -> ScimServer:
    return ScimServer(assistant, tmp_path / "state")


def user_body(user_name: str, *, email: str | None = None, external_id: str = "", active: Any = True) -> dict:
    body: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": user_name.split("@")[0].title(), "familyName": "Example"},
        "active": active,
    }
    if email:
        body["emails"] = [{"primary": True, "value": email, "type": "work"}]
    if external_id:
        body["externalId"] = external_id
    return body


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


# ── Okta ────────────────────────────────────────────────────────────────────────────


def test_okta_lifecycle_lookup_create_group_push_deactivate(server: ScimServer) -> None:
    async def scenario(s: ScimServer) -> None:
        # Okta's connection test, then "does this user exist?" before creating it
        status, listing, _ = await s.call("GET", "/Users", params={"startIndex": "1", "count": "2"})
        assert status == 200 and listing["totalResults"] == 0 and listing["Resources"] == []
        status, found, _ = await s.call("GET", "/Users", params={"filter": 'userName eq "alice@example.com"'})
        assert status == 200 and found["totalResults"] == 0
        status, alice, headers = await s.call(
            "POST", "/Users", user_body("alice@example.com", email="alice@example.com", external_id="00u1")
        )
        assert status == 201 and alice["active"] is True and alice["id"]
        assert headers["Content-Type"].startswith("application/scim+json")
        assert alice["meta"]["location"] == f"{s.url}/scim/v2/Users/{alice['id']}"
        _, bob, _ = await s.call("POST", "/Users", user_body("bob@example.com", email="Bob@Example.com"))

        # push group with its members, then membership changes as PATCH add/remove
        status, group, _ = await s.call(
            "POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "HR Team", "members": []}
        )
        assert status == 201
        gid = group["id"]
        members = [{"value": alice["id"], "display": "alice@example.com"}, {"value": bob["id"]}]
        status, group, _ = await s.call(
            "PATCH", f"/Groups/{gid}", patch({"op": "add", "path": "members", "value": members})
        )
        assert status == 200 and {m["value"] for m in group["members"]} == {alice["id"], bob["id"]}
        assert s.source.members("HR Team") == {"alice@example.com", "bob@example.com"}

        status, _, _ = await s.call(
            "PATCH", f"/Groups/{gid}", patch({"op": "remove", "path": f'members[value eq "{bob["id"]}"]'})
        )
        assert status == 200
        assert s.source.members("HR Team") == {"alice@example.com"}

        # Okta renames with a no-path replace carrying id and displayName
        status, group, _ = await s.call(
            "PATCH", f"/Groups/{gid}", patch({"op": "replace", "value": {"id": gid, "displayName": "People"}})
        )
        assert status == 200 and group["displayName"] == "People"
        with pytest.raises(SourceError, match="group not found"):
            s.source.members("HR Team")

        # deactivation: replace without a path; the user stays, but grants nothing
        status, alice, _ = await s.call(
            "PATCH", f"/Users/{alice['id']}", patch({"op": "replace", "value": {"active": False}})
        )
        assert status == 200 and alice["active"] is False
        assert s.source.members("People") == frozenset()
        status, again, _ = await s.call("GET", "/Users", params={"filter": 'userName eq "ALICE@example.com"'})
        assert again["totalResults"] == 1 and again["Resources"][0]["active"] is False

        # reactivation, and a profile update by PUT (Okta's default for user updates)
        replacement = user_body("alice@example.com", email="alice.new@example.com", external_id="00u1")
        status, alice, _ = await s.call("PUT", f"/Users/{alice['id']}", replacement)
        assert status == 200 and alice["active"] is True
        assert s.source.members("People") == {"alice.new@example.com"}

    run(server, scenario)


def test_okta_duplicate_user_name_is_a_409_conflict(server: ScimServer) -> None:
    async def scenario(s: ScimServer) -> None:
        await s.call("POST", "/Users", user_body("carol@example.com"))
        status, error, _ = await s.call("POST", "/Users", user_body("Carol@Example.com"))
        assert status == 409 and error["schemas"] == [ERROR] and error["scimType"] == "uniqueness"

    run(server, scenario)


# ── Entra ───────────────────────────────────────────────────────────────────────────


def test_entra_lifecycle_quirks_soft_then_hard_delete(server: ScimServer) -> None:
    async def scenario(s: ScimServer) -> None:
        status, found, _ = await s.call("GET", "/Users", params={"filter": 'externalId eq "e-dave"'})
        assert status == 200 and found["totalResults"] == 0
        dave_body = {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "externalId": "e-dave",
            "userName": "dave@contoso.example",  # userPrincipalName
            "active": True,
            "displayName": "Dave",
            "emails": [{"type": "work", "value": "Dave.Mail@Contoso.example"}],  # mail; no primary flag
            "name": {"formatted": "Dave D", "familyName": "D", "givenName": "Dave"},
            ENTERPRISE: {"department": "HR", "employeeNumber": "42", "manager": {"value": "m-1"}},
        }
        status, dave, _ = await s.call("POST", "/Users", dave_body)
        assert status == 201 and dave[ENTERPRISE]["department"] == "HR"
        _, erin, _ = await s.call("POST", "/Users", user_body("erin@contoso.example", external_id="e-erin"))

        status, group, _ = await s.call(
            "POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Finance", "externalId": "g-fin"}
        )
        gid = group["id"]
        status, group, _ = await s.call(
            "PATCH",
            f"/Groups/{gid}",
            patch({"op": "Add", "path": "members", "value": [{"value": dave["id"]}, {"value": erin["id"]}]}),
        )
        assert status == 200
        status, slim, _ = await s.call("GET", f"/Groups/{gid}", params={"excludedAttributes": "members"})
        assert status == 200 and "members" not in slim and slim["displayName"] == "Finance"
        status, hit, _ = await s.call(
            "GET",
            "/Groups",
            params={"filter": f'id eq "{gid}" and members eq "{dave["id"]}"', "attributes": "id"},
        )
        assert hit["totalResults"] == 1 and hit["Resources"] == [{"schemas": [GROUP_SCHEMA], "id": gid}]
        status, by_name, _ = await s.call("GET", "/Groups", params={"filter": 'displayName eq "finance"'})
        assert by_name["totalResults"] == 1  # displayName is caseExact=false in SCIM filters
        assert s.source.members("Finance") == {"dave.mail@contoso.example", "erin@contoso.example"}
        with pytest.raises(SourceError, match="group not found"):
            s.source.members("finance")  # groups.yaml refs are exact

        # soft delete, the pre-2020 Entra way: capitalised op and a string boolean
        status, dave, _ = await s.call(
            "PATCH", f"/Users/{dave['id']}", patch({"op": "Replace", "path": "active", "value": "False"})
        )
        assert status == 200 and dave["active"] is False
        assert s.source.members("Finance") == {"erin@contoso.example"}
        # attribute updates through value filters
        status, erin, _ = await s.call(
            "PATCH",
            f"/Users/{erin['id']}",
            patch({"op": "Add", "path": 'emails[type eq "work"].value', "value": "erin.w@contoso.example"}),
        )
        assert status == 200 and erin["emails"][0]["value"] == "erin.w@contoso.example"
        assert s.source.members("Finance") == {"erin.w@contoso.example"}

        # hard delete 30 days later: the user leaves the group too
        status, body, _ = await s.call("DELETE", f"/Users/{dave['id']}")
        assert status == 204 and body is None
        status, group, _ = await s.call("GET", f"/Groups/{gid}")
        assert [m["value"] for m in group["members"]] == [erin["id"]]
        status, error, _ = await s.call("GET", f"/Users/{dave['id']}")
        assert status == 404 and error["schemas"] == [ERROR] and error["status"] == "404"

        # Entra removes members with the path "members" and the ids in "value"
        status, group, _ = await s.call(
            "PATCH",
            f"/Groups/{gid}",
            patch({"op": "Remove", "path": "members", "value": [{"value": erin["id"]}]}),
        )
        assert status == 200 and "members" not in group
        assert s.source.members("Finance") == frozenset()
        assert (await s.call("DELETE", f"/Groups/{gid}"))[0] == 204
        with pytest.raises(SourceError, match="group not found"):
            s.source.members("Finance")

    run(server, scenario)


def test_entra_flag_in_the_tenant_url_is_ignored_and_paging_works(server: ScimServer) -> None:
    async def scenario(s: ScimServer) -> None:
        for n in range(5):
            await s.call("POST", "/Users", user_body(f"user{n}@example.com"))
        pages = []
        for start in (1, 3, 5):
            status, page, _ = await s.call(
                "GET", "/Users", params={"startIndex": str(start), "count": "2", "aadOptscim062020": ""}
            )
            assert status == 200 and page["totalResults"] == 5 and page["startIndex"] == start
            pages += [r["userName"] for r in page["Resources"]]
        assert pages == [f"user{n}@example.com" for n in range(5)]

    run(server, scenario)


# ── refusals ────────────────────────────────────────────────────────────────────────


def test_every_request_needs_the_bearer_token(server: ScimServer) -> None:
    async def scenario(s: ScimServer) -> None:
        for path in ("/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/Users", "/Groups/x", "/nope"):
            for token in (None, "wrong", TOKEN[:-1], TOKEN + "x"):
                status, error, headers = await s.call("GET", path, token=token)
                assert status == 401, (path, token)
                assert headers["WWW-Authenticate"].startswith("Bearer")
                assert error["schemas"] == [ERROR] and error["status"] == "401"
        status, _, _ = await s.call(
            "POST", "/Users", user_body("x@example.com"), headers={"Authorization": f"Basic {TOKEN}"}
        )
        assert status == 401
        status, listing, _ = await s.call(
            "GET", "/Users", token=None, headers={"Authorization": f"bearer {TOKEN}"}
        )
        assert (
            status == 200 and listing["totalResults"] == 0
        )  # the scheme is case-insensitive; nothing written

    run(server, scenario)


def test_errors_are_scim_error_json(server: ScimServer) -> None:
    async def scenario(s: ScimServer) -> None:
        cases = [
            ("GET", "/Users", None, {"filter": "userName eq"}, 400, "invalidFilter"),
            ("GET", "/Users", None, {"sortBy": "userName"}, 501, None),  # not announced
            ("POST", "/Bulk", {"schemas": [], "Operations": []}, None, 501, None),
            ("POST", "/Users", {"schemas": [USER_SCHEMA]}, None, 400, None),  # userName required
            (
                "POST",
                "/Groups",
                {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [{"value": "ghost"}]},
                None,
                400,
                "invalidValue",
            ),
            (
                "PATCH",
                "/Users/missing",
                patch({"op": "replace", "value": {"active": False}}),
                None,
                404,
                None,
            ),
            ("DELETE", "/ServiceProviderConfig", None, None, 405, None),
        ]
        for method, path, body, params, want, scim_type in cases:
            status, error, _ = await s.call(method, path, body, params=params)
            assert status == want, (method, path, error)
            assert error["schemas"] == [ERROR] and error["status"] == str(want)
            if scim_type:
                assert error["scimType"] == scim_type
        status, error, _ = await s.call("POST", "/Users", data=b"{not json")
        assert status == 400 and error["schemas"] == [ERROR]
        status, error, _ = await s.call("POST", "/Users", data=b"{" + b" " * (1024 * 1024 + 10) + b"}")
        assert status == 413 and error["schemas"] == [ERROR]

    run(server, scenario)


def test_discovery_announces_only_what_the_server_does(server: ScimServer) -> None:
    async def scenario(s: ScimServer) -> None:
        status, config, _ = await s.call("GET", "/ServiceProviderConfig")
        assert status == 200
        assert config["patch"]["supported"] and config["filter"]["supported"]
        assert not any(config[f]["supported"] for f in ("bulk", "sort", "etag", "changePassword"))
        assert [a["type"] for a in config["authenticationSchemes"]] == ["oauthbearertoken"]
        _, types, _ = await s.call("GET", "/ResourceTypes")
        assert {t["id"] for t in types["Resources"]} == {"User", "Group"}
        _, schemas, _ = await s.call("GET", "/Schemas")
        assert ENTERPRISE in {x["id"] for x in schemas["Resources"]}

    run(server, scenario)


def test_passwords_are_never_stored(server: ScimServer, tmp_path: Path) -> None:
    async def scenario(s: ScimServer) -> None:
        status, user, _ = await s.call(
            "POST", "/Users", {**user_body("pw@example.com"), "password": "Hunter2-secret"}
        )
        assert status == 201 and "password" not in user

    run(server, scenario)
    assert b"Hunter2-secret" not in b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir())


# ── mounting ────────────────────────────────────────────────────────────────────────


def test_without_the_token_the_routes_do_not_exist(assistant: Assistant, tmp_path: Path) -> None:
    async def scenario(s: ScimServer) -> None:
        status, _, _ = await s.call("GET", "/ServiceProviderConfig")
        assert status == 404
        assert s.app is not None and SCIM_STORE not in s.app

    run(ScimServer(assistant, tmp_path / "state", env={}), scenario)
    assert not (tmp_path / "state" / "scim.sqlite3").exists()


def test_a_short_token_is_a_startup_config_error(assistant: Assistant, tmp_path: Path) -> None:
    settings = Settings(departments_dir=Path("."), state_dir=tmp_path, env={"DEPTBOT_SCIM_TOKEN": "secret"})
    with pytest.raises(ConfigError, match="DEPTBOT_SCIM_TOKEN"):
        build_app(assistant=assistant, settings=settings)


def test_the_database_follows_the_umask(assistant: Assistant, tmp_path: Path) -> None:
    import os

    old = os.umask(0o077)
    try:
        run(ScimServer(assistant, tmp_path / "state"), lambda s: asyncio.sleep(0))
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "state" / "scim.sqlite3").stat().st_mode)
    assert mode & 0o077 == 0
