"""Load and validate ``departments/*.yaml`` and ``groups.yaml`` into frozen models.

Department files are data written by people and decide who may read what, so:

* every file is read by ``bot.yamlstrict`` (no aliases, merge keys or duplicate keys — a
  second ``ask:`` line is an error, not a silent replacement; group names that collide
  after lower-casing are an error too);
* every error names the file, the line, the field and what is wrong, and
  ``check_company`` collects all of them in one pass (``deptbot check`` prints them);
* nothing is half-loaded: a Company exists only when there is no problem at all;
* a knowledge folder must resolve inside the configuration tree (the parent of the
  departments folder) or an operator's ``knowledge.allowed_roots``, and no two
  departments may share documents (the same folder, or one inside the other).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot import yamlstrict
from bot.core.types import Classification
from bot.errors import ConfigError
from bot.settings import DEFAULTS_FILE, Settings
from bot.yamlstrict import Lines

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
ENTRY_RE = re.compile(r"^(\*|group:[A-Za-z0-9_.-]+|\*@[A-Za-z0-9.-]+|[^@\s*]+@[A-Za-z0-9.-]+)$")
ACCESS_FILE = "_access.yaml"


def normalize_entry(entry: str) -> str:
    """Canonical form of an access entry: lower case, trimmed."""
    return entry.strip().lower()


def check_entries(entries: list[str]) -> list[str]:
    bad = [e for e in entries if not ENTRY_RE.match(e.strip())]
    if bad:
        raise ValueError(f"{bad[0]!r} is not an access entry; use an e-mail, '*@domain', 'group:NAME' or '*'")
    return [normalize_entry(e) for e in entries]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Template(_Strict):
    """A named task; ``prompt`` must contain ``{input}``."""

    description: str
    prompt: str
    allowed: list[str] = Field(default_factory=lambda: ["*"])
    tier: Literal["small", "large"] | None = None

    @field_validator("allowed")
    @classmethod
    def _entries(cls, v: list[str]) -> list[str]:
        return check_entries(v)

    @field_validator("prompt")
    @classmethod
    def _has_input(cls, v: str) -> str:
        if "{input}" not in v:
            raise ValueError("must contain the placeholder {input}")
        return v

    def fill(self, text: str) -> str:
        return self.prompt.replace("{input}", text)


class Channels(_Strict):
    slack: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    # Who can read a channel, when narrower or wider than the department's ask list.
    audience: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("audience")
    @classmethod
    def _audience(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k: check_entries(entries) for k, entries in v.items()}


class Department(_Strict):
    """One department, as validated from ``departments/<name>.yaml``."""

    name: str
    title: str
    knowledge: Path
    classification: Classification = Classification.INTERNAL
    admins: list[str] = Field(default_factory=list)
    ask: list[str] = Field(default_factory=list)
    templates: dict[str, Template] = Field(default_factory=dict)
    channels: Channels = Field(default_factory=Channels)
    dont_know_below: float = Field(default=0.35, ge=0.0, le=1.0)
    # Fields used by providers (issue 3) and adapters; optional for the core.
    route: Literal["auto", "cloud", "private"] = "auto"
    tier: Literal["small", "large"] | None = None
    sensitive_keywords: list[str] = Field(default_factory=list)
    embedder: str | None = None  # None = settings default
    docs_url: str | None = None  # e.g. "https://intranet.example.com/hr/{path}" → citation links
    description: str = ""
    source_file: Path | None = None

    @field_validator("classification", mode="before")
    @classmethod
    def _classification(cls, v: Any) -> Classification:
        if isinstance(v, Classification):
            return v
        try:
            return Classification.parse(str(v))
        except KeyError:
            raise ValueError(f"{v!r} is not one of public, internal, confidential, restricted") from None

    @field_validator("admins", "ask")
    @classmethod
    def _entries(cls, v: list[str]) -> list[str]:
        return check_entries(v)

    @field_validator("docs_url")
    @classmethod
    def _docs_url(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith(("https://", "http://")) or "{path}" not in v):
            raise ValueError("must be an http(s) URL containing {path}, e.g. https://intranet/hr/{path}")
        return v

    def link(self, doc_id: str) -> str:
        """The ``docs_url`` link for a document id ("hr/time-off.md"), or "" when unset."""
        if not self.docs_url:
            return ""
        from urllib.parse import quote

        rel = doc_id.split("/", 1)[1] if "/" in doc_id else doc_id
        return self.docs_url.replace("{path}", quote(rel))

    @field_validator("templates")
    @classmethod
    def _template_names(cls, v: dict[str, Template]) -> dict[str, Template]:
        for name in v:
            if not NAME_RE.match(name):
                raise ValueError(f"template name {name!r} must be lower-case letters, digits, - or _")
        return v


class DocumentAccess(_Strict):
    """Schema of an ``_access.yaml`` inside a knowledge folder."""

    audience: list[str]
    classification: Classification | None = None

    @field_validator("audience")
    @classmethod
    def _aud(cls, v: list[str]) -> list[str]:
        return check_entries(v)

    @field_validator("classification", mode="before")
    @classmethod
    def _classification(cls, v: Any) -> Classification | None:
        if v is None or isinstance(v, Classification):
            return v
        try:
            return Classification.parse(str(v))
        except KeyError:
            raise ValueError(f"{v!r} is not one of public, internal, confidential, restricted") from None


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


@dataclass(frozen=True)
class Company:
    """All departments and groups, validated together (cross-references checked).

    A group listed in ``sources`` is fetched from the company directory by
    ``bot.directory.sync``; as loaded from the files it is EMPTY (fail closed) until the
    sync overlays the members it could read.
    """

    departments: Mapping[str, Department]
    groups: Mapping[str, frozenset[str]]  # group name → member e-mails (lower case)
    root: Path
    sources: Mapping[str, GroupRef] = field(default_factory=dict)  # sourced group → where

    def department(self, name: str) -> Department:
        try:
            return self.departments[name]
        except KeyError:
            from bot.errors import UsageError

            valid = ", ".join(sorted(self.departments)) or "(none configured)"
            raise UsageError(f"Unknown department {name!r}. Valid departments: {valid}.") from None

    def __iter__(self) -> Iterator[Department]:
        return iter(self.departments.values())


# ── YAML, strictly, with line numbers ────────────────────────────────────────────────

_DUPLICATE = re.compile(r"duplicate key '([^']*)'")


def read_yaml(path: Path) -> tuple[Any, Lines]:
    """``bot.yamlstrict.load_file`` (no aliases, merge keys, duplicate keys, deep nesting or
    files over 256 KB), with a duplicate key also named as the error's field."""
    try:
        return yamlstrict.load_file(path)
    except ConfigError as exc:
        found = _DUPLICATE.search(exc.problem) if exc.field is None else None
        if found:
            raise ConfigError(exc.problem, file=exc.file, line=exc.line, field=found.group(1)) from None
        raise


def _line_for(lines: Lines, loc: tuple[str | int, ...]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _validation_problems(path: Path, exc: ValidationError, lines: Lines) -> list[ConfigError]:
    """Every error pydantic found in one file (not only the first)."""
    out: list[ConfigError] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see README 'Department config')"
        elif err["type"] == "missing":
            msg = "is required"
        field = ".".join(str(p) for p in loc) or None
        out.append(ConfigError(msg, file=path, line=_line_for(lines, loc), field=field))
    return out


# ── groups.yaml ──────────────────────────────────────────────────────────────────────

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


def _read_groups(
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


# ── departments ──────────────────────────────────────────────────────────────────────


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


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


@dataclass
class _File:
    """What one department file yielded: its line map, knowledge folder and model (if valid)."""

    name: str
    path: Path
    lines: Lines
    knowledge: Path | None = None
    department: Department | None = None


@dataclass(frozen=True)
class ConfigReport:
    """Everything ``inspect_company`` found: the departments whose file validated and whose
    knowledge folder exists in an allowed place (so ``deptbot check`` can check the folders
    too), the groups, and every problem. A Company exists only when ``problems`` is empty."""

    root: Path
    departments: Mapping[str, Department]
    groups: Mapping[str, frozenset[str]]
    problems: list[ConfigError]
    sources: Mapping[str, GroupRef] = field(default_factory=dict)

    @property
    def company(self) -> Company | None:
        if self.problems:
            return None
        return Company(departments=self.departments, groups=self.groups, root=self.root, sources=self.sources)


def inspect_company(root: Path, *, allowed_roots: Sequence[Path] = ()) -> ConfigReport:
    """Check every department file and ``groups.yaml`` under ``root``; collect all problems.

    A schema error in one file does not stop the others; cross-references (unknown groups,
    a channel mapped twice, overlapping knowledge folders) are checked for every file that
    could be read. A knowledge folder must resolve (symlinks followed) inside the
    configuration tree — the parent of ``root`` — or inside one of ``allowed_roots``.
    """
    root = Path(root)
    if not root.is_dir():
        return ConfigReport(root, {}, {}, [ConfigError("departments folder does not exist", file=root)])
    tree = root.resolve().parent
    roots = tuple(Path(r).resolve() for r in allowed_roots)
    groups_file = root / "groups.yaml"
    groups, sources, problems = _read_groups(groups_file)
    try:
        names = sorted(root.iterdir())
    except OSError as exc:
        return ConfigReport(root, {}, {}, [ConfigError(f"cannot be read ({exc.strerror})", file=root)])
    files: list[_File] = []
    seen: dict[str, Path] = {}
    for path in names:
        if path.suffix not in (".yaml", ".yml") or path.name == "groups.yaml" or path.name.startswith("."):
            continue
        name = path.stem.lower()
        if not NAME_RE.match(name):
            msg = "file name must be the department name: lower-case letters, digits, - or _"
            problems.append(ConfigError(msg, file=path))
            continue
        if name in seen:
            msg = f"duplicate department name {name!r} (also {seen[name].name})"
            problems.append(ConfigError(msg, file=path))
            continue
        seen[name] = path
        found = _check_department(path, name, groups, groups_file, tree, roots, problems)
        if found is not None:
            files.append(found)
    problems += _overlapping_knowledge(files)
    departments = {f.name: f.department for f in files if f.department is not None}
    problems += _channels_mapped_twice(files)
    # groups.yaml first (department files refer to it), then files by name, lines in order
    order = {str(p): i for i, p in enumerate(names)} | {str(groups_file): -1}
    problems.sort(key=lambda p: (order.get(p.file or "", -2), p.line or 0))
    return ConfigReport(root, departments, groups or {}, problems, sources)


def check_company(
    root: Path, *, allowed_roots: Sequence[Path] = ()
) -> tuple[Company | None, list[ConfigError]]:
    """``(company, [])`` when everything is valid, else ``(None, every problem found)``."""
    report = inspect_company(root, allowed_roots=allowed_roots)
    return report.company, report.problems


def load_company(root: Path, *, allowed_roots: Sequence[Path] = ()) -> Company:
    """Load every department under ``root`` and check cross-references.

    Raises ConfigError for the first problem found (file, line, field, what is wrong),
    saying how many more there are; ``deptbot check`` lists them all.
    """
    company, problems = check_company(root, allowed_roots=allowed_roots)
    if company is not None:
        return company
    first = problems[0]
    if len(problems) > 1:
        more = len(problems) - 1
        note = f" (and {more} more problem{'s' if more > 1 else ''}; deptbot check lists them all)"
        raise ConfigError(first.problem + note, file=first.file, line=first.line, field=first.field)
    raise first


def _check_department(
    path: Path,
    name: str,
    groups: Mapping[str, frozenset[str]] | None,
    groups_file: Path,
    tree: Path,
    roots: tuple[Path, ...],
    problems: list[ConfigError],
) -> _File | None:
    """Every problem in one department file, appended to ``problems``."""
    try:
        data, lines = read_yaml(path)
    except ConfigError as exc:
        problems.append(exc)
        return None
    data = {} if data is None else data
    if not isinstance(data, dict):
        problems.append(ConfigError("must be a mapping of field: value", file=path, line=1))
        return None
    found = _File(name=name, path=path, lines=lines)
    for key in ("name", "source_file"):
        if key in data:
            problems.append(
                ConfigError(
                    "is taken from the file name; remove it", file=path, line=lines.get((key,)), field=key
                )
            )
    data = {k: v for k, v in data.items() if k not in ("name", "source_file")}
    dept: Department | None = None
    try:
        dept = Department.model_validate({**data, "name": name, "source_file": path})
    except ValidationError as exc:
        problems += _validation_problems(path, exc, lines)
    allowed = False
    if isinstance(data.get("knowledge"), str):
        found.knowledge, allowed = _knowledge_folder(path, data["knowledge"], lines, tree, roots, problems)
    if groups is not None:
        problems += _unknown_groups(path, data, lines, groups, groups_file)
    if dept is not None and found.knowledge is not None and allowed:
        found.department = dept.model_copy(update={"knowledge": found.knowledge})
    return found


def _knowledge_folder(
    path: Path, raw: str, lines: Lines, tree: Path, roots: tuple[Path, ...], problems: list[ConfigError]
) -> tuple[Path | None, bool]:
    """The resolved folder (None if missing) and whether it is in an allowed place."""
    line = lines.get(("knowledge",))
    folder = (path.parent / raw).resolve()
    if not folder.is_dir():
        problems.append(
            ConfigError(f"knowledge folder {folder} does not exist", file=path, line=line, field="knowledge")
        )
        return None, False
    if _inside(folder, tree) or any(_inside(folder, r) for r in roots):
        return folder, True
    problems.append(
        ConfigError(
            f"knowledge folder {folder} is outside the configuration folder {tree}; "
            "list its parent in the settings' knowledge.allowed_roots if that is intended",
            file=path,
            line=line,
            field="knowledge",
        )
    )
    return folder, False  # still compared with the others: overlaps are reported too


def _unknown_groups(
    path: Path, data: Mapping[str, Any], lines: Lines, groups: Mapping[str, frozenset[str]], groups_file: Path
) -> list[ConfigError]:
    out: list[ConfigError] = []
    for loc in access_lists(data):
        raw: Any = data
        for part in loc:  # the raw list, so item indexes stay right when some are not strings
            raw = raw.get(part) if isinstance(raw, dict) else None
        for i, entry in enumerate(raw if isinstance(raw, list) else []):
            if isinstance(entry, str) and normalize_entry(entry).startswith("group:"):
                group = normalize_entry(entry)[6:]
                if group not in groups:
                    out.append(
                        ConfigError(
                            f"group {group!r} does not exist in {groups_file.name}",
                            file=path,
                            line=_line_for(lines, (*loc, i)),
                            field=".".join(str(p) for p in loc) + f"[{i}]",
                        )
                    )
    return out


def _overlapping_knowledge(files: list[_File]) -> list[ConfigError]:
    """Two departments must not share documents: the same folder, or one inside the other."""
    out: list[ConfigError] = []
    placed = [f for f in files if f.knowledge is not None]
    for i, a in enumerate(placed):
        for b in placed[i + 1 :]:
            assert a.knowledge is not None and b.knowledge is not None
            if a.knowledge == b.knowledge:
                how = f"both use {a.knowledge}"
            elif _inside(b.knowledge, a.knowledge):
                how = f"overlap: {b.knowledge} is inside {a.knowledge}"
            elif _inside(a.knowledge, b.knowledge):
                how = f"overlap: {b.knowledge} contains {a.knowledge}"
            else:
                continue
            out.append(
                ConfigError(
                    f"departments {a.name!r} ({a.path.name}) and {b.name!r} ({b.path.name}) {how}; "
                    "each department needs its own knowledge folder",
                    file=b.path,
                    line=b.lines.get(("knowledge",)),
                    field="knowledge",
                )
            )
    return out


def _channels_mapped_twice(files: list[_File]) -> list[ConfigError]:
    out: list[ConfigError] = []
    owner: dict[tuple[str, str], str] = {}
    for f in files:
        if f.department is None:
            continue
        channels = f.department.channels
        for platform, chans in (("slack", channels.slack), ("teams", channels.teams)):
            for i, chan in enumerate(chans):
                other = owner.setdefault((platform, chan), f.name)
                if other != f.name:
                    out.append(
                        ConfigError(
                            f"{platform} channel {chan!r} is already mapped to department {other!r}",
                            file=f.path,
                            line=f.lines.get(("channels", platform, i)),
                            field=f"channels.{platform}[{i}]",
                        )
                    )
    return out


def describe(err: ConfigError, base: Path | None = None) -> str:
    """``file:line: field: problem``, with the file shown relative to ``base`` when inside it."""
    shown: str | None = err.file
    if err.file and base is not None:
        # abspath, not resolve: a problem about a symbolic link names the link, not its target
        with contextlib.suppress(ValueError):
            shown = str(Path(os.path.abspath(err.file)).relative_to(os.path.abspath(base)))
    return str(ConfigError(err.problem, file=shown, line=err.line, field=err.field))


def knowledge_roots(settings: Settings) -> tuple[Path, ...]:
    """The settings' ``knowledge.allowed_roots``: absolute folders outside the configuration
    tree where an operator allows knowledge folders to live."""
    raw = settings.section("knowledge").get("allowed_roots", [])
    where = settings.settings_file or DEFAULTS_FILE
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise ConfigError(
            "must be a list of absolute folder paths", file=where, field="knowledge.allowed_roots"
        )
    for r in raw:
        if not Path(r).is_absolute():
            raise ConfigError(
                f"{r!r} is not an absolute path; list absolute folders",
                file=where,
                field="knowledge.allowed_roots",
            )
    return tuple(Path(r) for r in raw)
