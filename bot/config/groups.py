"""``groups.yaml``: group names mapped to e-mail lists, or to one directory source
(``slack: "@handle"``, ``entra: OBJECT-ID`` or ``scim: NAME``) that ``bot.directory.sync``
fills in later — as loaded, a sourced group is empty (fail closed)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.problems import read_yaml
from bot.errors import ConfigError

SOURCE_KINDS: tuple[str, ...] = ("slack", "entra", "scim")


@dataclass(frozen=True)
class GroupRef:
    """Where a sourced group's members come from: ``kind`` (the ``groups.yaml`` key:
    slack, entra or scim) and ``ref`` as written there (an Entra object id lower-cased).
    ``line`` is only for messages and does not take part in comparisons."""

    kind: str
    ref: str
    line: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.ref}"


EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_SLACK_REF = re.compile(r"^(@[^\s@]+|S[A-Z0-9]{2,})$")
_ENTRA_REF = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_GROUP_VALUE = (
    'must be a list of e-mail addresses or one source: slack: "@handle", '
    "entra: GROUP-OBJECT-ID or scim: GROUP-NAME"
)


class BadGroupRef(ValueError):
    """A group value that is a mapping but not exactly one valid source; ``key`` is the
    source key the problem is about (None: the mapping as a whole)."""

    def __init__(self, problem: str, key: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.key = problem, key


def parse_group_ref(value: Mapping[Any, Any]) -> GroupRef:
    """``{slack: "@hr-team"}`` → GroupRef("slack", "@hr-team"); anything but exactly one of
    slack / entra / scim with a well-formed reference raises BadGroupRef."""
    keys = [str(k) for k in value]
    unknown = [k for k in keys if k not in SOURCE_KINDS]
    if unknown:
        near = difflib.get_close_matches(unknown[0].lower(), SOURCE_KINDS, n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise BadGroupRef(f"unknown source {unknown[0]!r} (use slack, entra or scim){hint}", unknown[0])
    if len(keys) != 1:
        named = " and ".join(keys) if keys else "no source"
        raise BadGroupRef(f"names {named}; a group comes from exactly one source: slack, entra or scim")
    kind = keys[0]
    raw = next(iter(value.values()))
    if not isinstance(raw, str) or not raw.strip() or not raw.strip().isprintable():
        raise BadGroupRef("must be a non-empty line of text naming the group", kind)
    ref = raw.strip()
    if kind == "slack" and not _SLACK_REF.match(ref):
        raise BadGroupRef(
            f'{ref!r} is not a Slack user group: write its handle with the @ ("@hr-team") '
            'or its id ("S0123ABC")',
            kind,
        )
    if kind == "entra":
        if not _ENTRA_REF.match(ref):
            raise BadGroupRef(
                f"{ref!r} is not an Entra group object id (a GUID such as "
                "9f1c2a4e-0b1d-4c3e-8f5a-1b2c3d4e5f60; Entra admin center › Groups › Object id)",
                kind,
            )
        ref = ref.lower()
    return GroupRef(kind, ref)


def read_groups(
    path: Path,
) -> tuple[dict[str, frozenset[str]] | None, dict[str, GroupRef], list[ConfigError]]:
    """Groups (names lower-cased; sourced groups empty), the sourced groups, and every
    problem; groups None when the file is unreadable as a mapping, so references to groups
    cannot be checked."""
    if not path.exists():
        return {}, {}, []
    try:
        data, lines = read_yaml(path)
    except ConfigError as exc:
        return None, {}, [exc]
    if data is None:
        return {}, {}, []
    if not isinstance(data, dict):
        return (
            None,
            {},
            [ConfigError("must map group names to lists of e-mails or sources", file=path, line=1)],
        )
    groups: dict[str, frozenset[str]] = {}
    sources: dict[str, GroupRef] = {}
    first: dict[str, tuple[str, int | None]] = {}
    problems: list[ConfigError] = []
    for raw_name, members in data.items():
        name = str(raw_name)
        line = lines.get((name,))
        if name.lower() in first:
            other, at = first[name.lower()]
            problems.append(
                ConfigError(
                    f"group {name!r} is the same group as {other!r} on line {at} (group names ignore case)",
                    file=path,
                    line=line,
                    field=name,
                )
            )
            continue
        first[name.lower()] = (name, line)
        groups[name.lower()] = frozenset()  # sourced, or not valid: empty
        if isinstance(members, dict):
            try:
                ref = parse_group_ref(members)
            except BadGroupRef as bad:
                where = (name, bad.key) if bad.key is not None else (name,)
                problems.append(
                    ConfigError(bad.problem, file=path, line=lines.get(where, line), field=".".join(where))
                )
                continue
            sources[name.lower()] = GroupRef(ref.kind, ref.ref, line=lines.get((name, ref.kind), line))
            continue
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            problems.append(ConfigError(_GROUP_VALUE, file=path, line=line, field=name))
            continue
        for i, m in enumerate(members):
            if not EMAIL_RE.match(m):
                problems.append(
                    ConfigError(
                        f"{m!r} is not an e-mail address",
                        file=path,
                        line=lines.get((name, i), line),
                        field=f"{name}[{i}]",
                    )
                )
        groups[name.lower()] = frozenset(m.strip().lower() for m in members if EMAIL_RE.match(m))
    return groups, sources, problems


def unavailable_sources(
    sources: Mapping[str, GroupRef], missing: Mapping[str, str], groups_file: Path
) -> list[ConfigError]:
    """One problem per sourced group whose kind cannot be used here; ``missing`` maps a
    kind to what is missing ("set SLACK_BOT_TOKEN …"), as worked out by ``bot.wiring``."""
    return [
        ConfigError(
            f"{ref.kind} groups cannot be read: {missing[ref.kind]}",
            file=groups_file,
            line=ref.line,
            field=f"{name}.{ref.kind}",
        )
        for name, ref in sources.items()
        if ref.kind in missing
    ]
