"""Access entries — who may do something — as written in department files.

An entry is an e-mail, ``*@domain``, ``group:NAME`` or ``*``; the models validate them with
``check_entries`` and the cross-checks and the configuration watcher read them from raw data
with ``access_lists`` (which works on files that do not validate too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ENTRY_RE = re.compile(r"^(\*|group:[A-Za-z0-9_.-]+|\*@[A-Za-z0-9.-]+|[^@\s*]+@[A-Za-z0-9.-]+)$")


def normalize_entry(entry: str) -> str:
    """Canonical form of an access entry: lower case, trimmed."""
    return entry.strip().lower()


def check_entries(entries: list[str]) -> list[str]:
    bad = [e for e in entries if not ENTRY_RE.match(e.strip())]
    if bad:
        raise ValueError(f"{bad[0]!r} is not an access entry; use an e-mail, '*@domain', 'group:NAME' or '*'")
    return [normalize_entry(e) for e in entries]


CHANNEL_PREFIX = "channel:"
CHANNEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:@._;=-]{0,199}$")  # Slack ids; Teams "19:…@thread.tacv2"


def check_pilot_entry(entry: str) -> str:
    """One item of a department ``pilot`` list: an access entry, or ``channel:<id>`` for a
    Slack channel or Teams conversation whose askers are in the pilot (ids keep their case).
    Checked per item so a mistake is reported at its own line."""
    text = entry.strip()
    if text.lower().startswith(CHANNEL_PREFIX):
        ident = text[len(CHANNEL_PREFIX) :].strip()
        if not CHANNEL_ID_RE.match(ident):
            raise ValueError(f"{entry!r} is not a channel entry; write 'channel:' and the channel id")
        return CHANNEL_PREFIX + ident
    return check_entries([text])[0]


def access_lists(data: Mapping[str, Any]) -> dict[tuple[str | int, ...], list[str]]:
    """Every access list in a department file's raw data, by key path: ``("admins",)``,
    ``("ask",)``, ``("templates", T, "allowed")``, ``("channels", "audience", C)``.

    Entries are normalised; a value that is not a list reads as empty, non-strings are dropped.
    Used to check group references in files that do not validate, and by the configuration
    watcher to narrow access when a new file is invalid.
    """

    def entries(value: Any) -> list[str]:
        if not isinstance(value, list):
            return []
        return [normalize_entry(v) for v in value if isinstance(v, str)]

    found: dict[tuple[str | int, ...], list[str]] = {
        ("admins",): entries(data.get("admins")),
        ("ask",): entries(data.get("ask")),
    }
    if isinstance(data.get("pilot"), list):  # group references are checked; channels are not entries
        found[("pilot",)] = [e for e in entries(data.get("pilot")) if not e.startswith(CHANNEL_PREFIX)]
    templates = data.get("templates")
    if isinstance(templates, dict):
        for name, tpl in templates.items():
            if isinstance(tpl, dict):
                found[("templates", str(name), "allowed")] = entries(tpl.get("allowed", ["*"]))
    channels = data.get("channels")
    audience = channels.get("audience") if isinstance(channels, dict) else None
    if isinstance(audience, dict):
        for chan, readers in audience.items():
            found[("channels", "audience", str(chan))] = entries(readers)
    return found
