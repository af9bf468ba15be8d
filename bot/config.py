"""Load and validate ``departments/*.yaml`` and ``groups.yaml`` into frozen models.

Department files are data written by people, so every error names the file, the line
(from the YAML node marks), the field and what is wrong; nothing is half-loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.core.types import Classification
from bot.errors import ConfigError

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


@dataclass(frozen=True)
class Company:
    """All departments and groups, validated together (cross-references checked)."""

    departments: Mapping[str, Department]
    groups: Mapping[str, frozenset[str]]  # group name → member e-mails (lower case)
    root: Path

    def department(self, name: str) -> Department:
        try:
            return self.departments[name]
        except KeyError:
            from bot.errors import UsageError

            valid = ", ".join(sorted(self.departments)) or "(none configured)"
            raise UsageError(f"Unknown department {name!r}. Valid departments: {valid}.") from None

    def __iter__(self) -> Iterator[Department]:
        return iter(self.departments.values())


# ── YAML with line numbers ────────────────────────────────────────────────────────────


def _load_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """Parse YAML, returning the data and a map from key path to 1-based line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror})", file=path) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"is not valid YAML ({exc.problem})", file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"is not valid YAML ({exc})", file=path) from None
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(n: yaml.Node | None, prefix: tuple[str | int, ...]) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*prefix, str(k.value))
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                key = (*prefix, i)
                lines[key] = v.start_mark.line + 1
                walk(v, key)

    walk(node, ())
    return data, lines


def _line_for(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _raise_validation(path: Path, exc: ValidationError, lines: dict[tuple[str | int, ...], int]) -> None:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    field = ".".join(str(p) for p in loc) or None
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; see README 'Department config')"
    elif err["type"] == "missing":
        msg = "is required"
    raise ConfigError(msg, file=path, line=_line_for(lines, loc), field=field)


def load_model(path: Path, model: type[_Strict], extra: Mapping[str, Any] | None = None) -> Any:
    """Validate one YAML file against ``model``; ConfigError names file, line, field."""
    data, lines = _load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping of field: value", file=path, line=1)
    try:
        return model.model_validate({**data, **(extra or {})})
    except ValidationError as exc:
        _raise_validation(path, exc, lines)
        raise  # pragma: no cover - _raise_validation always raises


def load_groups(path: Path) -> dict[str, frozenset[str]]:
    if not path.exists():
        return {}
    data, lines = _load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("must map group names to lists of e-mails", file=path, line=1)
    groups: dict[str, frozenset[str]] = {}
    for name, members in data.items():
        line = lines.get((str(name),))
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError("must be a list of e-mail addresses", file=path, line=line, field=str(name))
        for i, m in enumerate(members):
            if not re.match(r"^[^@\s]+@[^@\s]+$", m):
                raise ConfigError(
                    f"{m!r} is not an e-mail address",
                    file=path,
                    line=lines.get((str(name), i), line),
                    field=f"{name}[{i}]",
                )
        groups[str(name).lower()] = frozenset(m.lower() for m in members)
    return groups


def load_company(root: Path) -> Company:
    """Load every department under ``root`` and check cross-references.

    Raises ConfigError for the first problem found (file, line, field, what is wrong).
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError("departments folder does not exist", file=root)
    groups_file = root / "groups.yaml"
    groups = load_groups(groups_file)
    departments: dict[str, Department] = {}
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.name != "groups.yaml")
    seen: dict[str, Path] = {}
    for path in files:
        name = path.stem.lower()
        if not NAME_RE.match(name):
            raise ConfigError(
                "file name must be the department name: lower-case letters, digits, - or _",
                file=path,
            )
        if name in seen:
            raise ConfigError(f"duplicate department name {name!r} (also {seen[name].name})", file=path)
        seen[name] = path
        data, lines = _load_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError("must be a mapping of field: value", file=path, line=1)
        if "name" in data or "source_file" in data:
            key = "name" if "name" in data else "source_file"
            raise ConfigError(
                "is taken from the file name; remove it", file=path, line=lines.get((key,)), field=key
            )
        try:
            dept = Department.model_validate({**data, "name": name, "source_file": path})
        except ValidationError as exc:
            _raise_validation(path, exc, lines)
            raise  # pragma: no cover
        knowledge = (path.parent / dept.knowledge).resolve()
        if not knowledge.is_dir():
            raise ConfigError(
                f"knowledge folder {knowledge} does not exist",
                file=path,
                line=lines.get(("knowledge",)),
                field="knowledge",
            )
        dept = dept.model_copy(update={"knowledge": knowledge})
        _check_groups(dept, groups, lines, path, groups_file)
        departments[name] = dept
    _check_unique_channels(departments)
    return Company(departments=departments, groups=groups, root=root)


def _check_groups(
    dept: Department,
    groups: Mapping[str, frozenset[str]],
    lines: dict[tuple[str | int, ...], int],
    path: Path,
    groups_file: Path,
) -> None:
    fields: list[tuple[tuple[str | int, ...], list[str]]] = [(("admins",), dept.admins), (("ask",), dept.ask)]
    fields += [(("templates", t, "allowed"), tpl.allowed) for t, tpl in dept.templates.items()]
    fields += [(("channels", "audience", c), a) for c, a in dept.channels.audience.items()]
    for loc, entries in fields:
        for i, entry in enumerate(entries):
            if entry.startswith("group:") and entry[6:] not in groups:
                raise ConfigError(
                    f"group {entry[6:]!r} does not exist in {groups_file.name}",
                    file=path,
                    line=_line_for(lines, (*loc, i)),
                    field=".".join(str(p) for p in loc) + f"[{i}]",
                )


def _check_unique_channels(departments: Mapping[str, Department]) -> None:
    owner: dict[tuple[str, str], str] = {}
    for dept in departments.values():
        for platform, chans in (("slack", dept.channels.slack), ("teams", dept.channels.teams)):
            for chan in chans:
                other = owner.setdefault((platform, chan), dept.name)
                if other != dept.name:
                    raise ConfigError(
                        f"{platform} channel {chan!r} is already mapped to department {other!r}",
                        file=dept.source_file,
                        field=f"channels.{platform}",
                    )


def load_access_file(path: Path) -> DocumentAccess:
    """Validate a knowledge subfolder's ``_access.yaml``."""
    result: DocumentAccess = load_model(path, DocumentAccess)
    return result
