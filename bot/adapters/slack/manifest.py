"""``deptbot manifest slack --url https://HOST``: the app manifest with the URL filled in.

The YAML files in ``manifest/slack/`` are the source of truth (commented, reviewable; a wheel
carries them as ``bot/_manifest/slack``, see ``bot/resources.py``);
this module only substitutes the placeholder host and checks the URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bot.errors import ConfigError, UsageError
from bot.resources import manifest_dir

MANIFEST_DIR = manifest_dir("slack")
PLACEHOLDER = "https://YOUR-HOST"


def manifest_path(*, socket_mode: bool = False) -> Path:
    return MANIFEST_DIR / ("manifest.socket-mode.yaml" if socket_mode else "manifest.yaml")


def render_manifest(url: str | None = None, *, socket_mode: bool = False) -> str:
    """The HTTP manifest for ``url`` (https, no path needed), or the Socket Mode one."""
    path = manifest_path(socket_mode=socket_mode)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise ConfigError("Slack manifest file is missing", file=path) from None
    if socket_mode:
        return text
    if not url:
        raise UsageError("Give the public base URL: deptbot manifest slack --url https://HOST")
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"--url must be an https:// URL Slack can reach (got {url!r}).")
    base = f"https://{parts.netloc}{parts.path.rstrip('/')}"
    return text.replace(PLACEHOLDER, base)
