"""Build the Teams app package: ``manifest.json`` + two icons, validated, in a flat zip.

Teams' upload rejects a package with a cryptic message; we check what breaks most often
first (ids, icon sizes and colours, text lengths, command limits, leftover placeholders)
and name the field. Limits follow the published app manifest schema
(OfficeDev/microsoft-teams-app-schema, ``MicrosoftTeams.schema.json`` v1.25): the developer
links are required https URLs (at most 2048 characters); at most 3 command lists, "a separate
command list should be used for each scope", scopes ``team``, ``personal``, ``groupChat``,
``copilot`` (the lower-case ``groupchat`` was dropped in 1.16). The command limits (10
commands, titles of 32 and descriptions of 128 characters) are the bot-menu documentation's,
stricter than the schema's.

The developer links default to the pages ``deptbot serve`` itself serves on the bot's host
(``pages``: ``/about``, ``/privacy``, ``/terms``); ``website_url``, ``privacy_url`` and
``terms_url`` point them at the organisation's own pages instead.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from bot.adapters.teams.auth import is_guid
from bot.errors import ConfigError
from bot.resources import manifest_dir

TEMPLATE_DIR = manifest_dir("teams")
SCHEMA_URL = "https://developer.microsoft.com/json-schemas/teams/v{v}/MicrosoftTeams.schema.json"
ICON_SIZES = {"color": (192, 192), "outline": (32, 32)}
BOT_SCOPES = {"personal", "team", "groupChat", "copilot"}
URL_CHARS = 2048
LINKS = {"website_url": "websiteUrl", "privacy_url": "privacyUrl", "terms_url": "termsOfUseUrl"}
MAX_COMMAND_LISTS, MAX_COMMANDS, MAX_TITLE, MAX_DESCRIPTION = 3, 10, 32, 128
TEXT_LIMITS = {
    ("name", "short"): 30,
    ("name", "full"): 100,
    ("description", "short"): 80,
    ("description", "full"): 4000,
    ("developer", "name"): 32,
}
HOST_RE = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(:\d{1,5})?$")
SEMVER_RE = re.compile(r"^\d+\.\d+\.\d+$")


def normalize_domain(domain: str) -> str:
    """``https://bot.example.com/`` → ``bot.example.com``; ConfigError if it is not a host name."""
    host = domain.strip().lower()
    host = re.sub(r"^https?://", "", host).rstrip("/")
    if not HOST_RE.match(host) or host.startswith("*."):
        raise ConfigError(
            f"{domain!r} is not a public host name like bot.example.com (the host in front of deptbot serve)",
            field="--domain",
        )
    return host


def build_manifest_zip(
    app_id: str,
    domain: str,
    out_path: Path | str,
    *,
    source: Path | None = None,
    version: str | None = None,
    website_url: str | None = None,
    privacy_url: str | None = None,
    terms_url: str | None = None,
) -> Path:
    """Write the validated Teams app package for bot ``app_id`` served at ``domain``; returns its path.

    ``website_url`` / ``privacy_url`` / ``terms_url`` replace the template's developer links
    (ConfigError naming ``--website-url`` / ``--privacy-url`` / ``--terms-url`` if not https).
    """
    links = {"website_url": website_url, "privacy_url": privacy_url, "terms_url": terms_url}
    for name, url in links.items():
        if url is not None and not _https_url(url):
            raise ConfigError(
                f"must be an https:// URL of at most {URL_CHARS} characters",
                field="--" + name.replace("_", "-"),
            )
    if not is_guid(app_id.strip()):
        raise ConfigError("must be the bot's Microsoft app (client) id, a GUID", field="--app-id")
    app_id, host = app_id.strip().lower(), normalize_domain(domain)
    folder = source or TEMPLATE_DIR
    template = folder / "manifest.json"
    if not template.is_file():
        raise ConfigError("Teams manifest template not found", file=template)
    text = (
        template.read_text(encoding="utf-8")
        .replace("{{MICROSOFT_APP_ID}}", app_id)
        .replace("{{DOMAIN}}", host)
    )
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"is not valid JSON ({exc})", file=template) from None
    if version is not None:
        manifest["version"] = version
    for name, url in links.items():
        if url is not None:
            manifest.setdefault("developer", {})[LINKS[name]] = url.strip()
    icons = {kind: _read_icon(folder, manifest, kind) for kind in ICON_SIZES}
    validate_manifest(manifest, icons, domain=host)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for kind, data in icons.items():
            zf.writestr(manifest["icons"][kind], data)
    return out


def _read_icon(folder: Path, manifest: dict[str, Any], kind: str) -> bytes:
    name = (manifest.get("icons") or {}).get(kind)
    if not isinstance(name, str) or "/" in name or "\\" in name or not name.endswith(".png"):
        raise ConfigError("must name a .png file next to manifest.json", field=f"icons.{kind}")
    path = folder / name
    if not path.is_file():
        raise ConfigError("icon file not found", file=path, field=f"icons.{kind}")
    return path.read_bytes()


def validate_manifest(manifest: dict[str, Any], icons: dict[str, bytes], *, domain: str) -> None:
    """Raise ConfigError naming the first field Teams would reject."""
    version = str(manifest.get("manifestVersion", ""))
    if not re.fullmatch(r"1\.\d+", version):
        raise ConfigError(f"{version!r} is not a released (GA) schema version", field="manifestVersion")
    if manifest.get("$schema") not in (
        SCHEMA_URL.format(v=version),
        SCHEMA_URL.format(v=version).replace("developer.microsoft.com/", "developer.microsoft.com/en-us/"),
    ):
        raise ConfigError(f"must be {SCHEMA_URL.format(v=version)}", field="$schema")
    if not SEMVER_RE.match(str(manifest.get("version", ""))):
        raise ConfigError("must be MAJOR.MINOR.PATCH", field="version")
    if not is_guid(str(manifest.get("id", ""))):
        raise ConfigError("must be a GUID", field="id")
    for (section, key), limit in TEXT_LIMITS.items():
        value = (manifest.get(section) or {}).get(key)
        required = key == "short" or section in ("developer", "description")
        if value is None and not required:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise ConfigError(f"must be 1–{limit} characters", field=f"{section}.{key}")
    for key in LINKS.values():
        if not _https_url(str((manifest.get("developer") or {}).get(key, ""))):
            raise ConfigError(
                f"must be an https:// URL of at most {URL_CHARS} characters", field=f"developer.{key}"
            )
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", str(manifest.get("accentColor", "#000000"))):
        raise ConfigError("must be a colour like #2B5797", field="accentColor")
    _validate_bots(manifest)
    domains = manifest.get("validDomains") or []
    if domain not in domains or any(d in ("*", "") for d in domains):
        raise ConfigError(f"must list {domain} (and no bare '*')", field="validDomains")
    for kind, (w, h) in ICON_SIZES.items():
        _validate_icon(icons[kind], kind, w, h)
    leftover = re.search(r"\{\{[A-Z_]+\}\}", json.dumps(manifest))
    if leftover:
        raise ConfigError(f"placeholder {leftover.group(0)} was not filled in", field="manifest.json")


def _validate_bots(manifest: dict[str, Any]) -> None:
    bots = manifest.get("bots")
    if not isinstance(bots, list) or len(bots) != 1:
        raise ConfigError("must declare exactly one bot", field="bots")
    bot = bots[0]
    if not is_guid(str(bot.get("botId", ""))):
        raise ConfigError("must be the bot's Microsoft app id (a GUID)", field="bots[0].botId")
    scopes = bot.get("scopes") or []
    if not scopes or not set(scopes) <= BOT_SCOPES:
        raise ConfigError(f"must be some of {sorted(BOT_SCOPES)}", field="bots[0].scopes")
    lists = bot.get("commandLists") or []
    if len(lists) > MAX_COMMAND_LISTS:
        raise ConfigError(f"at most {MAX_COMMAND_LISTS} command lists", field="bots[0].commandLists")
    listed: set[str] = set()
    for i, cl in enumerate(lists):
        where = f"bots[0].commandLists[{i}]"
        if not set(cl.get("scopes") or []) <= set(scopes) or not cl.get("scopes"):
            raise ConfigError("scopes must be among the bot's scopes", field=f"{where}.scopes")
        if listed & set(cl["scopes"]):
            raise ConfigError(
                "each scope may have one command list only (the schema wants one list per scope)",
                field=f"{where}.scopes",
            )
        listed |= set(cl["scopes"])
        commands = cl.get("commands") or []
        if not 1 <= len(commands) <= MAX_COMMANDS:
            raise ConfigError(f"must list 1–{MAX_COMMANDS} commands", field=f"{where}.commands")
        titles = [c.get("title", "") for c in commands]
        if len(set(titles)) != len(titles):
            raise ConfigError("command titles must be unique", field=f"{where}.commands")
        for j, c in enumerate(commands):
            if not 1 <= len(str(c.get("title", ""))) <= MAX_TITLE:
                raise ConfigError(f"must be 1–{MAX_TITLE} characters", field=f"{where}.commands[{j}].title")
            if not 1 <= len(str(c.get("description", ""))) <= MAX_DESCRIPTION:
                raise ConfigError(
                    f"must be 1–{MAX_DESCRIPTION} characters", field=f"{where}.commands[{j}].description"
                )


def _https_url(url: str) -> bool:
    parts = urlsplit(url.strip())
    return parts.scheme == "https" and bool(parts.hostname) and len(url.strip()) <= URL_CHARS


def _validate_icon(data: bytes, kind: str, width: int, height: int) -> None:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError):
        raise ConfigError("is not a readable PNG", field=f"icons.{kind}") from None
    if img.format != "PNG":
        raise ConfigError(f"must be a PNG (found {img.format})", field=f"icons.{kind}")
    if img.size != (width, height):
        raise ConfigError(
            f"must be {width}×{height} pixels (found {img.width}×{img.height})", field=f"icons.{kind}"
        )
    if kind == "outline":
        rgba = img.convert("RGBA")
        pixels = [rgba.getpixel((x, y)) for y in range(height) for x in range(width)]
        visible = [p for p in pixels if isinstance(p, tuple) and p[3] > 0]
        if not visible or any(p[:3] != (255, 255, 255) for p in visible):
            raise ConfigError("must be white on a transparent background", field="icons.outline")
        if len(visible) == len(pixels) and all(isinstance(p, tuple) and p[3] == 255 for p in pixels):
            raise ConfigError("must have a transparent background", field="icons.outline")
