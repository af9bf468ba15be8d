"""The app package's developer links resolve, and its command lists follow the manifest schema.

Schema facts (OfficeDev/microsoft-teams-app-schema, ``MicrosoftTeams.schema.json`` at the
"GA 1.25" commit): ``developer.websiteUrl``, ``privacyUrl`` and ``termsOfUseUrl`` are required
https URLs; ``bots[].commandLists`` holds at most 3 lists, and "a separate command list should
be used for each scope"; the scopes are ``team``, ``personal``, ``groupChat`` and ``copilot``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.teams.bot import mount
from bot.adapters.teams.manifest import TEMPLATE_DIR, build_manifest_zip
from bot.core.pipeline import Assistant
from bot.errors import ConfigError
from tests.adapters.teams.conftest import APP_ID, make_settings

LINKS = ("websiteUrl", "privacyUrl", "termsOfUseUrl")


def _manifest(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        return dict(json.loads(zf.read("manifest.json")))


def _fetch(assistant: Assistant, tmp_path: Path, paths: list[str]) -> list[tuple[int, str, str]]:
    async def run() -> list[tuple[int, str, str]]:
        app = web.Application()
        mount(app, assistant=assistant, settings=make_settings(tmp_path))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            out = []
            for path in paths:
                resp = await client.get(path)
                out.append((resp.status, resp.content_type, await resp.text()))
            return out

    return asyncio.run(run())


def test_default_developer_links_are_pages_the_server_serves(assistant: Assistant, tmp_path: Path) -> None:
    manifest = _manifest(build_manifest_zip(APP_ID, "bot.example.com", tmp_path / "x.zip"))
    urls = [manifest["developer"][k] for k in LINKS]
    assert all(u.startswith("https://bot.example.com/") for u in urls), urls
    pages = _fetch(assistant, tmp_path, [urlsplit(u).path for u in urls])
    for (status, content_type, text), url in zip(pages, urls, strict=True):
        assert (status, content_type) == (200, "text/html"), url
        assert "deptbot" in text and "<script" not in text


def test_privacy_page_says_what_is_kept(assistant: Assistant, tmp_path: Path) -> None:
    [(_, _, text)] = _fetch(assistant, tmp_path, ["/privacy"])
    assert "audit" in text and "e-mail" in text


def test_developer_links_can_point_at_the_organisations_own_pages(tmp_path: Path) -> None:
    out = build_manifest_zip(
        APP_ID,
        "bot.example.com",
        tmp_path / "x.zip",
        website_url="https://intranet.contoso.com/deptbot",
        privacy_url="https://contoso.com/privacy",
        terms_url="https://contoso.com/terms",
    )
    developer = _manifest(out)["developer"]
    assert [developer[k] for k in LINKS] == [
        "https://intranet.contoso.com/deptbot",
        "https://contoso.com/privacy",
        "https://contoso.com/terms",
    ]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"privacy_url": "http://contoso.com/privacy"}, "--privacy-url"),
        ({"terms_url": "contoso.com/terms"}, "--terms-url"),
        ({"website_url": "https://"}, "--website-url"),
        ({"privacy_url": "https://contoso.com/" + "p" * 2048}, "--privacy-url"),
    ],
)
def test_developer_links_must_be_https_urls(tmp_path: Path, kw: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_manifest_zip(APP_ID, "bot.example.com", tmp_path / "x.zip", **kw)
    assert err.value.field == field


def test_one_command_list_per_scope() -> None:
    manifest = json.loads((TEMPLATE_DIR / "manifest.json").read_text())
    [bot] = manifest["bots"]
    scopes = [cl["scopes"] for cl in bot["commandLists"]]
    assert scopes == [[s] for s in bot["scopes"]]
    assert len({json.dumps(cl["commands"]) for cl in bot["commandLists"]}) >= 1


@pytest.mark.parametrize(
    ("lists", "scopes"),
    [
        ([["personal", "team"], ["team"]], ["personal", "team"]),  # a scope in two lists
        ([["personal"], ["groupchat"]], ["personal", "groupchat"]),  # the pre-1.16 spelling
    ],
)
def test_command_list_scopes_are_checked(tmp_path: Path, lists: list[list[str]], scopes: list[str]) -> None:
    folder = tmp_path / "teams"
    shutil.copytree(TEMPLATE_DIR, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    commands = manifest["bots"][0]["commandLists"][0]["commands"]
    manifest["bots"][0]["scopes"] = scopes
    manifest["bots"][0]["commandLists"] = [{"scopes": s, "commands": commands} for s in lists]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError) as err:
        build_manifest_zip(APP_ID, "bot.example.com", tmp_path / "x.zip", source=folder)
    assert "scopes" in (err.value.field or "")
